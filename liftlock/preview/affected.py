"""Which stacks a change affects, and why.

A change to what every stack is built from (the pipeline, the model code, the Pulumi program,
the policy pack, the stack schema) affects every stack; a change to `stacks/Pulumi.<stack>.yaml`
affects that stack only, and so does a change to its rendered manifests (`deploy/<stack>/`,
`deploy/flux/<stack>/`, `deploy/argocd/<stack>/`: their check is that they are still what the
program renders);
anything else (docs, tests, workflows) affects none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Paths (exact files or folder prefixes ending in "/") whose change affects every stack.
ALL_STACK_INPUTS = (
    "params.yaml",
    "dvc.yaml",
    "dvc.lock",
    "Pulumi.yaml",
    "stacks/stack.schema.json",
    "ml/",
    "infra/",
    "policies/",
    "data/",
)
#: Of those, the ones that change the model (so metric deltas belong to every stack's row).
ML_INPUTS = ("params.yaml", "dvc.yaml", "dvc.lock", "ml/", "data/")

_STACK_FILE = re.compile(r"^stacks/Pulumi\.(?P<stack>[A-Za-z0-9_.-]+)\.yaml$")
_RENDERED_FILE = re.compile(r"^deploy/(?:argocd/|flux/)?(?P<stack>[A-Za-z0-9_.-]+)/")


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in patterns)


def stack_of_config_file(path: str) -> str | None:
    """`stacks/Pulumi.staging.yaml` or `deploy/staging/…` -> `staging`; other paths -> None."""
    match = _STACK_FILE.match(path) or _RENDERED_FILE.match(path)
    return match["stack"] if match else None


def touches_ml(changed: Iterable[str]) -> bool:
    """Whether a change can move the model's params or metrics."""
    return any(_matches(p, ML_INPUTS) or p.endswith(".dvc") for p in changed)


def affected_stacks(changed: Iterable[str], stacks: Iterable[str]) -> dict[str, list[str]]:
    """Stack -> the changed paths that affect it (sorted, stacks in the given order).

    Stacks no path affects are left out. A config file of a stack that is not in `stacks`
    (a stack deleted by the change) is ignored: there is nothing left to preview.
    """
    known = list(stacks)
    reasons: dict[str, list[str]] = {stack: [] for stack in known}
    for path in sorted(set(changed)):
        if _matches(path, ALL_STACK_INPUTS) or path.endswith(".dvc"):
            for stack in known:
                reasons[stack].append(path)
            continue
        owner = stack_of_config_file(path)
        if owner is not None and owner in reasons:
            reasons[owner].append(path)
    return {stack: paths for stack, paths in reasons.items() if paths}
