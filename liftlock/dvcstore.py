"""DVC outputs by their hash: what the gate judges is fetched by the hash a record names.

A stack pins a bundle digest; its promotion record names the DVC hash of that bundle folder (and
of the data split it was evaluated on). Both directions use a throwaway DVC project
that shares the checkout's cache and default remote: `store_folders` copies a folder in, `dvc add`
(the hash DVC gives it) and `dvc push`; `checkout_by_hash` writes a `.dvc` file naming each hash
and runs `dvc pull` (from the cache, else the remote). The checkout's own `bundle/` is never what
gets judged. DVC facts come from DVC commands only.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from liftlock.dvc import DvcFailed, run_dvc
from liftlock.errors import BundleError

_HASH = re.compile(r"^[0-9a-f]{32}(\.dir)?$")


def _dvc(args: list[str], cwd: Path, what: str) -> str:
    return run_dvc(args, cwd, timeout_s=900, what=what).strip()


@dataclass(frozen=True, kw_only=True)
class DvcSettings:
    cache: Path
    remote: tuple[str, str] | None  # (name, url) of the default remote


def dvc_settings(root: Path) -> DvcSettings:
    """The checkout's cache folder and default remote, from one `dvc config --list`."""
    listed = _dvc(["config", "--list", "--show-origin"], root, "read the DVC configuration")
    values: dict[str, tuple[str, str]] = {}
    for line in listed.splitlines():
        origin, _, setting = line.partition("\t")
        key, _, value = setting.partition("=")
        values[key.strip()] = (origin.strip(), value.strip())

    def path_of(key: str) -> str | None:
        if key not in values:
            return None
        origin, value = values[key]
        if "://" in value or value.startswith("~") or Path(value).is_absolute():
            return str(Path(value).expanduser()) if "://" not in value else value
        return str((root / origin).parent.joinpath(value).resolve())  # relative to its file

    cache = path_of("cache.dir") or str(root / ".dvc" / "cache")
    name = values.get("core.remote", ("", ""))[1]
    url = path_of(f"remote.{name}.url") if name else None
    return DvcSettings(cache=Path(cache), remote=(name, url) if name and url else None)


def _scratch_project(root: Path, dest: Path) -> tuple[str, tuple[str, str] | None]:
    """A throwaway DVC project in `dest` sharing the checkout's cache and default remote."""
    settings = dvc_settings(root)
    dest.mkdir(parents=True, exist_ok=True)
    _dvc(["init", "--no-scm", "--quiet"], dest, "make a throwaway DVC project")
    lines = [
        "[core]",
        "    no_scm = True",
        "    analytics = false",
        "[cache]",
        f"    dir = {settings.cache}",
    ]
    if settings.remote is not None:
        name, url = settings.remote
        lines[1:1] = [f"    remote = {name}"]
        lines += [f"['remote \"{name}\"']", f"    url = {url}"]
    (dest / ".dvc" / "config").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(settings.cache), settings.remote


def _flat(path: str) -> str:
    return path.replace("/", "_")


def store_folders(
    root: Path, folders: Mapping[str, Path], scratch: Path, *, push: bool = True
) -> StoreResult:
    """Put each folder into the DVC cache (and, with `push`, the default remote): `name -> md5`.

    What a promotion records is then fetchable by its hash anywhere the remote is reachable.
    """
    _cache, remote = _scratch_project(root, scratch)
    for name, folder in folders.items():
        if not folder.is_dir():
            raise BundleError(f"{folder}: no such folder to store in DVC")
        shutil.copytree(folder, scratch / _flat(name))
    _dvc(["add", "--quiet", *(_flat(name) for name in folders)], scratch, "add to the DVC cache")
    hashes = {}
    for name in folders:
        document = yaml.safe_load((scratch / f"{_flat(name)}.dvc").read_text(encoding="utf-8"))
        hashes[name] = str(document["outs"][0]["md5"])
    pushed: str | None = None
    if not push:
        pushed = "not pushed (a gate only judges it)"
    elif remote is not None:
        try:
            _dvc(["push", "--quiet"], scratch, "push to the DVC remote")
        except DvcFailed as error:
            # Not fatal: the hash is in this machine's cache; the record says why not pushed.
            pushed = f"could not push to {remote[1]}: " + " ".join(
                error.message.strip().splitlines()[-1:]
            )
    else:
        pushed = "no default DVC remote: the hash is only in this machine's cache"
    return StoreResult(hashes=hashes, problem=pushed)


@dataclass(frozen=True, kw_only=True)
class StoreResult:
    hashes: dict[str, str]
    problem: str | None  # why the remote does not have it (None: pushed)


def checkout_by_hash(root: Path, outputs: Mapping[str, str], dest: Path) -> dict[str, Path]:
    """Fetch each `name -> md5 hash` into a folder under `dest`; BundleError names a missing one."""
    for name, md5 in outputs.items():
        if not _HASH.match(md5):
            raise BundleError(f"{name}: {md5!r} is not a DVC md5 hash")
    cache, remote = _scratch_project(root, dest)
    for name, md5 in outputs.items():
        (dest / f"{_flat(name)}.dvc").write_text(
            yaml.safe_dump({"outs": [{"md5": md5, "path": _flat(name), "hash": "md5"}]}),
            encoding="utf-8",
        )
    try:
        _dvc(["pull", "--quiet"], dest, "fetch the pinned outputs")
        pulled = True
    except DvcFailed:
        pulled = False  # named below, with where DVC looked
    fetched = {name: dest / _flat(name) for name in outputs}
    missing = [name for name, folder in fetched.items() if not folder.exists()]
    if not pulled or missing:
        names = ", ".join(f"{name} {outputs[name]}" for name in (missing or list(outputs)))
        raise BundleError(
            f"DVC has no copy of {names}: not in the cache {cache} nor the remote "
            f"{remote[1] if remote else '(none configured)'}",
            hint="`dvc push` from the machine that promoted it, or point DVC at the remote that "
            "has it (`dvc remote modify --local <name> url <url>`)",
        )
    return fetched
