"""Where message bytes wait between DATA and the commit: memory first, then a temp file.

Small messages (the common case) never touch the file system. A message past `memory_limit`
moves to a named temporary file, so twenty clients sending 20 MB at once cost disk, not RAM;
the store then copies the file in chunks (`NewMessage.body_path`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO

HEAD_BYTES = 65536


class Spool:
    def __init__(self, memory_limit: int = 1 << 20, directory: str | None = None) -> None:
        self.memory_limit = memory_limit
        self.directory = directory
        self.size = 0
        self._buf = bytearray()
        self._head = b""
        self._file: IO[bytes] | None = None
        self.path: str | None = None

    @property
    def in_memory(self) -> bool:
        return self._file is None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        self._buf += data
        if len(self._buf) > self.memory_limit:
            self._head = bytes(self._buf[:HEAD_BYTES])
            fd, self.path = tempfile.mkstemp(prefix="postroom-spool-", dir=self.directory)
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._buf)
            self._buf = bytearray()

    def head(self) -> bytes:
        """The first bytes of the message (enough for its header block)."""
        return self._head if self._file is not None else bytes(self._buf[:HEAD_BYTES])

    def getvalue(self) -> bytes:
        if self._file is not None:
            raise ValueError("spooled to disk: use .path")
        return bytes(self._buf)

    def finish(self) -> None:
        """Make the file's bytes visible to other readers (the store's writer)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Discard the message. The file goes even when its last flush fails (a full disk):
        its bytes are not wanted any more, and a leftover would fill the disk further."""
        file, self._file = self._file, None
        self._buf = bytearray()
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()  # closes the descriptor even when the flush raises
        if self.path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None  # a second close must not remove a later spool's file
