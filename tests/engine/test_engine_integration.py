"""The language host and the dynamic-provider launcher under the real engine (.tools/bin/pulumi).

Each test works on a throwaway file:// backend (the `pulumi_cli` fixture), and every pulumi
command also checks that no plugin was taken from $PATH.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers.pulumi_cli import PulumiCLI, write_policy_pack, write_python_project

pytestmark = [pytest.mark.slow, pytest.mark.engine]

MakeCLI = Callable[..., PulumiCLI]
KUBERNETES_VERSION = "4.25.0"

CONFIGMAP_PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
provider = k8s.Provider("render", render_yaml_to_directory=config.require("renderDir"))
settings = k8s.core.v1.ConfigMap(
    "settings",
    metadata={"name": config.require("configMapName"), "namespace": "default"},
    data={"threshold": config.get("threshold") or "0.5"},
    opts=pulumi.ResourceOptions(provider=provider),
)
pulumi.export("configMapName", settings.metadata["name"])
"""

NAMING_PACK = """
from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy


def configmap_name_has_prefix(args, report_violation):
    if args.resource_type != "kubernetes:core/v1:ConfigMap":
        return
    name = (args.props.get("metadata") or {}).get("name", "")
    if not name.startswith("model-"):
        report_violation(f"ConfigMap name {name!r} must start with 'model-'; rename it")


PolicyPack(
    name="naming",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="configmap-name-prefix",
            description="ConfigMaps are named model-*",
            validate=configmap_name_has_prefix,
        )
    ],
)
"""

DYNAMIC_PROGRAM = """
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


class TextFileProvider(ResourceProvider):
    def create(self, props):
        Path(props["path"]).write_text(props["content"])
        return CreateResult(id_=props["path"], outs=props)

    def diff(self, id, olds, news):
        return DiffResult(changes=olds.get("content") != news.get("content"))

    def update(self, id, olds, news):
        Path(news["path"]).write_text(news["content"])
        return UpdateResult(outs=news)

    def delete(self, id, props):
        Path(props["path"]).unlink(missing_ok=True)


class TextFile(Resource):
    def __init__(self, name, path, content):
        super().__init__(TextFileProvider(), name, {"path": path, "content": content})


config = pulumi.Config()
text = TextFile("note", config.require("path"), config.require("content"))
pulumi.export("path", text.id)
"""


def require_kubernetes_provider(pulumi: PulumiCLI) -> None:
    plugins = pulumi("plugin", "ls", "--json").json() or []
    found = {(p.get("name"), p.get("version")) for p in plugins if p.get("kind") == "resource"}
    if ("kubernetes", KUBERNETES_VERSION) not in found:
        pytest.fail(
            f"the kubernetes provider {KUBERNETES_VERSION} is not in the plugin cache "
            f"(found {sorted(found)}): run `bash toolchain/build.sh kubernetes`"
        )


def rendered_configmaps(render_dir: Path) -> dict[str, dict[str, object]]:
    found = {}
    for path in sorted(render_dir.rglob("*.yaml")):
        with path.open() as handle:
            for document in yaml.safe_load_all(handle):
                if document and document.get("kind") == "ConfigMap":
                    found[document["metadata"]["name"]] = document
    return found


def test_configmap_preview_up_noop_destroy(pulumi_cli: MakeCLI, tmp_path: Path) -> None:
    render_dir = tmp_path / "rendered"
    project = write_python_project(tmp_path / "project", CONFIGMAP_PROGRAM)
    pulumi = pulumi_cli(
        project, config={"renderDir": str(render_dir), "configMapName": "model-settings"}
    )
    require_kubernetes_provider(pulumi)

    preview = pulumi("preview")
    assert "kubernetes:core/v1:ConfigMap" in preview.output and "create" in preview.output
    assert not render_dir.exists() or not rendered_configmaps(render_dir), "preview wrote files"

    up = pulumi("up", "--yes")
    configmaps = rendered_configmaps(render_dir)
    assert set(configmaps) == {"model-settings"}, up.output
    assert configmaps["model-settings"]["data"] == {"threshold": "0.5"}

    again = pulumi("up", "--yes", "--expect-no-changes")
    assert "unchanged" in again.output

    pulumi("destroy", "--yes")
    assert rendered_configmaps(render_dir) == {}, "destroy must remove the rendered manifest"
    print(
        f"\n[timing] up {up.seconds:.1f}s, no-op up {again.seconds:.1f}s, "
        f"preview {preview.seconds:.1f}s"
    )


def test_policy_pack_fails_a_violating_configmap_and_passes_a_compliant_one(
    pulumi_cli: MakeCLI, tmp_path: Path
) -> None:
    pack = write_policy_pack(tmp_path / "pack", NAMING_PACK)
    project = write_python_project(tmp_path / "project", CONFIGMAP_PROGRAM)
    pulumi = pulumi_cli(
        project, config={"renderDir": str(tmp_path / "rendered"), "configMapName": "settings"}
    )
    require_kubernetes_provider(pulumi)

    violating = pulumi("preview", "--policy-pack", str(pack), check=False)
    assert violating.returncode != 0, violating.describe()
    assert "configmap-name-prefix" in violating.output, "the rule must be named"
    assert "kubernetes:core/v1:ConfigMap: settings" in violating.output, "and the resource"
    assert "must start with 'model-'" in violating.output

    pulumi("config", "set", "configMapName", "model-settings")
    compliant = pulumi("preview", "--policy-pack", str(pack))
    assert "configmap-name-prefix" not in compliant.output or "✅" in compliant.output
    print(f"\n[timing] preview --policy-pack {compliant.seconds:.1f}s (compliant)")


def test_program_exception_fails_the_update_with_the_programs_error(
    pulumi_cli: MakeCLI, tmp_path: Path
) -> None:
    project = write_python_project(
        tmp_path / "project",
        """
        import pulumi
        from bundle import check_digest

        pulumi.export("stage", "before the error")
        check_digest("sha256:0000")
        """,
        files={
            "bundle.py": """
            def check_digest(digest):
                raise RuntimeError(f"model bundle digest {digest} does not match bundle.json")
            """
        },
    )
    pulumi = pulumi_cli(project)
    result = pulumi("up", "--yes", check=False)
    assert result.returncode != 0
    expected = "RuntimeError: model bundle digest sha256:0000 does not match bundle.json"
    assert expected in result.output
    assert str(project / "infra" / "bundle.py") in result.output, "the user's traceback"
    assert "program_runner" not in result.output and "language_host" not in result.output


def test_dynamic_provider_create_update_delete(pulumi_cli: MakeCLI, tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    project = write_python_project(tmp_path / "project", DYNAMIC_PROGRAM)
    pulumi = pulumi_cli(project, config={"path": str(target), "content": "v1"})

    created = pulumi("up", "--yes")
    assert target.read_text() == "v1", created.output

    pulumi("config", "set", "content", "v2")
    updated = pulumi("up", "--yes")
    assert target.read_text() == "v2"
    assert "1 updated" in updated.output, updated.output

    pulumi("destroy", "--yes")
    assert not target.exists()


def test_secret_config_reaches_the_program_as_a_secret(pulumi_cli: MakeCLI, tmp_path: Path) -> None:
    project = write_python_project(
        tmp_path / "project",
        """
        import pulumi
        config = pulumi.Config()
        pulumi.export("token", config.require_secret("token"))
        pulumi.export("tokenIsSecret", pulumi.runtime.is_config_secret("test-project:token"))
        """,
    )
    pulumi = pulumi_cli(project, secrets={"token": "s3cr3t"})
    pulumi("up", "--yes")
    outputs = pulumi("stack", "output", "--json").json()
    assert outputs == {"token": "[secret]", "tokenIsSecret": True}
    revealed = pulumi("stack", "output", "--json", "--show-secrets").json()
    assert revealed["token"] == "s3cr3t"
