"""StackConfig: the committed stacks are valid; each kind of broken config names its key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from infra.config import (
    StackConfigError,
    cpu_millicores,
    load_stack_file,
    memory_bytes,
    parse_stack_config,
)
from tests.infra.fixtures import BROKEN_CONFIGS, as_pulumi_config, stack_values

DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stack_files_are_valid(repo_root: Path, stack: str) -> None:
    config = load_stack_file(repo_root / "stacks" / f"Pulumi.{stack}.yaml")
    assert config.stack == stack
    if stack == "dev":
        assert config.target == "docker" and config.replicas == 1
    else:
        assert config.target == "render"
        assert config.render_dir == f"deploy/{stack}"
    if stack == "prod":
        assert config.replicas >= 3, "prod must run at least 3 replicas"
        assert config.autoscaling.enabled
        assert config.image and "@sha256:" in config.image, "prod pins the image by digest"


def test_pulumi_string_values_are_decoded_by_the_schema_type() -> None:
    raw = as_pulumi_config(stack_values("render", DIGEST, replicas=3))
    values = {key.removeprefix("liftlock:"): value for key, value in raw.items()}
    config = parse_stack_config(values, stack="prod")
    assert config.replicas == 3
    assert config.resources is not None and config.resources.limits.memory == "512Mi"


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        *BROKEN_CONFIGS.values(),
        (
            {
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                }
            },
            "liftlock:resources.limits.memory",
            "below resources.requests.memory",
        ),
        ({"target": "k8s"}, "liftlock:target", 'allowed: "docker", "render", "cluster"'),
        ({"labels": {"team": "a", "owner": "b"}}, "liftlock:labels.costCenter", "missing key"),
        ({"exposure": "everyone"}, "liftlock:exposure", "allowed"),
        (
            {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
            "liftlock:autoscaling.maxReplicas",
            "below minReplicas",
        ),
        ({"kubeContext": "kind"}, "liftlock:kubeContext", "only the cluster target"),
    ],
)
def test_broken_config_names_key_value_and_what_is_allowed(
    overrides: dict[str, object], key: str, fragment: str
) -> None:
    values = {**stack_values("render", DIGEST), **overrides}
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(values, stack="staging", decode=False)
    message = str(caught.value)
    assert key in message, f"the error must name {key}: {message}"
    assert fragment in message, message
    assert "stacks/Pulumi.staging.yaml" in message


def test_render_target_requires_digest_image_and_namespace() -> None:
    values = {"target": "render", "labels": stack_values("render", DIGEST)["labels"]}
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(values, stack="prod", decode=False)
    for key in ("bundleDigest", "image", "namespace", "resources", "gitops"):
        assert f"liftlock:{key}" in str(caught.value)


def test_quantities_compare_across_units() -> None:
    assert cpu_millicores("1") == cpu_millicores("1000m")
    assert cpu_millicores("0.5") < cpu_millicores("600m")
    assert memory_bytes("1Gi") == memory_bytes("1024Mi")
    assert memory_bytes("1G") < memory_bytes("1Gi")


def test_a_render_stack_may_also_apply_to_a_cluster() -> None:
    values = {
        **stack_values("render", DIGEST),
        "applyTo": {"kubeconfig": "~/.cache/liftlock/cluster/kubeconfig", "kubeContext": "x"},
    }
    config = parse_stack_config(values, stack="staging", decode=False)
    assert config.apply_to is not None
    assert config.apply_to.kube_context == "x"
    assert config.apply_to.rollout_timeout_seconds == 180
    docker = {**stack_values("docker", DIGEST), "applyTo": values["applyTo"]}
    with pytest.raises(StackConfigError, match="liftlock:applyTo: only the render target"):
        parse_stack_config(docker, stack="dev", decode=False)
    with pytest.raises(StackConfigError, match=r"liftlock:applyTo\.kubeContext"):
        parse_stack_config(
            {**values, "applyTo": {"kubeconfig": "k"}}, stack="staging", decode=False
        )


def test_the_registry_defaults_to_the_embedded_one_and_is_one_key() -> None:
    dev = parse_stack_config(stack_values("docker", DIGEST), stack="dev", decode=False)
    assert dev.registry == "127.0.0.1:5000"
    own = {**stack_values("docker", DIGEST), "registry": "ghcr.io/acme"}
    assert parse_stack_config(own, stack="dev", decode=False).registry == "ghcr.io/acme"
    with pytest.raises(StackConfigError, match="liftlock:registry"):
        parse_stack_config({**own, "registry": "https://ghcr.io/acme"}, stack="dev", decode=False)


# ---------------------------------------------------------------------------------------------
# Secrets: a declared secret key only as a secret; no other key may hold one


SECURE = {"secure": "v1:cGxhY2Vob2xkZXI=:v1:bm90LWEtcmVhbC1jaXBoZXJ0ZXh0"}


def _with_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema that declares `registryToken` secret (issue 15's registry credentials' kind)."""
    import infra.config as config_module

    schema = config_module.load_schema()
    schema["properties"]["registryToken"] = {"type": "string", "x-liftlock-secret": True}
    monkeypatch.setattr(config_module, "load_schema", lambda: schema)


def _write_stack(tmp_path: Path, values: dict[str, object]) -> Path:
    import yaml

    path = tmp_path / "Pulumi.staging.yaml"
    config = {f"liftlock:{key}": value for key, value in values.items()}
    path.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return path


def test_a_secret_inside_a_plain_key_is_refused(tmp_path: Path) -> None:
    values = stack_values("render", DIGEST)
    values["gitops"] = {"repoUrl": SECURE, "revision": "main"}  # config set --secret --path
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(_write_stack(tmp_path, values))
    message = str(caught.value)
    assert "liftlock:gitops is set as a secret, but it is not a secret key" in message
    assert str(tmp_path / "Pulumi.staging.yaml") in message


def test_credentials_in_the_gitops_url_are_refused(tmp_path: Path) -> None:
    values = stack_values("render", DIGEST)
    values["gitops"] = {"repoUrl": "https://bot:TOKEN@example.com/liftlock.git"}
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(_write_stack(tmp_path, values))
    assert "liftlock:gitops.repoUrl" in str(caught.value)
    assert "without credentials" in str(caught.value)


def test_declared_secret_key_only_as_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_secret_key(monkeypatch)
    values = stack_values("render", DIGEST)
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(_write_stack(tmp_path, {**values, "registryToken": "plain-token"}))
    assert "liftlock:registryToken is a secret but is set in plain text" in str(caught.value)
    assert "pulumi config set --secret liftlock:registryToken" in str(caught.value)

    config = load_stack_file(_write_stack(tmp_path, {**values, "registryToken": SECURE}))
    assert repr(config.secrets["registryToken"]) == "[secret]"  # never decrypted


def test_the_program_gets_a_declared_secret_as_a_secret_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pulumi

    from tests.infra.fixtures import as_pulumi_config

    _with_secret_key(monkeypatch)
    config = as_pulumi_config(stack_values("render", DIGEST))
    config["liftlock:registryToken"] = "s3cr3t-token"

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:  # type: ignore[type-arg]
            return args.name, args.inputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:  # type: ignore[type-arg]
            return {}, []

    pulumi.runtime.set_mocks(Mocks(), project="liftlock", stack="staging", preview=False)
    pulumi.runtime.set_all_config(config, ["liftlock:registryToken"])
    from infra.config import load_stack_config

    loaded = load_stack_config()
    token = loaded.secrets["registryToken"]
    assert isinstance(token, pulumi.Output)
    loop = asyncio.get_event_loop()
    assert loop.run_until_complete(token.is_secret()) is True
    assert loop.run_until_complete(token.future()) == "s3cr3t-token"

    # Set in plain text, it is refused before any resource is declared.
    pulumi.runtime.set_all_config(config, [])
    with pytest.raises(StackConfigError) as caught:
        load_stack_config()
    assert "liftlock:registryToken is a secret but is set in plain text" in str(caught.value)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text("config:\n  liftlock:target: render\n  liftlock:labels: {team: [\n")
    with pytest.raises(StackConfigError) as caught:
        load_stack_file(path)
    assert f"{path}:" in str(caught.value) and "line 4" in str(caught.value)
    assert "not valid YAML" in str(caught.value)


def test_registry_credentials_are_a_declared_secret(tmp_path: Path) -> None:
    """The one secret key the schema declares today: a docker stack's registry credentials."""
    values = stack_values("docker", DIGEST)
    with pytest.raises(StackConfigError, match="liftlock:registryCredentials is a secret but is"):
        load_stack_file(_write_stack(tmp_path, {**values, "registryCredentials": "bot:token"}))
    config = load_stack_file(_write_stack(tmp_path, {**values, "registryCredentials": SECURE}))
    assert repr(config.secrets["registryCredentials"]) == "[secret]"
