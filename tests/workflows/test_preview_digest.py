"""check-preview-digest.sh: the deploy applies a render only if its pull request previewed it.

The comment is the one `liftlock preview` writes (render_markdown, with its hidden record of the
rendered files); `gh` is a stand-in answering the three API calls from files, through real jq;
the "render at merge" is a folder on disk, as `pulumi up` leaves it in the deploy job.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from liftlock.preview.manifests import file_digests, tree_digest
from liftlock.preview.markdown import render_markdown
from liftlock.preview.report import PreviewReport, StackPreview

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".github" / "scripts" / "check-preview-digest.sh"
MERGE_SHA, PR_HEAD = "c" * 40, "d" * 40
FOLDERS = ["deploy/prod", "deploy/flux/prod"]

# `gh api [--paginate] <endpoint> --jq <expr>`: the endpoint's JSON from $FAKE_API/<endpoint with
# slashes as __>.json, filtered by real jq, as gh does.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$FAKE_LOG"
endpoint="" expr="."
while [ $# -gt 0 ]; do
  case "$1" in
    api|--paginate) ;;
    --jq) shift; expr="$1" ;;
    *) endpoint="$1" ;;
  esac
  shift
done
file="$FAKE_API/${endpoint//\\//__}.json"
[ -f "$file" ] || { echo "gh: HTTP 404: Not Found ($endpoint)" >&2; exit 1; }
jq -r "$expr" "$file"
"""


def committed_tree() -> dict[str, bytes]:
    return {
        p.relative_to(REPO).as_posix(): p.read_bytes()
        for folder in FOLDERS
        for p in sorted((REPO / folder).rglob("*"))
        if p.is_file()
    }


def preview_comment(tree: dict[str, bytes], head: str = PR_HEAD) -> str:
    prod = StackPreview(
        stack="prod",
        affected_by=["stacks/Pulumi.prod.yaml"],
        target="render",
        rendered_digest=tree_digest(tree),
        rendered_files=file_digests(tree),
        render_folders=FOLDERS,
    )
    report = PreviewReport(
        base="main",
        base_commit="b" * 40,
        head_commit=head,
        changed_files=["stacks/Pulumi.prod.yaml"],
        affected={"prod": ["stacks/Pulumi.prod.yaml"]},
        stacks=[prod],
        gates={},
        ml=None,
    )
    return render_markdown(report)


@pytest.fixture
def deploy_job(tmp_path: Path):
    """A checkout after `pulumi up` at the merge commit, and a stand-in GitHub API."""
    if not shutil.which("jq"):
        pytest.fail("jq is not installed (apt-get install jq; GitHub's runners have it)")
    work = tmp_path / "checkout"
    for path, content in committed_tree().items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(content)
    (work / "stacks").mkdir()
    shutil.copy(REPO / "stacks" / "Pulumi.prod.yaml", work / "stacks")
    shutil.copy(REPO / "stacks" / "Pulumi.dev.yaml", work / "stacks")
    api = tmp_path / "api"
    api.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_API": str(api),
        "FAKE_LOG": str(tmp_path / "calls"),
        "GITHUB_REPOSITORY": "liftlock/liftlock",
        "GITHUB_SHA": MERGE_SHA,
    }

    def answer(endpoint: str, data: object) -> None:
        (api / (endpoint.replace("/", "__") + ".json")).write_text(json.dumps(data))

    def merged_pull_request(comment: str) -> None:
        answer(
            f"repos/liftlock/liftlock/commits/{MERGE_SHA}/pulls",
            [{"number": 7, "merged_at": "2026-12-01T00:00:00Z"}],
        )
        answer("repos/liftlock/liftlock/pulls/7", {"head": {"sha": PR_HEAD}})
        answer(
            "repos/liftlock/liftlock/issues/7/comments",
            [{"id": 1, "body": "unrelated"}, {"id": 2, "body": comment}],
        )

    def run(stack: str = "prod") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), stack], cwd=work, env=env, capture_output=True, text=True
        )

    return work, merged_pull_request, run


def test_the_previewed_render_is_applied(deploy_job):
    _, merged, run = deploy_job
    merged(preview_comment(committed_tree()))
    result = run()
    assert result.returncode == 0, result.stderr
    assert (
        f"prod: the render matches what pull request #7 previewed ({tree_digest(committed_tree())})"
        in (result.stdout)
    )


def test_a_render_that_differs_from_the_preview_is_refused_naming_the_file(deploy_job):
    work, merged, run = deploy_job
    merged(preview_comment(committed_tree()))
    deployment = next((work / "deploy" / "prod").rglob("*deployment*"))
    hand_edited = deployment.read_text().replace('cpu: "1"', 'cpu: "2"')
    assert hand_edited != deployment.read_text()
    deployment.write_text(hand_edited)
    (work / "deploy" / "prod" / "1-manifest" / "v1-configmap-extra.yaml").write_text("x: 1\n")
    application = next((work / "deploy" / "flux" / "prod").rglob("*.yaml"))
    application.unlink()
    result = run()
    assert result.returncode == 1
    relative = deployment.relative_to(work).as_posix()
    assert f"{relative}: rendered at merge differs from the preview" in result.stderr
    assert "v1-configmap-extra.yaml: rendered at merge, not in the preview" in result.stderr
    assert f"{application.relative_to(work).as_posix()}: previewed, not rendered" in result.stderr
    assert "refusing to apply prod" in result.stderr


def test_a_preview_of_an_older_head_is_refused(deploy_job):
    _, merged, run = deploy_job
    merged(preview_comment(committed_tree(), head="e" * 40))
    result = run()
    assert result.returncode == 1
    assert f"ran on {'e' * 40}, the pull request was merged at {PR_HEAD}" in result.stderr


def test_a_push_no_pull_request_previewed_is_refused(deploy_job):
    _, _, run = deploy_job
    result = run()
    assert result.returncode == 1
    assert "no merged pull request has" in result.stderr
    assert "nothing previewed this render" in result.stderr


def test_a_comment_without_a_record_is_refused(deploy_job):
    _, merged, run = deploy_job
    merged("<!-- liftlock-preview -->\n## liftlock preview\nno render stacks\n")
    result = run()
    assert result.returncode == 1
    assert "has no preview comment with a rendered record" in result.stderr


def test_a_docker_stack_is_left_to_the_engine(deploy_job):
    _, _, run = deploy_job
    result = run("dev")
    assert result.returncode == 0 and "not a render stack" in result.stdout


def workflow_step(name: str, workflow: str) -> dict:
    import yaml

    with (REPO / ".github" / "workflows" / workflow).open(encoding="utf-8") as handle:
        jobs = yaml.safe_load(handle)["jobs"]
    steps = [step for job in jobs.values() for step in job.get("steps", [])]
    return next(step for step in steps if step.get("name", "").startswith(name))


def test_deploy_checks_the_digest_before_it_commits_the_render():
    import yaml

    with (REPO / ".github" / "workflows" / "deploy.yml").open(encoding="utf-8") as handle:
        up = yaml.safe_load(handle)["jobs"]["up"]
    names = [step.get("name", "") for step in up["steps"]]
    check = names.index("Refuse a render that differs from what the pull request previewed")
    assert (
        names.index("pulumi up with the policy pack")
        < check
        < names.index("Commit the rendered manifests")
    )
    assert "check-preview-digest.sh" in up["steps"][check]["run"]
    assert up["steps"][0]["with"]["fetch-depth"] == 0  # the git-commit annotation needs history
    assert up["permissions"]["pull-requests"] == "read"


@pytest.mark.parametrize(
    ("verdict", "exit_code"), [("in-sync", 0), ("rendered-at-merge", 0), ("out-of-sync", 1)]
)
def test_the_pr_check_fails_on_hand_edited_manifests(tmp_path: Path, verdict: str, exit_code: int):
    problem = (
        "deploy/prod/1-manifest/apps_v1-deployment.yaml: spec.replicas (7 committed, 3 rendered)"
    )
    prod = StackPreview(
        stack="prod",
        affected_by=["deploy/prod/1-manifest/apps_v1-deployment.yaml"],
        target="render",
        manifests_verdict=verdict,
        rendered_in_sync=verdict == "in-sync",
        manifest_problems=[problem] if verdict == "out-of-sync" else [],
        policies_checked=True,
    )
    report = PreviewReport("main", "b" * 40, PR_HEAD, [], {}, [prod], {}, None)
    (tmp_path / "preview.json").write_text(json.dumps(report.to_dict(), default=str))
    step = workflow_step("Fail the check", "pr-preview.yml")
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == exit_code, result.stdout + result.stderr
    if exit_code:
        assert f"prod: committed manifests are not the render: {problem}" in result.stdout


def test_the_pr_preview_keeps_the_html_report():
    preview = workflow_step("Preview", "pr-preview.yml")
    assert "--html-out preview.html" in preview["run"]
    keep = workflow_step("Keep the preview", "pr-preview.yml")
    assert "preview.html" in keep["with"]["path"]
