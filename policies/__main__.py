"""The liftlock CrossGuard policy pack: assembles the rules, nothing else.

`pulumi preview --stack <stack> --policy-pack policies` runs it; the rules are the plain functions
in policies/rules/ (the offline gate runs the same ones), their enforcement level per stack comes
from policies/gates.yaml (policies/crossguard.py says how the pack knows the stack).
"""

from __future__ import annotations

import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent

if __name__ == "__main__":
    # Run as a script by the language host: make the repository importable as the package root.
    sys.path.insert(0, str(PACK_DIR.parent))

    from pulumi_policy import EnforcementLevel, PolicyPack

    from policies.crossguard import pack_policies
    from policies.gates import GatesError

    try:
        policies = pack_policies(PACK_DIR / "gates.yaml")
    except GatesError as error:
        # One message naming the file, the key and the fix; no traceback for the engine to echo.
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    PolicyPack(
        name="liftlock-policies",
        enforcement_level=EnforcementLevel.MANDATORY,
        policies=policies,
    )
