"""Promotion records: `promotions/<stack>/<UTC time>-<digest12>.json`, one per promotion.

A record says what went where, when, by whom, at which commit, with which metrics and verdicts.
The newest record of a stack names its *champion*: the bundle a challenger must not regress from.
File names sort by time, so the newest record is the last name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liftlock.errors import ConfigError

PROMOTIONS_DIR = "promotions"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
RECORD_KEYS = ("from", "to", "bundleDigest", "metrics", "verdicts", "gitCommit", "user", "time")


@dataclass(frozen=True, kw_only=True)
class PromotionRecord:
    path: Path
    data: dict[str, Any]

    @property
    def bundle_digest(self) -> str:
        return str(self.data["bundleDigest"])

    @property
    def source(self) -> str:
        return str(self.data["from"])

    @property
    def time(self) -> str:
        return str(self.data["time"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.data.get("metrics") or {})


def digest12(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def record_path(root: Path, stack: str, digest: str, when: datetime) -> Path:
    stamp = when.astimezone(UTC).strftime(TIME_FORMAT)
    return root / PROMOTIONS_DIR / stack / f"{stamp}-{digest12(digest)}.json"


def read_record(path: Path) -> PromotionRecord:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path}: not valid JSON ({error})", hint="restore the record from git"
        ) from error
    missing = [key for key in ("from", "to", "bundleDigest", "time") if key not in data]
    if missing:
        raise ConfigError(
            f"{path}: promotion record lacks key(s) {', '.join(missing)}",
            hint="restore the record from git",
        )
    return PromotionRecord(path=path, data=data)


def latest_record(root: Path, stack: str) -> PromotionRecord | None:
    """The stack's newest promotion record, or None before its first promotion."""
    folder = root / PROMOTIONS_DIR / stack
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return read_record(paths[-1]) if paths else None


def write_record(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:  # never overwrite a record
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
