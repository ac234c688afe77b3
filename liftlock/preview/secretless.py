"""Previews without the stack passphrase (pull requests from forks get no secrets).

The engine cannot open a passphrase-protected stack without its passphrase, so the preview runs
on a stand-in: the stack's state is exported from the real backend (ciphertext stays ciphertext),
every secret in it — and every `secure:` value of the stack file — is replaced by a placeholder,
and the result is imported into a throwaway backend under a throwaway passphrase. Diffs are then
real for everything but the secrets, which the comment lists as "not known". When the state
cannot be exported (no access to the backend), the stand-in starts empty and the comment says so.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from liftlock.engine.env import run_pulumi
from liftlock.engine.preview import SECRET_SIGNATURE
from liftlock.errors import ExternalCommandError
from liftlock.stackfile import stack_path

#: What a secret becomes when the passphrase is unavailable.
UNKNOWN_SECRET_PLACEHOLDER = "liftlock-preview-unknown-secret"
SECRET_MARKER = "1b47061264138c4ac30d75fd1eb44270"
PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def _blank_config(node: Any, where: str, found: list[str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"secure"}:
            found.append(where)
            return UNKNOWN_SECRET_PLACEHOLDER
        return {
            k: _blank_config(v, f"{where}.{k}" if where else str(k), found) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_blank_config(v, f"{where}[{i}]", found) for i, v in enumerate(node)]
    return node


def config_without_secrets(config_text: str) -> tuple[str, list[str]]:
    """The stack file with every `secure:` value (at any depth) a plain placeholder and no
    encryption salt, and the config keys that were secret."""
    document = yaml.safe_load(config_text) or {}
    found: list[str] = []
    config = _blank_config(document.get("config") or {}, "", found)
    rest = {k: v for k, v in document.items() if k not in ("config", "encryptionsalt")}
    return yaml.safe_dump({**rest, "config": config}, sort_keys=False), found


def blank_state_secrets(node: Any, where: str, found: list[str]) -> Any:
    """A copy of exported state with every ciphertext secret replaced by a plaintext placeholder;
    `found` collects where each one was (`<resource name>.<property path>`)."""
    if isinstance(node, dict):
        if node.get(SECRET_SIGNATURE) == SECRET_MARKER and "ciphertext" in node:
            found.append(where)
            return {
                SECRET_SIGNATURE: SECRET_MARKER,
                "plaintext": json.dumps(UNKNOWN_SECRET_PLACEHOLDER),
            }
        return {
            k: blank_state_secrets(v, f"{where}.{k}" if where else k, found)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [blank_state_secrets(v, f"{where}[{i}]", found) for i, v in enumerate(node)]
    return node


def secretless_deployment(exported: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The exported checkpoint without its secrets provider and with secrets blanked."""
    found: list[str] = []
    deployment = dict(exported.get("deployment") or {})
    deployment.pop("secrets_providers", None)
    resources = []
    for resource in deployment.get("resources") or []:
        name = str(resource.get("urn", "")).split("::")[-1]
        resources.append(blank_state_secrets(resource, name, found))
    deployment["resources"] = resources
    return {**exported, "deployment": deployment}, [f"state: {w}" for w in found]


@dataclass
class StandIn:
    """Where and how to preview one stack without its passphrase."""

    env: dict[str, str]
    config_file: Path
    unknown_values: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _pulumi(
    args: list[str], root: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return run_pulumi([*args, "--cwd", str(root)], cwd=root, env=env, timeout=600)


def prepare_stand_in(
    root: Path, stack: str, env: Mapping[str, str], workdir: Path, stack_exists: bool
) -> StandIn:
    """A throwaway backend holding a secret-free copy of `stack`, ready for `pulumi preview`."""
    source = stack_path(root, stack)
    text = source.read_text(encoding="utf-8") if source.is_file() else "config: {}\n"
    folder = workdir / f"stand-in-{stack}"
    backend = folder / "backend"
    backend.mkdir(parents=True)
    # A project folder of its own: `stack init` writes the throwaway salt into its stack file,
    # which the preview then reads through --config-file.
    project = folder / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_bytes((root / "Pulumi.yaml").read_bytes())
    config_file = project / "stacks" / f"Pulumi.{stack}.yaml"
    blanked, secret_config = config_without_secrets(text)
    config_file.write_text(blanked, encoding="utf-8")
    stand_in_env = {k: v for k, v in env.items() if k not in PASSPHRASE_VARIABLES}
    stand_in_env["PULUMI_BACKEND_URL"] = backend.resolve().as_uri()
    stand_in_env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_hex(16)
    result = StandIn(
        env=stand_in_env,
        config_file=config_file,
        unknown_values=[f"config: {k}" for k in dict.fromkeys(secret_config)],
    )

    deployment = None
    if stack_exists:
        exported = _pulumi(["stack", "export", "--stack", stack], root, env)
        if exported.returncode == 0:
            deployment, in_state = secretless_deployment(json.loads(exported.stdout))
            result.unknown_values += in_state
        else:
            result.notes.append(
                f"The state of `{stack}` could not be read without credentials: the preview "
                "starts from an empty stack (every resource shows as a create)."
            )
    else:
        result.notes.append(
            f"Stack `{stack}` has no state in the backend: every resource shows as a create."
        )

    created = _pulumi(["stack", "init", stack], project, stand_in_env)
    if created.returncode != 0:
        raise ExternalCommandError(
            f"creating the stand-in stack `{stack}` failed: {created.stderr.strip()[-500:]}"
        )
    if deployment is not None:
        state_file = folder / "state.json"
        state_file.write_text(json.dumps(deployment), encoding="utf-8")
        imported = _pulumi(
            ["stack", "import", "--stack", stack, "--file", str(state_file), "--force"],
            project,
            stand_in_env,
        )
        if imported.returncode != 0:
            raise ExternalCommandError(
                f"importing the secret-free state of `{stack}` into the stand-in backend failed: "
                f"{imported.stderr.strip()[-500:]}"
            )
    return result
