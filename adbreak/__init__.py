"""adbreak: knows when the TV is showing an ad."""

__version__ = "0.1.0"
