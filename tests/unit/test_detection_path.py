"""The per-frame detection path's shortcuts change nothing: skipped non-reference frames, the backbone's in-place
input, preprocessing in the decoding thread."""

import threading

import numpy as np
import pytest

from edge.sources import Frame, Prefetcher, TimestampSampler, VideoSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """4 s of 25 fps H.264 with 2 B-frames between references (as the built broadcasts), moving content."""
    import av

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 72, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params": "bframes=2:b-adapt=0:keyint=50"}
        for i in range(100):
            img = np.roll(base, 3 * i, axis=1)
            img[:, :, 0] = (img[:, :, 0].astype(np.int32) + 5 * i).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _frames(path, fps, **kw):
    with VideoSource(str(path), fps, **kw) as src:
        got = [(f.t, f.index, f.image.tobytes()) for f in src]
        return got, src.skippable_packets


@pytest.mark.parametrize("fps", [5.0, 2.0, 3.0, 12.5, None])
@pytest.mark.parametrize("threads", [False, True])
def test_skipping_unsampled_frames_yields_exactly_the_frames_of_a_full_decode(clip, fps, threads):
    full, none_skipped = _frames(clip, fps, threads=threads, skip_unsampled=False)
    fast, skipped = _frames(clip, fps, threads=threads)
    assert none_skipped == 0
    assert [f[:2] for f in fast] == [f[:2] for f in full]
    assert fast == full  # same frames, same pixels
    if fps is not None and fps <= 5:
        assert skipped > 0


def test_sampler_slot_is_the_interval_take_uses():
    s = TimestampSampler(5.0)
    times = [i / 25 for i in range(100)] + [4.0 + i / 30 for i in range(60)]
    slots = [s.slot(t) for t in times]
    taken = [s.take(t) for t in times]
    # a frame is taken exactly when it is the first of its slot
    assert taken == [i == 0 or slots[i] != slots[i - 1] for i in range(len(times))]


def test_prefetcher_transform_runs_in_the_decoding_thread():
    class Source:
        live = False

        def __iter__(self):
            for i in range(20):
                yield Frame(t=i / 5, image=np.zeros((2, 2, 3), np.uint8), index=i)

        def close(self):
            pass

    seen = set()

    def transform(frame):
        seen.add(threading.current_thread().name)
        return frame.index * 10

    with Prefetcher(Source(), maxsize=2, transform=transform) as items:  # type: ignore[arg-type]
        assert list(items) == [i * 10 for i in range(20)]
    assert seen == {"frame-decoder"}


def test_backbone_input_written_in_place_is_pixel_minus_128():
    from edge.backbone import Backbone

    bb = Backbone.shared()
    images = np.random.default_rng(1).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)
    images[0, :2, :2] = [[0, 127, 255], [128, 1, 254]]
    got = bb.features(images)
    interp = bb._interp
    for i in range(3):  # the reference: the quantised input computed the long way, copied in by set_tensor
        interp.set_tensor(bb._in_index, (images[i].astype(np.int16) - 128).astype(np.int8)[None])
        interp.invoke()
        raw = interp.get_tensor(bb._out_index).reshape(-1).astype(np.float32)
        assert np.array_equal(got[i], (raw - bb._out_zero) * bb._out_scale)


def test_a_prepared_frame_gives_the_result_of_the_full_frame(tmp_path):
    from edge.backbone import Backbone
    from edge.bundle import ModelBundle, Preprocessing, write_bundle_files
    from edge.decision import DecisionConfig
    from edge.head import SoftmaxHead
    from edge.pipeline import Detector, PreparedFrame

    bb = Backbone.shared()
    rng = np.random.default_rng(2)
    head = SoftmaxHead(
        ("ad", "program"),
        rng.normal(size=bb.dim).astype(np.float32),
        np.ones(bb.dim, np.float32),
        rng.normal(size=(bb.dim, 2)).astype(np.float32) * 0.05,
        np.zeros(2, np.float32),
    )
    write_bundle_files(
        tmp_path, head=head, backbone=bb, preprocessing=Preprocessing(), decision=DecisionConfig(), name="t"
    )
    bundle = ModelBundle.load(tmp_path)
    a, b = Detector(bundle), Detector(bundle)
    for i in range(5):
        frame = Frame(t=i / 5, image=rng.integers(0, 256, (270, 480, 3), dtype=np.uint8), index=i)
        prepared = b.prepare(frame)
        assert isinstance(prepared, PreparedFrame) and prepared.input.shape == (224, 224, 3)
        ra, rb = a.process(frame), b.process(prepared)
        assert np.array_equal(ra.probs, rb.probs)
        assert (ra.t, ra.p_ad, ra.smoothed, ra.state) == (rb.t, rb.p_ad, rb.smoothed, rb.state)
        assert rb.latency_s >= prepared.prepare_s


@pytest.mark.parametrize("resize", ["area", "halve-linear"])
def test_the_detector_resizes_as_its_bundle_was_trained(tmp_path, resize):
    """A bundle's resize reaches the detector and its picklable converter (the one a decoding process runs)."""
    import pickle

    from edge.backbone import Backbone
    from edge.bundle import ModelBundle, Preprocessing, write_bundle_files
    from edge.decision import DecisionConfig
    from edge.geometry import resize_input
    from edge.head import SoftmaxHead
    from edge.pipeline import Detector

    bb = Backbone.shared()
    head = SoftmaxHead(("ad", "program"), np.zeros(bb.dim, np.float32), np.ones(bb.dim, np.float32),
                       np.zeros((bb.dim, 2), np.float32), np.zeros(2, np.float32))
    write_bundle_files(tmp_path, head=head, backbone=bb, preprocessing=Preprocessing(resize=resize),
                       decision=DecisionConfig(), name="t")
    det = Detector(ModelBundle.load(tmp_path))
    image = np.random.default_rng(3).integers(0, 256, (540, 960, 3), dtype=np.uint8)
    want = resize_input(image, method=resize)
    assert np.array_equal(det.preprocess(image), want)
    converter = pickle.loads(pickle.dumps(det.converter))
    assert np.array_equal(converter(Frame(t=0.0, image=image, index=0)).input, want)


def test_per_frame_cues_measured_in_the_decoder_give_the_same_results():
    """``evaluate`` measures the per-frame cues in its decoding process (``Detector.stream_converter``): every cue
    value and decision equals that of the detector measuring them itself."""
    import pickle

    from edge.pipeline import Detector, PreparedFrame, StreamConverter

    rng = np.random.default_rng(5)
    a, b = Detector(None), Detector(None)
    convert = pickle.loads(pickle.dumps(b.stream_converter()))  # as a decoding process gets it
    assert isinstance(convert, StreamConverter)
    for i in range(60):
        shade = 0 if 20 <= i < 24 else 60 + 40 * (i // 10)  # a black gap and scene changes
        image = np.clip(rng.normal(shade, 20, (180, 320, 3)), 0, 255).astype(np.uint8)
        audio = (rng.normal(0, 0.001 if 20 <= i < 24 else 0.2, 3200)).astype(np.float32)
        frame = Frame(t=i / 5, image=image, index=i, audio=audio)
        prepared = convert(frame)
        assert isinstance(prepared, PreparedFrame) and prepared.frame_cues is not None
        # every other frame straight to process(), as a caller without a prefetch thread does
        rb = b.process(b.prepare(prepared) if i % 2 else prepared)
        ra = a.process(frame)
        assert ra.cues.keys() == rb.cues.keys()
        for k, v in ra.cues.items():
            assert v == rb.cues[k] or (np.isnan(v) and np.isnan(rb.cues[k])), (i, k, v, rb.cues[k])
        assert (ra.smoothed, ra.state, ra.transition) == (rb.smoothed, rb.state, rb.transition)
