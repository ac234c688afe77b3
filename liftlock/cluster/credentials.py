"""The embedded cluster's throwaway credentials: a CA, serving certificates, a static token per
component and the kubeconfigs that carry them. Made once per state folder (kept across `down`,
so the kubeconfig a user or a stack holds stays valid), all files mode 0600."""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from liftlock.cluster.layout import (
    BRIDGE_ADDRESS,
    CLUSTER_NAME,
    CONTEXT_NAME,
    KUBERNETES_SERVICE_IP,
    NODE_NAME,
    Layout,
)
from liftlock.cluster.process import run

#: kubeconfig name -> (user, group) of its static token
IDENTITIES = {
    "admin": ("liftlock-admin", "system:masters"),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "scheduler": ("system:kube-scheduler", "system:authenticated"),
    "controller-manager": ("system:kube-controller-manager", "system:authenticated"),
    "kube-proxy": ("system:kube-proxy", "system:authenticated"),
}
CERT_DAYS = "365"


def pki_dir(layout: Layout) -> Path:
    return layout.state_dir / "pki"


def _key_args() -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _sign(pki: Path, name: str, subject: str, extensions: str) -> None:
    run(
        [
            "openssl", "req", "-new", *_key_args(), "-keyout", str(pki / f"{name}.key"),
            "-out", str(pki / f"{name}.csr"), "-subj", subject,
        ],
        what=f"credentials: {name} key",
    )  # fmt: skip
    (pki / f"{name}.ext").write_text(extensions + "\n", encoding="utf-8")
    run(
        [
            "openssl", "x509", "-req", "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
            "-set_serial", str(secrets.randbits(62)), "-days", CERT_DAYS,
            "-in", str(pki / f"{name}.csr"), "-extfile", str(pki / f"{name}.ext"),
            "-out", str(pki / f"{name}.crt"),
        ],
        what=f"credentials: {name} certificate",
    )  # fmt: skip


def ensure_pki(layout: Layout) -> Path:
    pki = pki_dir(layout)
    if (pki / "sa.key").is_file():
        return pki
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    run(
        [
            "openssl", "req", "-x509", *_key_args(), "-keyout", str(pki / "ca.key"),
            "-out", str(pki / "ca.crt"), "-subj", "/CN=liftlock-embedded-ca", "-days", CERT_DAYS,
        ],
        what="credentials: CA",
    )  # fmt: skip
    _sign(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName=IP:127.0.0.1,IP:{KUBERNETES_SERVICE_IP},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
        "\nextendedKeyUsage=serverAuth",
    )
    _sign(
        pki,
        "kubelet",
        f"/CN=system:node:{NODE_NAME}",
        f"subjectAltName=IP:127.0.0.1,IP:{BRIDGE_ADDRESS},DNS:{NODE_NAME},DNS:localhost"
        "\nextendedKeyUsage=serverAuth",
    )
    _sign(
        pki,
        "apiserver-kubelet-client",
        "/CN=kube-apiserver-kubelet-client",
        "extendedKeyUsage=clientAuth",
    )
    run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(pki / "sa.key")],
        what="credentials: service-account key",
    )  # fmt: skip
    for path in pki.iterdir():
        path.chmod(0o600)
    return pki


def kubeconfig_path(layout: Layout, name: str) -> Path:
    return layout.kubeconfig if name == "admin" else layout.state_dir / f"{name}.kubeconfig"


def kubeconfig_document(layout: Layout, user: str, token: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": layout.apiserver_url,
                    "certificate-authority": str(pki_dir(layout) / "ca.crt"),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CONTEXT_NAME,
    }


def ensure_tokens(layout: Layout) -> Path:
    """tokens.csv for the API server and one kubeconfig per identity (the admin's is the one
    `liftlock cluster up` prints and the stacks use)."""
    tokens = layout.state_dir / "tokens.csv"
    if tokens.is_file() and all(kubeconfig_path(layout, n).is_file() for n in IDENTITIES):
        return tokens
    lines = []
    for name, (user, group) in IDENTITIES.items():
        token = secrets.token_hex(16)
        lines.append(f'{token},{user},{user},"{group}"')
        path = kubeconfig_path(layout, name)
        path.write_text(
            yaml.safe_dump(kubeconfig_document(layout, user, token), sort_keys=False),
            encoding="utf-8",
        )
        path.chmod(0o600)
    tokens.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokens.chmod(0o600)
    return tokens
