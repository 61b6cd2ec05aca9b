"""The pretrained backbone: ImageNet EfficientNet-Lite0 as an int8 TFLite feature extractor (1280-d).

The model file ships in ``edge/assets`` (made by ``tools/convert_backbone``); its sha256 is checked on load. One
interpreter per process and model file (``Backbone.shared``). Runtime: LiteRT (``ai-edge-litert``), falling back to
``tflite_runtime`` where LiteRT has no wheel (32-bit Raspberry Pi OS).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from adbreak.errors import AdbreakError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
DEFAULT_BACKBONE = ASSETS / "efficientnet_lite0_int8.tflite"
FEATURE_DIM = 1280


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

            log.info("LiteRT not installed: using tflite_runtime")
            return Interpreter
        except ImportError as exc:
            raise AdbreakError(
                "no TFLite runtime: pip install ai-edge-litert (or tflite-runtime on 32-bit Pi OS)"
            ) from exc


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ logger prints an INFO line on stderr when it creates its XNNPACK delegate; a CLI error must stay
    one line, so file descriptor 2 points at /dev/null while the interpreter is built (errors still raise)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def expected_sha256(path: Path) -> str | None:
    """The sha256 recorded for a model file in the backbone.json beside it, if any."""
    meta = path.with_name("backbone.json")
    if not meta.is_file():
        return None
    data = json.loads(meta.read_text())
    return data.get("sha256") if data.get("file") == path.name else None


class Backbone:
    """Runs the int8 feature extractor on batches of 224x224 RGB uint8 images."""

    def __init__(self, path: str | Path = DEFAULT_BACKBONE, sha256: str | None = None, num_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise AdbreakError(f"backbone model not found: {self.path}")
        self.sha256 = sha256_file(self.path)
        want = sha256 or expected_sha256(self.path)
        if want is not None and want != self.sha256:
            raise AdbreakError(
                f"backbone {self.path.name} sha256 {self.sha256[:12]}… does not match the expected {want[:12]}…"
            )
        interpreter = _interpreter_class()
        try:
            with _native_stderr_silenced():
                self._interp = interpreter(model_path=str(self.path), num_threads=num_threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise AdbreakError(f"cannot load backbone {self.path}: {exc}") from exc
        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype = inp["dtype"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self.input_size = int(inp["shape"][1])
        self.dim = int(out["shape"][-1])

    @classmethod
    @functools.cache
    def shared(cls, path: str | Path = DEFAULT_BACKBONE, sha256: str | None = None) -> Backbone:
        """The process-wide interpreter for this model file (built once)."""
        return cls(Path(path), sha256)

    def _write_input(self, image: np.ndarray) -> None:
        """Write one (H, W, 3) uint8 image straight into the interpreter's input tensor (no temporary arrays)."""
        view = self._interp.tensor(self._in_index)()[0]  # a view of the input buffer: dropped before invoke()
        if self._in_dtype == np.int8:
            # the quantised input byte is pixel - 128 (scale 1/128, zero point 0 of the [-1, 1] float range); on
            # uint8 bits, subtracting 128 modulo 256 is flipping the top bit
            np.bitwise_xor(image, 0x80, out=view.view(np.uint8))
        else:
            np.subtract(image, 127.0, out=view)
            view /= 128.0
        del view

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, 224, 224, 3) uint8 RGB -> (N, dim) float32 features."""
        if images.ndim == 3:
            images = images[None]
        n = images.shape[0]
        if images.shape[1:] != (self.input_size, self.input_size, 3) or images.dtype != np.uint8:
            raise ValueError(f"backbone input must be (N, {self.input_size}, {self.input_size}, 3) uint8")
        out = np.empty((n, self.dim), dtype=np.float32)
        for i in range(n):
            self._write_input(images[i])
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out_index).reshape(-1)
            if self._out_scale:
                out[i] = (raw.astype(np.float32) - self._out_zero) * self._out_scale
            else:
                out[i] = raw
        return out
