"""The pod sandbox ("pause") image, made here: none can be pulled.

`pause.c` is compiled static with gcc, packed as a one-layer OCI image (deterministic tar and
gzip: the same binary gives the same digest) and pushed to the embedded registry over its HTTP
API, so containerd's CRI can name it as the sandbox image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import httpx

from liftlock.cluster.process import ClusterError, run

SOURCE = Path(__file__).with_name("pause.c")
REPOSITORY = "liftlock/pause"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def compile_pause(out_dir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ClusterError("pause image: gcc not found", hint="apt-get install -y gcc libc6-dev")
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / "pause"
    run([gcc, "-static", "-Os", "-s", "-o", str(binary), str(SOURCE)], what="pause image: gcc")
    return binary


def layer_of(binary: Path) -> tuple[bytes, str]:
    """(gzipped layer, diff id) holding /pause, with fixed owner, mode and time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size = binary.stat().st_size
        info.mode = 0o755
        info.mtime = 0
        with binary.open("rb") as handle:
            tar.addfile(info, handle)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _upload_blob(client: httpx.Client, base: str, data: bytes) -> str:
    digest = _digest(data)
    if client.head(f"{base}/blobs/{digest}").status_code == 200:
        return digest
    started = client.post(f"{base}/blobs/uploads/")
    started.raise_for_status()
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


def push_pause_image(registry: str, build_dir: Path) -> str:
    """Build and push the pause image; return `<registry>/liftlock/pause:<tag>`."""
    layer, diff_id = layer_of(compile_pause(build_dir))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        },
        sort_keys=True,
    ).encode()
    base = f"http://{registry}/v2/{REPOSITORY}"
    try:
        with httpx.Client(timeout=30) as client:
            config_digest = _upload_blob(client, base, config)
            layer_digest = _upload_blob(client, base, layer)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": config_digest,
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": layer_digest,
                            "size": len(layer),
                        }
                    ],
                },
                sort_keys=True,
            ).encode()
            tag = _digest(manifest).split(":", 1)[1][:12]
            client.put(
                f"{base}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
            ).raise_for_status()
    except httpx.HTTPError as error:
        raise ClusterError(
            f"pause image: push to the registry {registry} failed ({error})"
        ) from error
    return f"{registry}/{REPOSITORY}:{tag}"
