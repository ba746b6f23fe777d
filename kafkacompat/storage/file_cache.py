"""A bounded cache of open segment files: descriptors are a budget shared by every log.

Each segment's ``.log`` file is a `CachedFile`. Its descriptor is opened on first use and kept
in one `FileCache`; opening one more than the cap allows closes the least recently used idle
descriptor (CLOCK order: a use only sets a flag, the eviction hand gives a used file a second
chance), and the file is reopened by path when next needed.

A caller pins the descriptor for one sequence of system calls: ``fd = file.acquire()`` ...
``file.release()``. A pinned descriptor is never closed, so a thread that evicts cannot make
another write to a reused descriptor number; when every cached descriptor is pinned the cache
holds more than its cap for a moment rather than fail.

Acquiring an open descriptor takes no lock (the append hot path): it pins (a list append), then
reads the descriptor. Eviction, under the lock, withdraws the descriptor first and then looks
for pins, restoring it if there is one. Each side writes before it reads the other's field and
each step is atomic under the interpreter lock, so at least one of them sees the other: either
the acquirer finds the descriptor withdrawn and takes the locked path, or the evictor finds the
pin and leaves the descriptor open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from collections import OrderedDict
from pathlib import Path

__all__ = ["DEFAULT_MAX_OPEN_FILES", "CachedFile", "FileCache", "effective_max_open_files"]

#: Default cap on descriptors held open for segment files (``log.open.files.max``).
DEFAULT_MAX_OPEN_FILES = 1024

#: Share of the process's soft descriptor limit the cache may use at most; the rest is left to
#: connections and to files opened for a moment (indexes, checkpoints, sendfile).
_RLIMIT_SHARE = 4

_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def effective_max_open_files(requested: int = DEFAULT_MAX_OPEN_FILES) -> int:
    """``requested``, but at most a quarter of the soft ``RLIMIT_NOFILE`` (and at least 1)."""
    if requested < 1:
        raise ValueError(f"the open segment file cap must be at least 1, got {requested}")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return requested
    return max(1, min(requested, soft // _RLIMIT_SHARE))


class CachedFile:
    """One segment file whose descriptor the cache opens, evicts and reopens on demand."""

    __slots__ = ("_cache", "_closed", "_closing_fd", "_fd", "_pins", "_used", "path")

    def __init__(self, cache: FileCache, path: Path) -> None:
        self.path = path
        self._cache = cache
        self._fd = -1
        self._pins: list[None] = []  # one entry per pin: append and pop are atomic
        self._used = False  # the CLOCK reference flag
        self._closed = False
        self._closing_fd = -1  # closed for good while pinned: the last release closes it

    @property
    def is_open(self) -> bool:
        """Whether a descriptor is held right now."""
        return self._fd >= 0 or self._closing_fd >= 0

    @property
    def closed(self) -> bool:
        return self._closed

    def acquire(self) -> int:
        """The file's descriptor, (re)opened if needed and pinned until `release`; OSError
        when it cannot be opened or the file was closed for good."""
        pins = self._pins
        pins.append(None)
        fd = self._fd
        if fd >= 0:
            self._used = True
            return fd
        pins.pop()
        return self._cache._acquire_locked(self)

    def release(self) -> None:
        """Unpin the descriptor taken by `acquire`."""
        self._pins.pop()
        if self._closed:
            self._cache._finish_close(self)

    def evict(self) -> None:
        """Give the descriptor back now, unless pinned (it is reopened when next used)."""
        cache = self._cache
        with cache._lock:
            if self._fd >= 0 and cache._try_close(self):
                del cache._lru[self]

    def close(self) -> None:
        """Give the descriptor back for good: later `acquire` calls fail. A descriptor pinned
        by another thread is closed by its last `release`."""
        cache = self._cache
        with cache._lock:
            if self._closed:
                return
            self._closed = True
            cache._lru.pop(self, None)
            fd, self._fd = self._fd, -1
            if fd >= 0:
                if self._pins:
                    self._closing_fd = fd
                else:
                    _close(fd)


class FileCache:
    """At most ``max_open`` idle segment descriptors, least recently used evicted first."""

    def __init__(self, max_open: int = DEFAULT_MAX_OPEN_FILES) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open}")
        self.max_open = max_open
        self._lock = threading.Lock()
        self._lru: OrderedDict[CachedFile, None] = OrderedDict()  # the CLOCK's circle

    def __len__(self) -> int:
        """Descriptors the cache holds now (of files not closed for good)."""
        return len(self._lru)

    def file(self, path: Path, *, create: bool = False) -> CachedFile:
        """A handle on ``path``; with ``create`` the file is created (and kept open) now."""
        handle = CachedFile(self, path)
        if create:
            with self._lock:
                self._open(handle, os.O_CREAT)
        return handle

    def close_all(self) -> None:
        """Close every idle descriptor (pinned ones stay)."""
        with self._lock:
            for handle in list(self._lru):
                if self._try_close(handle):
                    del self._lru[handle]

    # --- the locked side of the protocol ------------------------------------------------------

    def _acquire_locked(self, handle: CachedFile) -> int:
        with self._lock:
            if handle._closed:
                self._finish_close_locked(handle)
                raise OSError(errno.EBADF, "segment file is closed", str(handle.path))
            fd = handle._fd
            if fd < 0:
                fd = self._open(handle)
            handle._pins.append(None)
            handle._used = True
            return fd

    def _open(self, handle: CachedFile, extra_flags: int = 0) -> int:
        self._evict(len(self._lru) + 1 - self.max_open)
        flags = _FLAGS | extra_flags
        try:
            fd = os.open(handle.path, flags, 0o644)
        except OSError as exc:
            # Out of descriptors: give back every idle one and try once more.
            if exc.errno not in _OUT_OF_DESCRIPTORS or not self._evict(len(self._lru)):
                raise
            fd = os.open(handle.path, flags, 0o644)
        self._lru[handle] = None
        handle._fd = fd
        return fd

    def _evict(self, count: int) -> int:
        """Close up to ``count`` idle descriptors, least recently used first: the hand passes
        over used or pinned files once, clearing their flag, before closing any of them."""
        lru, evicted = self._lru, 0
        for _ in range(2 * len(lru)):
            if evicted >= count or not lru:
                break
            handle = next(iter(lru))
            if handle._used or handle._pins or not self._try_close(handle):
                handle._used = False
                lru.move_to_end(handle)
            else:
                del lru[handle]
                evicted += 1
        return evicted

    @staticmethod
    def _try_close(handle: CachedFile) -> bool:
        """Withdraw the descriptor, then close it unless a pin appeared (see the module doc)."""
        fd, handle._fd = handle._fd, -1
        if handle._pins:
            handle._fd = fd
            return False
        _close(fd)
        return True

    def _finish_close(self, handle: CachedFile) -> None:
        with self._lock:
            self._finish_close_locked(handle)

    @staticmethod
    def _finish_close_locked(handle: CachedFile) -> None:
        if handle._closing_fd >= 0 and not handle._pins:
            _close(handle._closing_fd)
            handle._closing_fd = -1


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
