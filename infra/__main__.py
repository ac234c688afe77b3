"""The liftlock Pulumi program: validate the stack config, declare the stack, export outputs."""

import pulumi

from infra.config import StackConfigError, load_stack_config
from infra.kubeconfig import ClusterUnreachableError
from infra.lineage import BundleNotFoundError
from infra.stack import declare_stack, repository_root
from ml.errors import MLError


def main() -> None:
    try:
        config = load_stack_config()
    except StackConfigError as error:
        # RunError: shown without a Python traceback, before any resource is declared.
        raise pulumi.RunError(str(error)) from None
    try:
        outputs = declare_stack(config, repository_root())
    except (StackConfigError, BundleNotFoundError, ClusterUnreachableError, MLError) as error:
        raise pulumi.RunError(str(error)) from None
    pulumi.export("target", outputs.target)
    pulumi.export("serviceUrl", outputs.service_url)
    pulumi.export("bundleDigest", outputs.bundle_digest)
    pulumi.export("image", outputs.image)
    pulumi.export("renderDir", outputs.render_dir)


main()
