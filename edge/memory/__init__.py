"""Repeated-ad memory: compact fingerprints of remembered ads, matched live (see ``edge.memory.memory``)."""

from edge.memory.memory import AdMemory, MemoryConfig
from edge.memory.runs import Run

__all__ = ["AdMemory", "MemoryConfig", "Run"]
