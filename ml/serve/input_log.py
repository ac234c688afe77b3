"""A bounded, rotating JSONL log of served inputs, read back by `ml.drift`.

One line per request: `{"t": unix seconds, "x": [[feature values in bundle order], ...]}`.
Lines are buffered in memory and written at most every second or every 64 KiB, so the predict
path never waits on the disk. When the file passes `max_bytes` it is rotated to `.1`, `.2`, ...
and the oldest beyond `backups` is dropped: the log never holds more than
`(backups + 1) * max_bytes`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson

FLUSH_BYTES = 64 << 10
FLUSH_SECONDS = 1.0
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def log_files(path: Path) -> list[Path]:
    """The current file and its rotations, oldest first."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    return [*rotated, path] if path.exists() else rotated


class InputLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._size = path.stat().st_size
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()

    def append(self, x: np.ndarray) -> None:
        line = orjson.dumps({"t": round(time.time(), 3), "x": x}, option=_OPTIONS)
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups, 0, -1):
            source = (
                self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 else self.path
            )
            if source.exists():  # replacing .N drops the oldest
                source.replace(self.path.with_name(f"{self.path.name}.{index}"))
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        self.flush()
        self._file.close()
