"""`liftlock promote` and `liftlock gate` on a throwaway clone: what changes, what is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policies.promotion import latest_valid_record as latest_record
from tests.cli.conftest import edit_gates, git, replace_bundle, sign_verification, stack_values
from tests.policies.bundles import GOOD_METRICS, POOR_METRICS

Run = Callable[..., tuple[int, str]]
IMAGE = "liftlock-model@sha256:" + "c" * 64


def _digest(root: Path) -> str:
    from ml.bundle import bundle_digest

    return bundle_digest(root / "bundle")


def test_workspace_to_dev_to_staging_to_prod(clone: Path, run: Run) -> None:
    digest = _digest(clone)
    prod_before = (clone / "stacks" / "Pulumi.prod.yaml").read_text()

    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    assert stack_values(clone, "dev")["liftlock:bundleDigest"] == digest
    assert "liftlock:image" not in stack_values(clone, "dev")  # docker target builds its own
    record = latest_record(clone, "dev")
    assert record is not None and record.path.name.endswith(f"-{digest[7:19]}.json")
    assert record.data["from"] == "workspace" and record.data["to"] == "dev"
    assert record.data["bundleDigest"] == digest
    assert record.data["metrics"] == GOOD_METRICS
    assert record.data["user"] == "Test Promoter <promoter@example.com>"
    assert len(record.data["gitCommit"].split("-")[0]) == 40
    assert {v["rule"] for v in record.data["verdicts"]} >= {"metrics-thresholds", "no-regression"}

    code, out = run("promote", "dev", "staging", "--no-preview", "--image", IMAGE)
    assert code == 0, out
    assert stack_values(clone, "staging")["liftlock:bundleDigest"] == digest
    assert stack_values(clone, "staging")["liftlock:image"] == IMAGE
    assert latest_record(clone, "staging").data["from"] == "dev"  # type: ignore[union-attr]

    # staging's gates require a passing verification of what it runs before it goes on.
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 1 and "was never verified" in out, out
    sign_verification(clone, "staging", when=datetime.now(UTC) - timedelta(minutes=5))

    # staging -> prod reuses the image staging runs for this bundle.
    code, out = run("promote", "staging", "prod", "--no-preview")
    assert code == 0, out
    prod = stack_values(clone, "prod")
    assert (prod["liftlock:bundleDigest"], prod["liftlock:image"]) == (digest, IMAGE)
    # Only the two values changed: comments and every other line are as they were.
    after = (clone / "stacks" / "Pulumi.prod.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(prod_before.splitlines(), after, strict=True) if a != b]
    assert [b.split(":")[1] for _a, b in changed] == ["bundleDigest", "image"]

    code, out = run("status", "--no-engine")
    assert code == 0, out
    assert out.count(digest[7:19]) == 3 and "from staging" in out


def test_poor_bundle_refused_for_prod_accepted_for_dev(clone: Path, run: Run) -> None:
    replace_bundle(clone, POOR_METRICS, tag="poor")
    # No image for this bundle either: the gate's refusal is what the user needs to read.
    code, out = run("promote", "workspace", "prod", "--no-preview")
    assert code == 1
    assert (
        "refused, no file changed" in out
        and "metrics-thresholds (bundle/bundle.json (metrics))" in out
    )
    assert not git(clone, "status", "--porcelain", "--", "stacks", "promotions")
    assert latest_record(clone, "prod") is None

    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 0, out
    assert "PASSED: 0 mandatory failure(s), 2 advisory warning(s) on dev" in out
    record = latest_record(clone, "dev")
    assert record is not None
    warned = [(v["rule"], v["level"]) for v in record.data["verdicts"] if v["verdict"] == "warn"]
    assert warned == [("metrics-thresholds", "advisory")] * 2


def test_regression_against_the_champion_is_refused(clone: Path, run: Run) -> None:
    code, out = run("promote", "workspace", "prod", "--no-preview", "--image", IMAGE)
    assert code == 0, out
    worse = dict(GOOD_METRICS, accuracy=GOOD_METRICS["accuracy"] - 0.012)  # above 0.95, -0.012
    replace_bundle(clone, worse, tag="worse")
    code, out = run("gate", "prod", "--no-preview", "--json", "--bundle", "bundle")
    assert code == 1
    report = json.loads(out[: out.rindex("}") + 1])
    failed = [f for f in report["findings"] if f["verdict"] == "fail"]
    assert [f["rule"] for f in failed] == ["no-regression"]
    assert failed[0]["message"].startswith("accuracy 0.9530 regresses 0.0120 from champion")


def test_dry_run_and_refusals_change_no_file(clone: Path, run: Run) -> None:
    code, out = run(
        "promote", "workspace", "staging", "--no-preview", "--dry-run", "--image", IMAGE
    )
    assert code == 0, out
    assert "dry run: would set liftlock:bundleDigest=" in out
    assert not git(clone, "status", "--porcelain", "--", "stacks", "promotions")
    # Without --image and with no image pushed for the bundle, staging has no image to pin.
    code, out = run("promote", "workspace", "staging", "--no-preview")
    assert code == 2 and "the registry has no" in out and "liftlock cluster up" in out
    code, out = run("promote", "workspace", "staging", "--no-preview", "--image", "repo:latest")
    assert code == 2 and "not pinned by digest" in out
    assert not git(clone, "status", "--porcelain", "--", "stacks", "promotions")


def test_bad_gate_input_names_file_and_key(clone: Path, run: Run) -> None:
    edit_gates(clone, lambda d: d["stacks"]["prod"].update(overrides={"no-such-rule": "advisory"}))
    code, out = run("promote", "workspace", "prod", "--no-preview", "--image", IMAGE)
    assert code == 2
    assert "policies/gates.yaml: stacks.prod.overrides.no-such-rule: unknown rule" in out

    (clone / "policies" / "gates.yaml").write_text("version: 1\ndefaults: {enforcement: [\n")
    code, out = run("gate", "dev", "--no-preview")
    assert code == 2 and "policies/gates.yaml: line" in out and "not valid YAML" in out
    git(clone, "checkout", "--", "policies/gates.yaml")

    model = clone / "bundle" / "model.onnx"
    model.write_bytes(b"tampered")
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 4 and f"{model}: sha256" in out and "does not match bundle.json" in out
    model.unlink()
    code, out = run("promote", "workspace", "dev", "--no-preview")
    assert code == 4 and f"{model}: listed in bundle.json but missing" in out
    assert not git(clone, "status", "--porcelain", "--", "stacks", "promotions")


def test_freeze_window_refuses_prod(clone: Path, run: Run) -> None:
    edit_gates(
        clone,
        lambda d: d["stacks"]["prod"].update(
            freezeWindows=[
                {
                    "start": "2000-01-01T00:00:00+00:00",
                    "end": "2999-01-01T00:00:00+00:00",
                    "reason": "test freeze",
                }
            ]
        ),
    )
    code, out = run("promote", "workspace", "prod", "--no-preview", "--image", IMAGE)
    assert code == 1 and "freeze-window (promotion time)" in out
    assert not git(clone, "status", "--porcelain", "--", "stacks", "promotions")


def test_git_commits_the_promotion_on_a_review_branch(clone: Path, run: Run) -> None:
    digest = _digest(clone)
    code, out = run("promote", "workspace", "dev", "--no-preview", "--git")
    assert code == 0, out
    branch = f"promote/dev/{digest[7:19]}"
    assert git(clone, "branch", "--show-current") == branch
    files = git(clone, "show", "--name-only", "--format=", "HEAD").splitlines()
    record = latest_record(clone, "dev")
    assert record is not None
    written = record.path.relative_to(clone).as_posix()
    assert sorted(files) == sorted(
        ["stacks/Pulumi.dev.yaml", written, written + ".sig", "policies/allowed_signers/dev"]
    )
    assert (
        git(clone, "log", "-1", "--format=%s") == f"promote workspace -> dev: bundle {digest[7:19]}"
    )
    # The same promotion again: the branch exists, nothing is written.
    git(clone, "switch", "--quiet", "-")
    code, out = run("promote", "workspace", "dev", "--no-preview", "--git")
    assert code == 2 and f"branch {branch} already exists" in out


def test_promote_leaves_secure_values_untouched(clone: Path, run: Run) -> None:
    path = clone / "stacks" / "Pulumi.staging.yaml"
    secure = (
        "  kubernetes:kubeconfig:\n    secure: v1:cGxhY2Vob2xkZXI=:v1:bm90LWEtcmVhbC1jaXBoZXI=\n"
    )
    path.write_text(path.read_text().replace("config:\n", "config:\n" + secure, 1))
    code, out = run("promote", "workspace", "staging", "--no-preview", "--image", IMAGE)
    assert code == 0, out
    assert secure in path.read_text()
    assert stack_values(clone, "staging")["liftlock:image"] == IMAGE
