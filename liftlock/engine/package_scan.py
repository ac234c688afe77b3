"""List the distributions installed in a Python environment, as JSON on stdout.

Standard library only: the language host runs this file with the *project's* interpreter
(`python package_scan.py`), which need not have liftlock installed. For each distribution it
reports name, version, the names it requires, and the content of `<module>/pulumi-plugin.json`
when the package ships one (that file names the provider plugin a Pulumi SDK package needs).
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """PEP 503 normalised name: `Pulumi_Kubernetes` and `pulumi-kubernetes` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _plugin_json(dist: metadata.Distribution, name: str) -> dict[str, Any] | None:
    module_dir = Path(str(dist.locate_file(""))) / name.replace("-", "_")
    path = module_dir / "pulumi-plugin.json"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    data["_path"] = str(path)
    return data


def _required_names(dist: metadata.Distribution) -> list[str]:
    names = []
    for requirement in dist.requires or []:
        if "extra ==" in requirement:  # optional extras are not installed dependencies
            continue
        match = _REQUIREMENT_NAME.match(requirement)
        if match:
            names.append(canonical_name(match.group(1)))
    return names


def scan() -> list[dict[str, Any]]:
    """Every distribution on sys.path, first occurrence wins (as the import system does)."""
    seen: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions():
        raw_name = dist.metadata["Name"]
        if not raw_name:
            continue
        key = canonical_name(raw_name)
        if key in seen:
            continue
        seen[key] = {
            "name": raw_name,
            "version": dist.version,
            "requires": _required_names(dist),
            "plugin": _plugin_json(dist, raw_name),
        }
    return list(seen.values())


if __name__ == "__main__":
    json.dump(scan(), sys.stdout)
