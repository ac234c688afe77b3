"""The liftlock Pulumi program: validate the stack config, check the promotion, declare the stack,
export outputs."""

import os
from pathlib import Path

import pulumi

from infra.config import StackConfig, StackConfigError, load_stack_config
from infra.kubeconfig import ClusterUnreachableError
from infra.lineage import BundleNotFoundError
from infra.stack import declare_stack
from ml.errors import MLError
from policies.gates import GatesError, load_gates
from policies.model import Level
from policies.promotion import check_pinned
from policies.rules.governance import PROMOTION_RULE

ROOT = Path(__file__).resolve().parent.parent
GATE_PREVIEW = "LIFTLOCK_GATE_PREVIEW"


def check_promotion(config: StackConfig) -> None:
    """Refuse, before any resource is declared, to deploy pins no valid signed record backs.

    Mandatory stacks (policies/gates.yaml) fail `pulumi up` and `pulumi preview`; advisory
    stacks warn. The one exception is the preview `liftlock gate` runs ($LIFTLOCK_GATE_PREVIEW):
    it judges a candidate whose record the promotion is about to write (the gate judges the
    record itself). Only a preview: an update is always refused.
    """
    level = load_gates(ROOT / "policies" / "gates.yaml").level(config.stack, PROMOTION_RULE)
    if level is Level.DISABLED:
        return
    digest = config.bundle_digest
    if digest is None and config.target == "docker":
        from ml.bundle import verify_bundle

        digest = verify_bundle(ROOT / config.bundle_dir)
    check = check_pinned(ROOT, config.stack, digest, config.image)
    if check.ok:
        return
    message = f"[{PROMOTION_RULE}] {check.status}: {check.message}"
    gate_preview = pulumi.runtime.is_dry_run() and os.environ.get(GATE_PREVIEW) == "1"
    if level is Level.MANDATORY and not gate_preview:
        raise pulumi.RunError(f"refusing to deploy {config.stack}: {message}")
    pulumi.warn(message)


def main() -> None:
    try:
        config = load_stack_config()
        check_promotion(config)
    except (StackConfigError, GatesError, MLError) as error:
        # RunError: shown without a Python traceback, before any resource is declared.
        raise pulumi.RunError(str(error)) from None
    try:
        # The project this program belongs to (a copy of the repository renders into itself).
        outputs = declare_stack(config, ROOT)
    except (StackConfigError, BundleNotFoundError, ClusterUnreachableError, MLError) as error:
        raise pulumi.RunError(str(error)) from None
    pulumi.export("target", outputs.target)
    pulumi.export("serviceUrl", outputs.service_url)
    pulumi.export("bundleDigest", outputs.bundle_digest)
    pulumi.export("image", outputs.image)
    pulumi.export("renderDir", outputs.render_dir)
    pulumi.export("appliedTo", outputs.applied_to)


main()
