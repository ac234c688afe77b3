"""`liftlock demo`: the README's loop end to end on the embedded default.

    liftlock cluster up -> dvc repro -> promote workspace dev -> pulumi up dev -> smoke test
    over HTTP -> promote dev staging -> pulumi up staging (render + rollout on the embedded
    cluster + a prediction through a port-forward) -> liftlock verify staging (soak, smoke rows,
    /metrics; signed) -> preview of a sample change (staging -> prod)

Each step prints a line when it starts and when it ends (with its time); the end is a table of
what happened where. What it changes in the checkout is what the loop is meant to change:
DVC outputs (bundle/, model/, reports/, data/prepared/, eval/ when the pipeline was out of date),
stacks/Pulumi.dev.yaml and stacks/Pulumi.staging.yaml (bundleDigest, image — written by
`liftlock promote`), their promotion records (and staging's signed verification) in
promotions/, the manifests rendered into deploy/staging/, and the stacks' state in
.pulumi-state/ (git-ignored). Pulumi reads a copy of each stack file, so the engine never
rewrites them. The sample change is made and previewed in a
throwaway git worktree; the checkout never sees it. Outside the checkout: the embedded registry
and cluster (`liftlock cluster down` stops them), the dev image and container on the local Docker
engine, staging's pods on the cluster, and the preview comment in ~/.cache/liftlock/demo/.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liftlock.errors import ExternalCommandError, GateFailed, LiftlockError
from liftlock.git import detached_worktree
from liftlock.stackfile import restored, stack_file_copy, stack_path

STEPS = 9
SMOKE_ROWS = 3
READY_TIMEOUT_S = 120.0
#: What the loop changes in git-tracked paths; the sample change starts from them. `dvc repro`
#: (step 1) re-locks dvc.lock and rewrites the uncached metrics in eval/ when the code moved on.
# policies/allowed_signers: the first promotion into a stack writes its signer there.
CHANGED_PATHS = ("stacks", "promotions", "policies/allowed_signers", "deploy", "eval", "dvc.lock")


@dataclass
class StepResult:
    number: int
    name: str
    where: str
    summary: str
    seconds: float


@dataclass
class Demo:
    """The loop's state as it runs: the checkout, its engine environment, what each step did."""

    root: Path
    env: dict[str, str]
    echo: Callable[[str], None]
    results: list[StepResult] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # stack -> pulumi outputs
    outputs_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "liftlock" / "demo")

    # --- running things -------------------------------------------------------------------

    def run(
        self,
        command: list[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
    ) -> str:
        """stdout of a command; a failure raises with the command and the tail of its output."""
        completed = subprocess.run(
            command,
            cwd=cwd or self.root,
            env=dict(env or self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-25:])
            shown = " ".join([Path(command[0]).name, *command[1:]])
            raise ExternalCommandError(f"`{shown}` exited {completed.returncode}:\n{tail}")
        return completed.stdout

    def pulumi(self, *args: str, config_file: Path | None = None) -> str:
        pulumi = shutil.which("pulumi", path=self.env.get("PATH"))
        if pulumi is None:
            raise ExternalCommandError("pulumi is not on PATH", hint="run `make toolchain`")
        extra = ["--config-file", str(config_file)] if config_file else []
        return self.run([pulumi, *args, *extra, "--non-interactive", "--cwd", str(self.root)])

    def step(self, number: int, name: str, where: str, action: Callable[[], str]) -> None:
        self.echo(f"[demo] {number}/{STEPS} {name} ...")
        started = time.monotonic()
        try:
            summary = action()
        except LiftlockError as error:
            seconds = time.monotonic() - started
            self.echo(f"[demo] {number}/{STEPS} {name} FAILED after {seconds:.1f} s")
            raise type(error)(
                f"demo step {number} ({name}) failed: {error.message}", hint=error.hint
            ) from error
        seconds = time.monotonic() - started
        self.results.append(StepResult(number, name, where, summary, seconds))
        self.echo(f"[demo] {number}/{STEPS} {name} done in {seconds:.1f} s — {summary}")

    # --- the steps ------------------------------------------------------------------------

    def cluster_up(self) -> str:
        """The registry dev pushes to and the node staging runs on (idempotent)."""
        from liftlock.cluster import embedded
        from liftlock.cluster.layout import Layout

        cluster = embedded.up(Layout.default(), self.echo)
        return f"registry {cluster.registry}; kubeconfig {cluster.kubeconfig} ({cluster.context})"

    def train(self) -> str:
        dvc = shutil.which("dvc", path=self.env.get("PATH")) or "dvc"
        self.run([dvc, "repro"])
        manifest = read_json(self.root / "bundle" / "bundle.json")
        from ml.bundle import verify_bundle

        digest = verify_bundle(self.root / "bundle")
        metrics = manifest.get("metrics", {})
        return (
            f"bundle {digest[7:19]}, accuracy {metrics.get('accuracy')}, "
            f"roc_auc {metrics.get('roc_auc')}"
        )

    def promote(self, source: str, target: str, root: Path | None = None) -> str:
        """`liftlock promote <source> <target>` in `root` (default the checkout), in-process."""
        from liftlock.commands.gate import blocking_rules
        from liftlock.promote import promote
        from liftlock.records import enroll_signer

        where = root or self.root
        enroll_signer(where, target, log=self.echo)  # the embedded default trusts this machine
        result = promote(where, source, target)
        if not result.report.passed:
            raise GateFailed(
                f"promotion {source} -> {target} refused: mandatory rule(s) failed: "
                f"{blocking_rules(result.report)}"
            )
        record = result.record.relative_to(where).as_posix() if result.record else "(none)"
        return f"stacks/Pulumi.{target}.yaml pinned; record {record}"

    def up(self, stack: str) -> str:
        existing = json.loads(self.pulumi("stack", "ls", "--json") or "[]")
        names = {str(s.get("name", "")).split("/")[-1] for s in existing}
        if stack not in names or not self.has_resources(stack):
            self.refuse_taken_port(stack)
        if stack not in names:
            with restored(stack_path(self.root, stack)):
                self.pulumi("stack", "init", stack)
        with stack_file_copy(self.root, stack) as config:
            self.pulumi(
                "up",
                "--yes",
                "--skip-preview",
                "--stack",
                stack,
                "--policy-pack",
                str(self.root / "policies"),
                config_file=config,
            )
        with restored(stack_path(self.root, stack)):
            outputs = json.loads(self.pulumi("stack", "output", "--json", "--stack", stack) or "{}")
        self.outputs[stack] = outputs
        if outputs.get("target") == "render":
            folder = self.root / str(outputs.get("renderDir") or f"deploy/{stack}")
            count = sum(1 for _ in folder.rglob("*.yaml")) if folder.is_dir() else 0
            rendered = f"{count} manifests rendered into {folder.relative_to(self.root)}/"
            if outputs.get("appliedTo"):
                # `up` waited for every replica Ready and a prediction through a port-forward.
                rendered += (
                    f"; rolled out on {outputs['appliedTo']} (every replica Ready) and a "
                    "prediction answered through kubectl port-forward"
                )
            return rendered
        return f"serving {outputs.get('serviceUrl')} (image {outputs.get('image')})"

    def has_resources(self, stack: str) -> bool:
        with restored(stack_path(self.root, stack)):
            exported = json.loads(self.pulumi("stack", "export", "--stack", stack) or "{}")
        return len(exported.get("deployment", {}).get("resources") or []) > 0

    def refuse_taken_port(self, stack: str) -> None:
        """A docker-target stack deployed for the first time needs its host port free."""
        from infra.config import load_stack_file

        config = load_stack_file(stack_path(self.root, stack), stack=stack)
        if config.target != "docker":
            return
        with socket.socket() as probe:
            probe.settimeout(1)
            taken = probe.connect_ex(("127.0.0.1", config.host_port)) == 0
        if taken:
            raise LiftlockError(
                f"127.0.0.1:{config.host_port} is already taken, and this checkout's `{stack}` "
                "stack has nothing deployed: another checkout's container probably serves there",
                hint=f"stop it (`docker ps` shows it; e.g. `docker rm -f liftlock-model-{stack}`), "
                f"or give this checkout another liftlock:hostPort in stacks/Pulumi.{stack}.yaml",
            )

    def smoke(self) -> str:
        url = str(self.outputs.get("dev", {}).get("serviceUrl") or "")
        if not url.startswith("http://127.0.0.1"):
            raise LiftlockError(f"dev's serviceUrl {url!r} is not on 127.0.0.1")
        waited = wait_ready(url, READY_TIMEOUT_S)
        rows = sample_rows(self.root / "bundle")
        started = time.monotonic()
        status, body = http_json("POST", f"{url}/v1/predict", {"rows": rows})
        elapsed_ms = (time.monotonic() - started) * 1000
        if status != 200:
            raise LiftlockError(f"POST {url}/v1/predict answered {status}: {body}")
        predictions = body.get("predictions") if isinstance(body, dict) else None
        count = len(predictions) if isinstance(predictions, list) else "?"
        return (
            f"/readyz ready after {waited:.1f} s; /v1/predict: {count} predictions for "
            f"{len(rows)} rows in {elapsed_ms:.0f} ms"
        )

    def verify_staging(self) -> str:
        """`liftlock verify staging` (signed beside its record), then the soak gates.yaml asks
        of staging before what it runs may be promoted to prod."""
        from datetime import UTC, datetime

        from liftlock.errors import VerificationFailed
        from liftlock.gate import read_gates
        from liftlock.verify import run_verify

        report = run_verify(self.root, "staging", log=self.echo)
        if report.record_error is not None:
            raise report.record_error
        if not report.passed:
            raise VerificationFailed(
                f"verify staging: check(s) failed: {', '.join(report.failed)} ({report.record})"
            )
        soak = read_gates(self.root).for_stack("staging").thresholds.verify.min_soak_seconds
        waited = soak - (datetime.now(UTC) - report.ended).total_seconds()
        if waited > 0:
            self.echo(f"[demo] staging soaks {waited:.0f} s more before prod (minSoakSeconds)")
            time.sleep(waited)
        where = report.verification.relative_to(self.root) if report.verification else "-"
        return (
            f"{len(report.checks)} checks passed over a {report.soak_seconds:g} s soak "
            f"({report.samples} samples); verification {where}"
        )

    def preview_sample_change(self) -> str:
        """`liftlock promote staging prod`, made in a throwaway worktree and previewed there."""
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix="liftlock-demo-") as scratch,
            detached_worktree(self.root, Path(scratch) / "sample-change", "HEAD") as tree,
        ):
            return self._preview_in(tree)

    def _preview_in(self, tree: Path) -> str:
        # The worktree starts as the checkout is now (promotions included), committed as "base".
        for path in CHANGED_PATHS:
            source = self.root / path
            if source.is_dir():
                shutil.copytree(source, tree / path, dirs_exist_ok=True)
            elif source.is_file():
                shutil.copy2(source, tree / path)
        if (self.root / ".venv").exists() and not (tree / ".venv").exists():
            (tree / ".venv").symlink_to(self.root / ".venv")  # Pulumi.yaml's virtualenv
        # The DVC outputs, from the checkout's cache: the gate checks them against dvc.lock.
        dvc = shutil.which("dvc", path=self.env.get("PATH")) or "dvc"
        cache = self.run([dvc, "cache", "dir"]).strip() or str(self.root / ".dvc" / "cache")
        self.run([dvc, "cache", "dir", "--local", cache], cwd=tree)
        self.run([dvc, "checkout", "--quiet"], cwd=tree)
        env = dict(self.env)
        env["LIFTLOCK_ROOT"] = str(tree)
        git = ["git", "-c", "user.name=liftlock-demo", "-c", "user.email=demo@liftlock.invalid"]
        present = [p for p in CHANGED_PATHS if (tree / p).exists()]
        self.run([*git, "add", "--all", "--", *present], cwd=tree)
        self.run([*git, "commit", "--quiet", "--allow-empty", "-m", "demo: base"], cwd=tree)
        base = self.run(["git", "rev-parse", "HEAD"], cwd=tree).strip()
        self.promote("staging", "prod", root=tree)
        present = [p for p in CHANGED_PATHS if (tree / p).exists()]
        self.run([*git, "add", "--all", "--", *present], cwd=tree)
        self.run([*git, "commit", "--quiet", "-m", "demo: promote staging -> prod"], cwd=tree)
        from liftlock.preview.markdown import changes_phrase, render_markdown
        from liftlock.preview.run import PreviewOptions, build_preview, cpu_bound_jobs

        report = build_preview(tree, PreviewOptions(base=base, jobs=cpu_bound_jobs()), env)
        markdown = self.outputs_dir / "preview.md"
        markdown.write_text(render_markdown(report), encoding="utf-8")
        as_json = self.outputs_dir / "preview.json"
        as_json.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
        rows = []
        for stack in report.stacks:
            if stack.status == "not-affected":
                continue
            gate = report.gates.get(stack.stack)
            fields = sorted({p.path for r in stack.resources for p in r.properties})
            rows.append(
                f"{stack.stack}: {changes_phrase(stack)}"
                + (
                    f" [{', '.join(fields[:6])}{', …' if len(fields) > 6 else ''}]"
                    if fields
                    else ""
                )
                + f" (policy {stack.policy_verdict}, gate {gate.verdict if gate else '—'}"
                + (f", manifests {stack.manifests_verdict}" if stack.manifests_verdict else "")
                + ")"
            )
        return "; ".join(rows) + f"; comment in {markdown}"


def read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {}


def sample_rows(bundle: Path, count: int = SMOKE_ROWS) -> list[dict[str, float]]:
    """The first rows of the bundle's reference sample, features only."""
    manifest = read_json(bundle / "bundle.json")
    features = list(manifest.get("features") or [])
    with (bundle / "reference.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            rows.append(
                {name: float(row[name]) for name in features if row.get(name) not in (None, "")}
            )
            if len(rows) == count:
                break
    return rows


def http_json(
    method: str, url: str, body: Any | None = None, timeout: float = 10
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except json.JSONDecodeError:
            return error.code, raw.decode(errors="replace")


def wait_ready(url: str, timeout_s: float) -> float:
    """Seconds until GET /readyz answers 200; raises after `timeout_s`."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout_s:
        try:
            status, body = http_json("GET", f"{url}/readyz", timeout=2)
            if status == 200:
                return time.monotonic() - started
            last = f"{status} {body}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.5)
    raise LiftlockError(
        f"{url}/readyz not ready after {timeout_s:.0f} s (last: {last})",
        hint="docker logs liftlock-model-dev",
    )


def run_demo(root: Path, env: dict[str, str], echo: Callable[[str], None]) -> Demo:
    demo = Demo(root=root, env=env, echo=echo)
    # dev pushes its image to the embedded registry; staging runs that digest on the cluster.
    demo.step(1, "liftlock cluster up", "127.0.0.1 (this machine)", demo.cluster_up)
    demo.step(2, "train: dvc repro", "bundle/", demo.train)
    demo.step(
        3,
        "promote workspace → dev",
        "stacks/Pulumi.dev.yaml",
        lambda: demo.promote("workspace", "dev"),
    )
    demo.step(4, "pulumi up --stack dev", "local Docker engine", lambda: demo.up("dev"))
    demo.step(5, "smoke test over HTTP", "127.0.0.1", demo.smoke)
    demo.step(
        6,
        "promote dev → staging",
        "stacks/Pulumi.staging.yaml",
        lambda: demo.promote("dev", "staging"),
    )
    demo.step(
        7,
        "pulumi up --stack staging",
        "deploy/staging/ + embedded cluster",
        lambda: demo.up("staging"),
    )
    demo.step(8, "liftlock verify staging", "embedded cluster", demo.verify_staging)
    demo.step(
        9, "preview: promote staging → prod", "throwaway git worktree", demo.preview_sample_change
    )
    return demo


def environment_for(root: Path) -> dict[str, str]:
    from liftlock.engine.env import engine_environment

    return engine_environment(root, os.environ)
