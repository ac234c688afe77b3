"""The liftlock Pulumi program: validate the stack config, declare the stack, export outputs."""

from pathlib import Path

import pulumi

from infra.config import StackConfigError, load_stack_config
from infra.kubeconfig import ClusterUnreachableError
from infra.lineage import BundleNotFoundError
from infra.stack import declare_stack
from ml.errors import MLError


def main() -> None:
    try:
        config = load_stack_config()
    except StackConfigError as error:
        # RunError: shown without a Python traceback, before any resource is declared.
        raise pulumi.RunError(str(error)) from None
    try:
        # The project this program belongs to (a copy of the repository renders into itself).
        outputs = declare_stack(config, Path(__file__).resolve().parent.parent)
    except (StackConfigError, BundleNotFoundError, ClusterUnreachableError, MLError) as error:
        raise pulumi.RunError(str(error)) from None
    pulumi.export("target", outputs.target)
    pulumi.export("serviceUrl", outputs.service_url)
    pulumi.export("bundleDigest", outputs.bundle_digest)
    pulumi.export("image", outputs.image)
    pulumi.export("renderDir", outputs.render_dir)


main()
