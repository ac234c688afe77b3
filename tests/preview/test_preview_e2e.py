"""`liftlock preview` end to end on a fresh clone with NO backend state anywhere (as in CI).

Each change is one commit on top of the clone's HEAD, previewed against it by the real engine:
render stacks are rendered from the head program and diffed against the base's committed
deploy/<stack>/; the docker stack says it has no state to diff against. The clone's backend is
never written by the render stacks, and the clone is left as it was.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.preview.project_clone import FAKE_IMAGE, CommandFailed, ProjectClone

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> ProjectClone:
    made = ProjectClone.make(repo_root, tmp_path_factory.mktemp("preview-e2e"))
    made.dvc("repro", "--pull", timeout=1800)
    assert made.dirty() == [], made.dirty()  # the committed metrics are what repro makes
    return made


@pytest.fixture(scope="module")
def base(clone: ProjectClone) -> str:
    return clone.git("rev-parse", "HEAD").strip()


def preview_of(clone: ProjectClone, base: str, edit, *extra: str, check: bool = True):
    """Apply `edit`, commit, preview against `base`; then put the clone back at `base`."""
    edit()
    clone.commit_all("test: head")
    out = clone.root.parent / "preview"
    try:
        result = subprocess.run(
            [
                str(clone.source / ".venv" / "bin" / "python"), "-m", "liftlock.cli", "preview",
                "--base", base, "--out", f"{out}.md", "--json-out", f"{out}.json", *extra,
            ],
            cwd=clone.root, env=clone.env(), capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise CommandFailed(f"preview exited {result.returncode}:\n{result.stderr[-5000:]}")
        data = json.loads(Path(f"{out}.json").read_text(encoding="utf-8"))
        return data, Path(f"{out}.md").read_text(encoding="utf-8"), result
    finally:
        clone.git("reset", "--quiet", "--hard", base)
        assert clone.dirty() == [], clone.dirty()


def stack(data, name):
    return next(s for s in data["stacks"] if s["stack"] == name)


def fields(preview) -> list[tuple[str, str, str, object, object]]:
    return [
        (r["op"], r["type"].split(":")[-1], p["path"], p["old"], p["new"])
        for r in preview["resources"]
        for p in r["properties"]
    ]


def set_prod_cpu_request(clone: ProjectClone) -> None:
    path = clone.root / "stacks" / "Pulumi.prod.yaml"
    text = path.read_text(encoding="utf-8")
    new, count = re.subn(r"(requests:\n\s+cpu: )500m", r"\g<1>600m", text)
    assert count == 1, "prod's requests.cpu 500m not found once"
    path.write_text(new, encoding="utf-8")


def test_staging_replicas_is_one_field_of_staging_and_nothing_else(clone, base):
    data, markdown, _ = preview_of(
        clone, base, lambda: clone.set_config_number("staging", "replicas", 3)
    )
    staging = stack(data, "staging")
    assert staging["status"] == "ok", staging["errors"]
    assert fields(staging) == [("update", "Deployment", "spec.replicas", 2, 3)]
    assert (
        "deploy/staging/" in staging["diff_source"] and "no backend state" in staging["diff_source"]
    )
    assert staging["manifests_verdict"] == "rendered-at-merge" and staging["rendered_digest"]
    assert {s["stack"]: s["status"] for s in data["stacks"]} == {
        "dev": "not-affected", "staging": "ok", "prod": "not-affected",
    }  # fmt: skip
    assert "| **staging** | 1 update |" in markdown and "`spec.replicas`: `2` → `3`" in markdown
    assert "<!-- liftlock-rendered " in markdown  # what the deploy workflow checks
    assert data["gates"]["staging"]["verdict"] in ("pass", "advisory"), data["gates"]


def test_prod_cpu_request_is_one_field_of_prod(clone, base):
    data, _, _ = preview_of(clone, base, lambda: set_prod_cpu_request(clone), "--no-gates")
    prod = stack(data, "prod")
    assert fields(prod) == [
        ("update", "Deployment", "spec.template.spec.containers[0].resources.requests.cpu",
         "500m", "600m"),
    ]  # fmt: skip
    assert stack(data, "staging")["status"] == "not-affected"


def test_a_promotion_changes_prods_image_only(clone, base):
    data, _, _ = preview_of(
        clone, base, lambda: clone.pin("prod", clone.bundle_digest(), FAKE_IMAGE), "--no-gates"
    )
    prod = stack(data, "prod")
    changed = {(kind, path, new) for _, kind, path, _, new in fields(prod)}
    assert changed == {
        ("Deployment", "spec.template.spec.containers[0].image", FAKE_IMAGE),
        ("CronJob", "spec.jobTemplate.spec.template.spec.containers[0].image", FAKE_IMAGE),
    }, changed


def test_a_hand_edit_to_deploy_prod_fails_the_check_naming_file_and_field(clone, base):
    deployment = next((clone.root / "deploy" / "prod").rglob("apps_v1-deployment-*.yaml"))
    relative = deployment.relative_to(clone.root).as_posix()

    def hand_edit() -> None:
        text = deployment.read_text()
        assert 'cpu: "1"' in text, "prod's cpu limit moved: pick another field to hand-edit"
        deployment.write_text(text.replace('cpu: "1"', 'cpu: "2"'))

    data, markdown, result = preview_of(
        clone, base, hand_edit, "--no-gates", "--fail-on-policy", check=False
    )
    prod = stack(data, "prod")
    assert result.returncode == 1, result.stderr
    assert prod["manifests_verdict"] == "out-of-sync" and prod["rendered_in_sync"] is False
    problem = (
        f'{relative}: spec.template.spec.containers[0].resources.limits.cpu ("2" committed, '
        '"1" rendered)'
    )
    assert prod["manifest_problems"] == [problem]
    assert problem in result.stderr and "❌ hand edited" in markdown
    assert fields(prod) == []  # the render is what the base committed: nothing to deploy


def test_a_train_param_shows_metrics_with_charts_and_no_change_for_pinned_stacks(clone, base):
    data, markdown, _ = preview_of(
        clone, base, lambda: clone.set_param("    C: 1.0\n", "    C: 0.05\n"), "--no-gates",
        "--html-out", str(clone.root.parent / "preview.html"),
    )  # fmt: skip
    params = {p["name"]: (p["old"], p["new"]) for p in data["ml"]["params"]}
    assert params == {"train.logistic_regression.C": (1.0, 0.05)}
    assert any(m["diff"] for m in data["ml"]["metrics"]), data["ml"]["metrics"]
    assert markdown.count("```mermaid\nxychart-beta") == 3
    assert "ROC (test split)" in markdown and "Confusion matrix" in markdown
    for name in ("staging", "prod"):
        pinned = stack(data, name)
        assert pinned["status"] == "ok" and pinned["resources"] == [], pinned
        assert pinned["manifests_verdict"] == "in-sync"
    dev = stack(data, "dev")
    assert dev["diff_source"].startswith("no shared backend: showing the desired state only")
    html = (clone.root.parent / "preview.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2


def test_the_render_stacks_left_no_state_in_the_clones_backend(clone, base):
    assert not list((clone.backend).rglob("staging*")) and not list(clone.backend.rglob("prod*"))
