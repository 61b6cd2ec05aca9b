"""The test-broadcast builder: real clips and rendered photos assembled into a recording with exact truth and sound
(a developer tool).

``build_broadcast(out_dir, name, seed=..., duration_s=..., pool=..., difficulties=..., channel=...)`` writes
``<name>.mp4``, ``<name>.csv`` (truth) and ``<name>.json``; ``python -m adbreak.broadcast --help`` is its command
line. See ``plan.py`` for the structure of a broadcast and the difficulties, ``clips.py`` for the material and the
clip-disjoint train/heldout pools, ``audio.py`` for the sound, ``logo.py`` for the channels and ``camera.py`` for the
camera-view variant.
"""

from adbreak.broadcast.builder import BroadcastInfo, build_broadcast, load_broadcast
from adbreak.broadcast.camera import CameraProfile
from adbreak.broadcast.clips import POOLS
from adbreak.broadcast.logo import CHANNELS
from adbreak.broadcast.plan import DIFFICULTIES

__all__ = ["CHANNELS", "DIFFICULTIES", "POOLS", "BroadcastInfo", "CameraProfile", "build_broadcast", "load_broadcast"]
