"""Build the serving image and push it: one verified bundle baked into a non-root image.

The image builder of `ModelImage` (infra/components/model_image.py): a build step, not part of
the server. No outside image registry is reachable, so nothing is pulled:

1. The base image is made here: `debootstrap --variant=minbase --include=python3,python3-venv
   bookworm` from the Debian mirror apt already uses, then `docker import`. It is tagged
   `liftlock-base:bookworm-<key>` where the key hashes the recipe, so it is built once per machine.
2. A wheelhouse of `liftlock[serve]`'s dependencies is downloaded from PyPI on the host (pinned by
   pyproject.toml and requirements.lock), cached under ~/.cache/liftlock/wheelhouse/<key>.
3. The build context holds the Dockerfile (infra/components/container/Dockerfile), the
   dependency wheels, a wheel of liftlock itself (built reproducibly: SOURCE_DATE_EPOCH, so the
   same sources give the same bytes and Docker reuses the layer) and the bundle; `docker build`
   runs with `network_mode="none"` and installs with `pip --no-index`. Dependencies, liftlock and
   the bundle are three layers: a new bundle rebuilds and pushes only the last one.
4. `push_image` pushes the tag to a registry (the embedded one on 127.0.0.1:5000 by default) and
   returns `<registry>/<repository>@sha256:<manifest digest>`, the digest the registry computed:
   the reference dev, staging and prod all run.

    build_image(bundle_dir, tag=None, *, repository="liftlock-model", log=print) -> BuiltImage
    push_image(tag, *, credentials=None, log=print) -> "<registry>/<repo>@sha256:..."

`make image` and `python -m infra.components.image_builder` call both. The tag defaults to
`<repository>:b-<first 12 hex of the bundle digest>`; the image carries the full bundle digest in
the label `org.liftlock.bundle-digest`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.bundle import verify_bundle
from ml.errors import MLError

REPOSITORY = "liftlock-model"
#: the embedded registry (`liftlock cluster up` runs it); a stack's liftlock:registry overrides it
DEFAULT_REGISTRY = "127.0.0.1:5000"
BASE_REPOSITORY = "liftlock-base"
DIGEST_LABEL = "org.liftlock.bundle-digest"
TAG_PREFIX = "b-"
TAG_HEX_CHARS = 12
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
# Bump when the base recipe changes in a way the key below does not capture.
BASE_RECIPE_VERSION = "1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CONTAINER_DIR = Path(__file__).with_name("container")
REPO_ROOT = Path(__file__).resolve().parents[2]
# Any fixed time: the wheel's zip entries carry it instead of "now", so unchanged sources give
# an identical wheel (and Docker a cache hit on its layer).
WHEEL_EPOCH = "315532800"
# What the liftlock wheel is built from (copied aside, so the work tree gets no build/ folder).
SOURCE_ITEMS = ("pyproject.toml", "README.md", "liftlock", "ml", "policies", "infra")

Log = Callable[[str], None]
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageBuildError(MLError):
    """The serving image could not be built."""

    exit_code = 6


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    tag: str
    bundle_digest: str


@dataclass(frozen=True)
class BuildContext:
    path: Path
    dockerfile: str
    bundle_digest: str
    base_image: str
    build_args: dict[str, str]
    labels: dict[str, str]


def cache_dir() -> Path:
    return Path(os.environ.get("LIFTLOCK_CACHE", Path.home() / ".cache" / "liftlock"))


def image_tag(bundle_digest: str, repository: str = REPOSITORY) -> str:
    """`<repository>:b-<first 12 hex of the bundle digest>` (ModelImage and promote use it)."""
    return f"{repository}:{TAG_PREFIX}{bundle_digest.split(':', 1)[-1][:TAG_HEX_CHARS]}"


def registry_repository(registry: str, repository: str) -> str:
    """`127.0.0.1:5000` + `liftlock-model` -> `127.0.0.1:5000/liftlock-model`."""
    return f"{registry.rstrip('/')}/{repository}" if registry else repository


def _run(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    except FileNotFoundError as error:
        raise ImageBuildError(f"{what}: {command[0]} not found", hint=_INSTALL_HINT) from error
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-3000:]
        raise ImageBuildError(f"{what} failed ({' '.join(command[:4])} ...):\n{tail}")
    return result


_INSTALL_HINT = "apt-get install -y debootstrap docker.io, and start dockerd (make dockerd)"


# --- the base image ---------------------------------------------------------------------------


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 .sources or one-line .list files)."""
    candidates: list[Path] = []
    if (sources / "sources.list").is_file():
        candidates.append(sources / "sources.list")
    candidates += sorted((sources / "sources.list.d").glob("*")) if sources.is_dir() else []
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for url in re.findall(r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url.rstrip("/")
    return DEFAULT_MIRROR


def base_image_tag() -> str:
    key = hashlib.sha256(
        f"{SUITE}|minbase|{','.join(BASE_PACKAGES)}|{BASE_RECIPE_VERSION}".encode()
    ).hexdigest()[:12]
    return f"{BASE_REPOSITORY}:{SUITE}-{key}"


@contextlib.contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """One builder at a time per cache entry (make image, tests and pulumi may overlap)."""
    import fcntl

    path = cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_debootstrap(log: Log = print) -> str:
    """Path of debootstrap; installed from Debian (like dockerd.sh installs docker.io) when
    missing and we are root."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("debootstrap", path=search)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImageBuildError(
            "debootstrap not found (needed once, to make the base image)",
            hint="sudo apt-get install -y debootstrap",
        )
    log("[image] installing debootstrap (apt-get) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"]
    if subprocess.run(install, capture_output=True, env=env, check=False).returncode != 0:
        _run(["apt-get", "update"], "apt-get update", env=env)
        _run(install, "apt-get install debootstrap", env=env)
    found = shutil.which("debootstrap", path=search)
    if not found:
        raise ImageBuildError("debootstrap still not found after apt-get install")
    return found


def ensure_base_image(client: Any, log: Log = print) -> str:
    """The base image's tag; debootstrapped and imported only when the engine lacks it."""
    with _cache_lock("base-image"):
        return _ensure_base_image(client, log)


def _ensure_base_image(client: Any, log: Log) -> str:
    import docker.errors

    tag = base_image_tag()
    try:
        client.images.get(tag)
        log(f"[image] base {tag}: present")
        return tag
    except docker.errors.ImageNotFound:
        pass
    debootstrap = ensure_debootstrap(log)
    mirror = debian_mirror()
    log(f"[image] base {tag}: debootstrap {SUITE} from {mirror} (about a minute) ...")
    work = cache_dir() / "base-build"
    shutil.rmtree(work, ignore_errors=True)
    root = work / "rootfs"
    root.mkdir(parents=True)
    try:
        _run(
            [
                debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                SUITE, str(root), mirror,
            ],
            "debootstrap",
        )  # fmt: skip
        for leftover in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        tarball = work / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], "tar rootfs")
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=version,
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
            ],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    client.images.get(tag)
    log(f"[image] base {tag}: imported")
    return tag


# --- the wheelhouse ---------------------------------------------------------------------------


def serve_requirements(root: Path = REPO_ROOT) -> list[str]:
    """liftlock's core dependencies plus the `serve` extra, as pinned in pyproject.toml."""
    with (root / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["serve"]]


def ensure_wheelhouse(root: Path = REPO_ROOT, log: Log = print) -> Path:
    """Wheels for every dependency of liftlock[serve], downloaded once per requirement set."""
    with _cache_lock("wheelhouse"):
        return _ensure_wheelhouse(root, log)


def _ensure_wheelhouse(root: Path, log: Log) -> Path:
    requirements = "\n".join(serve_requirements(root)) + "\n"
    lock = root / "requirements.lock"
    constraints = lock.read_text(encoding="utf-8") if lock.is_file() else ""
    key = hashlib.sha256(
        f"{requirements}|{constraints}|{sys.version_info[:2]}|{sys.platform}".encode()
    ).hexdigest()[:16]
    house = cache_dir() / "wheelhouse" / key
    if (house / ".complete").is_file():
        log(f"[image] wheelhouse {house}: present")
        return house
    log(f"[image] wheelhouse {house}: pip download (PyPI, on the host) ...")
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir(parents=True)
    (house / "requirements.txt").write_text(requirements, encoding="utf-8")
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
        "--only-binary=:all:", "--dest", str(house), "-r", str(house / "requirements.txt"),
    ]  # fmt: skip
    if constraints:
        (house / "constraints.txt").write_text(
            "".join(line + "\n" for line in constraints.splitlines() if "==" in line),
            encoding="utf-8",
        )
        command += ["-c", str(house / "constraints.txt")]
    _run(command, "pip download")
    (house / ".complete").write_text("", encoding="utf-8")
    return house


def build_liftlock_wheel(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    """A wheel of this checkout (liftlock, ml, ...), built from a copy of the sources."""
    with tempfile.TemporaryDirectory(prefix="liftlock-src-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for item in SOURCE_ITEMS:
            path = root / item
            if path.is_dir():
                shutil.copytree(path, source / item, ignore=ignore)
            elif path.is_file():
                shutil.copy2(path, source / item)
        _run(
            [
                sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--wheel-dir", str(out_dir), str(source),
            ],
            "pip wheel liftlock",
            env={**os.environ, "SOURCE_DATE_EPOCH": WHEEL_EPOCH},
        )  # fmt: skip
    wheels = sorted(out_dir.glob("liftlock-*.whl"))
    if not wheels:
        raise ImageBuildError(f"pip wheel left no liftlock wheel in {out_dir}")
    return wheels[-1]


# --- the build --------------------------------------------------------------------------------


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def prepare_build_context(
    bundle_dir: Path, context_dir: Path, *, client: Any, log: Log = print
) -> BuildContext:
    """Verify the bundle and lay out everything `docker build` needs, offline, in context_dir:
    wheels/ (dependencies + requirements.txt), app/ (the liftlock wheel), bundle/."""
    digest = verify_bundle(bundle_dir)
    base = ensure_base_image(client, log)
    house = ensure_wheelhouse(log=log)
    wheels = context_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for wheel in house.glob("*.whl"):
        _link_or_copy(wheel, wheels / wheel.name)
    shutil.copy2(house / "requirements.txt", wheels / "requirements.txt")
    app = context_dir / "app"
    app.mkdir()
    build_liftlock_wheel(app)
    shutil.copytree(bundle_dir, context_dir / "bundle")
    shutil.copy2(CONTAINER_DIR / "Dockerfile", context_dir / "Dockerfile")
    return BuildContext(
        path=context_dir,
        dockerfile="Dockerfile",
        bundle_digest=digest,
        base_image=base,
        build_args={"BASE_IMAGE": base},
        labels={DIGEST_LABEL: digest},
    )


def docker_client() -> Any:
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=900)
        client.ping()
    except docker.errors.DockerException as error:
        raise ImageBuildError(
            f"no Docker engine reachable ({error})", hint=_INSTALL_HINT
        ) from error
    return client


def build_image(
    bundle_dir: Path,
    tag: str | None = None,
    *,
    repository: str = REPOSITORY,
    log: Log = print,
) -> BuiltImage:
    """Build the serving image for one bundle on the local engine.

    Verifies the bundle first (BundleError on any altered file), builds the base image and the
    wheelhouse when missing, then runs an offline `docker build`. Tags the image `tag` or
    `image_tag(digest, repository)`.
    """
    import docker.errors

    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="liftlock-image-") as scratch:
        context = prepare_build_context(Path(bundle_dir), Path(scratch), client=client, log=log)
        final_tag = tag or image_tag(context.bundle_digest, repository)
        log(f"[image] docker build {final_tag} (network none) ...")
        try:
            image, _ = client.images.build(
                path=str(context.path),
                dockerfile=context.dockerfile,
                tag=final_tag,
                buildargs=context.build_args,
                labels=context.labels,
                network_mode="none",
                pull=False,
                rm=True,
                forcerm=True,
            )
        except docker.errors.BuildError as error:
            lines = [str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log]
            raise ImageBuildError(
                f"docker build {final_tag} failed: {error.msg}\n{''.join(lines)[-3000:]}"
            ) from error
    log(f"[image] {final_tag} = {image.id} (bundle {context.bundle_digest})")
    return BuiltImage(image_id=str(image.id), tag=final_tag, bundle_digest=context.bundle_digest)


def parse_credentials(credentials: str | None) -> dict[str, str] | None:
    """`user:token` (liftlock:registryCredentials, a Pulumi secret) -> docker's auth_config."""
    if not credentials:
        return None
    username, sep, password = credentials.partition(":")
    if not sep or not username:
        raise ImageBuildError(
            "liftlock:registryCredentials is not `user:token`",
            hint="pulumi config set --secret liftlock:registryCredentials '<user>:<token>'",
        )
    return {"username": username, "password": password}


def push_image(tag: str, *, credentials: str | None = None, log: Log = print) -> str:
    """Push `<registry>/<repository>:<tag>` and return `<registry>/<repository>@sha256:<digest>`,
    the manifest digest the registry answered (what a cluster pulls and promote moves)."""
    client = docker_client()
    repository, _, version = tag.rpartition(":")
    if "/" not in repository:
        raise ImageBuildError(f"cannot push {tag}: it names no registry (<registry>/<repo>:<tag>)")
    registry = repository.split("/", 1)[0]
    log(f"[image] docker push {tag} ...")
    digest = ""
    problems: list[str] = []
    try:
        for event in client.api.push(
            repository,
            tag=version,
            stream=True,
            decode=True,
            auth_config=parse_credentials(credentials),
        ):
            if "error" in event:
                problems.append(str(event["error"]))
            digest = str((event.get("aux") or {}).get("Digest", digest))
    except Exception as error:  # requests' ConnectionError when the engine goes away
        problems.append(str(error))
    if problems or not DIGEST_RE.match(digest):
        raise ImageBuildError(
            f"docker push {tag} to the registry {registry} failed: "
            f"{'; '.join(problems) or 'no digest in its answer'}",
            hint=f"is the registry running? `liftlock cluster up` starts the embedded one on "
            f"{DEFAULT_REGISTRY}; for your own registry set liftlock:registry and "
            "liftlock:registryCredentials (a secret)",
        )
    reference = f"{repository}@{digest}"
    log(f"[image] pushed {reference}")
    return reference


_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def registry_digest(tag: str, *, timeout: float = 5) -> str | None:
    """The manifest digest a registry holds for `<registry>/<repository>:<tag>` (an anonymous
    HEAD of the distribution API; plain HTTP for 127.0.0.1, HTTPS elsewhere), None when the
    registry does not answer or has no such tag."""
    import urllib.error
    import urllib.request

    repository, _, version = tag.rpartition(":")
    registry, _, name = repository.partition("/")
    if not name:
        return None
    scheme = "http" if registry.split(":", 1)[0] in ("127.0.0.1", "localhost") else "https"
    request = urllib.request.Request(
        f"{scheme}://{registry}/v2/{name}/manifests/{version}",
        method="HEAD",
        headers={"Accept": _MANIFEST_TYPES},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            digest = str(answer.headers.get("Docker-Content-Digest", ""))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return digest if DIGEST_RE.match(digest) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.components.image_builder", description=__doc__
    )
    parser.add_argument("--bundle", type=Path, default=Path("bundle"), help="bundle directory")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="registry to push to")
    parser.add_argument("--no-push", action="store_true", help="build only (local tag)")
    args = parser.parse_args(argv)
    try:
        repository = REPOSITORY if args.no_push else registry_repository(args.registry, REPOSITORY)
        built = build_image(args.bundle, repository=repository)
        if not args.no_push:
            print(push_image(built.tag))
    except MLError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
