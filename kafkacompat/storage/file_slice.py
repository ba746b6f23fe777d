"""A range of bytes in a segment file, handed to the network layer without copying."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileSlice"]


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``size`` bytes of the file at ``path`` from ``position``: whole record batches.

    The server may ``os.sendfile`` the range; ``read`` returns the bytes (fewer if the file was
    truncated or deleted by retention meanwhile, empty if it is gone or was replaced: ``inode``
    names the file the range was read from, 0 when unknown).
    """

    path: Path
    position: int
    size: int
    inode: int = 0

    def read(self) -> bytes:
        """Read the slice's bytes from the file."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            if self.inode and os.fstat(fd).st_ino != self.inode:
                return b""  # compaction replaced the file: the positions mean nothing now
            return os.pread(fd, self.size, self.position)
        finally:
            os.close(fd)
