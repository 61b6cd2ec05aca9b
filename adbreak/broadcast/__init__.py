"""The test-broadcast builder: real clips assembled into a recording with exact truth (a developer tool).

``build_broadcast(out_dir, name, seed=..., duration_s=...)`` writes ``<name>.mp4``, ``<name>.csv`` (truth) and
``<name>.json``; ``python -m adbreak.broadcast --help`` is its command line. See ``builder.py`` for the structure of
a broadcast, ``clips.py`` for the clips and the train/heldout pools, ``camera.py`` for the camera-view variant.
"""

from adbreak.broadcast.builder import BroadcastInfo, build_broadcast, load_broadcast
from adbreak.broadcast.camera import CameraProfile
from adbreak.broadcast.clips import POOLS

__all__ = ["POOLS", "BroadcastInfo", "CameraProfile", "build_broadcast", "load_broadcast"]
