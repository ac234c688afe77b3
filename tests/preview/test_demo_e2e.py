"""`liftlock demo` (what `make demo` runs) end to end on a fresh clone with its own backend.

The clone's dev stack gets its own image repository and host port, and the demo its own embedded
cluster (a state folder, registry and API server ports of its own; the demo's `cluster up` finds
it running), so the test cannot collide with a dev container or registry of the checkout; staging
rolls out there; the dev stack is destroyed and the cluster stopped at the end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liftlock.cluster.layout import CONTEXT_NAME
from tests.helpers.embedded_cluster import running_cluster
from tests.preview.project_clone import ProjectClone

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.docker, pytest.mark.cluster]

#: What the loop is meant to change in a checkout (everything else must stay as it was).
EXPECTED_CHANGES = re.compile(
    r"^( M stacks/Pulumi\.(dev|staging)\.yaml"
    r"|\?\? promotions/(dev|staging)/[^/]+\.json(\.sig)?"
    r"|\?\? promotions/staging/verifications/(.+)?"
    # A machine whose key is not yet a signer (a new one): the demo enrolls it, visibly.
    r"|( M|\?\?) policies/allowed_signers/(dev|staging)"
    r"|( M|\?\?) deploy/staging/.+)$"
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, repo_root: Path):
    clone = ProjectClone.make(repo_root, tmp_path_factory.mktemp("demo-e2e"))
    port = clone.isolate_docker_stack("dev", "liftlock-model-demo-e2e")
    state = tmp_path_factory.mktemp("demo-e2e-cluster")
    with pytest.MonkeyPatch.context() as env, running_cluster(state) as cluster:
        registry = cluster.layout
        # The demo finds this cluster running (same state folder and registry port): its
        # `cluster up` starts nothing, dev pushes to this registry, staging rolls out here.
        env.setenv("LIFTLOCK_CLUSTER_DIR", str(state))
        env.setenv("LIFTLOCK_REGISTRY_PORT", str(registry.registry_port))
        staging = clone.root / "stacks" / "Pulumi.staging.yaml"
        staging.write_text(
            staging.read_text(encoding="utf-8").replace(
                "config:\n",
                "config:\n  liftlock:applyTo:\n"
                f"    kubeconfig: {registry.kubeconfig}\n    kubeContext: {CONTEXT_NAME}\n",
                1,
            ),
            encoding="utf-8",
        )
        dev = clone.root / "stacks" / "Pulumi.dev.yaml"
        dev.write_text(
            dev.read_text(encoding="utf-8").replace(
                "config:\n", f"config:\n  liftlock:registry: {registry.registry}\n", 1
            ),
            encoding="utf-8",
        )
        gates = clone.root / "policies" / "gates.yaml"
        allowed = "      - 127.0.0.1:5000\n"
        assert allowed in gates.read_text(encoding="utf-8"), "gates.yaml allows the registry"
        gates.write_text(
            gates.read_text(encoding="utf-8").replace(
                allowed, f"{allowed}      - {registry.registry}\n", 1
            ),
            encoding="utf-8",
        )
        clone.commit_all("test: dev on its own port, image repository and registry")
        try:
            output = clone.liftlock("demo", timeout=1800)
            print(output)  # shown with -s, or when a test fails
            yield clone, output, port
        finally:
            clone.pulumi("destroy", "--yes", "--stack", "dev", check=False, timeout=600)


def test_every_step_reports_its_time(demo_run):
    _, output, _ = demo_run
    for number in range(1, 10):
        assert re.search(rf"^\[demo\] {number}/9 .+ done in \d+\.\d s", output, re.M), output


def test_the_served_model_answered_on_localhost(demo_run):
    _, output, port = demo_run
    assert f"serving http://127.0.0.1:{port}" in output
    assert re.search(r"/v1/predict: 3 predictions for 3 rows", output), output


def test_staging_rolled_out_on_the_cluster_and_answered(demo_run):
    """`pulumi up --stack staging` waited for every replica Ready and a prediction through a
    port-forward (SmokeCheck): the step says so only when the outputs name the cluster."""
    _, output, _ = demo_run
    cells = re.sub(r"[│\s]+", " ", output)
    assert f"rolled out on {CONTEXT_NAME} (every replica Ready)" in cells, output
    assert "prediction answered through kubectl port-forward" in cells, output


def test_summary_table_says_what_happened_where(demo_run):
    _, output, _ = demo_run
    table = output[output.index("liftlock demo — done in") :]
    for where in (
        "127.0.0.1 (this machine)",
        "bundle/",
        "stacks/Pulumi.dev.yaml",
        "local Docker engine",
        "127.0.0.1",
        "stacks/Pulumi.staging.yaml",
        "deploy/staging/",
        "throwaway git worktree",
    ):
        assert where in table, table
    # prod pins what staging does unless the demo's image build gave a new digest: either way
    # the preview diffs against the committed render, never "17 create"
    cells = re.sub(r"[│\s]+", " ", table)  # the table wraps long cells onto more rows
    assert re.search(r"prod: (\d+ update|no change)", cells) and " create" not in cells, table


def test_the_promotion_previews_as_prod_image_digest_and_label_updates(demo_run):
    """prod is a render stack: diffed against its committed deploy/prod/, not against a
    backend's (empty) state, so the promotion shows what it pins change, and nothing else."""
    import json

    with (Path.home() / ".cache" / "liftlock" / "demo" / "preview.json").open() as handle:
        report = json.load(handle)
    prod = next(s for s in report["stacks"] if s["stack"] == "prod")
    assert prod["status"] == "ok", prod["errors"]
    assert {r["op"] for r in prod["resources"]} == {"update"}, prod["resources"]
    fields = {p["path"] for r in prod["resources"] for p in r["properties"]}
    allowed = re.compile(
        r'(.*\.image|.*labels\["liftlock\.io/(bundle|data)-digest"\]'
        r'|.*annotations\["liftlock\.io/(bundle|data)-digest"\]'
        r'|.*annotations\["liftlock\.io/git-commit"\]|data\["bundle\.json"\]\..*)$'
    )
    assert fields and all(allowed.match(f) for f in fields), sorted(fields)
    assert any(f.endswith(".image") for f in fields), sorted(fields)
    assert prod["manifests_verdict"] == "rendered-at-merge" and prod["rendered_digest"]


def test_the_checkout_changes_only_as_documented(demo_run):
    clone, _, _ = demo_run
    changes = clone.dirty()
    unexpected = [line for line in changes if not EXPECTED_CHANGES.match(line)]
    assert unexpected == [], unexpected
    assert any("promotions/staging/" in line for line in changes)
    assert len(clone.git("worktree", "list").splitlines()) == 1  # the sample change's is gone
