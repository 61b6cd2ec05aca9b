"""The Raspberry Pi camera through picamera2, imported only when this source is opened (only a Pi has it)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from adbreak.errors import AdbreakError
from edge.sources.base import Frame, FrameSource


class PiCameraSource(FrameSource):
    """Frames from the Pi camera at ``size``; stream time is the monotonic clock since the camera started."""

    live = True

    def __init__(self, fps: float | None = 5.0, *, size: tuple[int, int] = (960, 540)) -> None:
        super().__init__(fps)
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError as exc:
            raise AdbreakError(
                "source 'picamera2' needs the picamera2 package (Raspberry Pi OS: apt install python3-picamera2)"
            ) from exc
        try:
            self._camera = Picamera2()
            config = self._camera.create_video_configuration(main={"size": size, "format": "RGB888"})
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # picamera2 raises plain RuntimeError/IndexError when no camera is attached
            raise AdbreakError(f"cannot start the Pi camera: {exc}") from exc
        self._t0 = time.monotonic()

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            try:
                array = self._camera.capture_array("main")
            except Exception as exc:
                raise AdbreakError(f"the Pi camera stopped delivering frames: {exc}") from exc
            t = time.monotonic() - self._t0
            if not self.sampler.take(t):
                continue
            # picamera2's "RGB888" is BGR byte order in memory; the pipeline works in RGB
            yield Frame(t=t, image=array[:, :, 2::-1].copy(), index=index)
            index += 1

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()
