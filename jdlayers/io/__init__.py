"""Durable, code-free save/load of jdlayers objects (`jdlayers.io`)."""

from jdlayers.io._files import FORMAT, VERSION, FileFormatError

__all__ = ["FORMAT", "VERSION", "FileFormatError"]
