"""The model bundle: a directory of content-addressed files described by `bundle.json`.

`bundle.json` holds content only (no timestamps, no git commit): the sha256 of every file in the
bundle (`files`), the data digest, the params used, the metrics. The **bundle digest** is the
sha256 of the canonical form of `bundle.json` (sorted keys, no whitespace, UTF-8), so two
reproductions of the same params and data have the same digest. Promotion records, stack
configs, image tags and Kubernetes labels all refer to a bundle by this digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ml.errors import BundleError

MANIFEST = "bundle.json"
DIGEST_PREFIX = "sha256:"
_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """The byte form that digests are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """`sha256:<hex>` of the canonical manifest."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(manifest)).hexdigest()


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(
            f"{path}: no bundle manifest", hint="build the bundle with `dvc repro` (stage package)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path}: key 'files' missing or not a mapping of file name to sha256")
    return manifest


def verify_bundle(bundle_dir: Path) -> str:
    """Check every file against `bundle.json`; return the bundle digest.

    Raises BundleError naming the first file that is missing or whose content changed.
    """
    manifest = read_manifest(bundle_dir)
    for name, expected in sorted(manifest["files"].items()):
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MANIFEST} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 {actual[:12]}… does not match {MANIFEST} ({str(expected)[:12]}…); "
                "the file was altered after packaging",
                hint="rebuild the bundle with `dvc repro` or restore it with `dvc checkout`",
            )
    return manifest_digest(manifest)


def bundle_digest(bundle_dir: Path) -> str:
    """The digest without checking files (cheap; use verify_bundle before trusting content)."""
    return manifest_digest(read_manifest(bundle_dir))
