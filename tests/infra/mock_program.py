"""Run the liftlock program under Pulumi mocks and return what it declared.

Mocks are installed before the program modules are imported (they read the runtime settings on
first use), the way pulumi/examples testing-unit-py does it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi


@dataclass
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    stack: str

    @property
    def urn(self) -> str:
        return f"urn:pulumi:{self.stack}::liftlock::{self.typ}::{self.name}"


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    stack: str
    declared: list[Declared] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.declared.append(
            Declared(args.typ, args.name, dict(args.inputs), args.provider, self.stack)
        )
        state = dict(args.inputs)
        if args.typ == "pulumi-python:dynamic/liftlock:ModelImage":
            state["image_id"] = "sha256:" + "1" * 64
        if args.typ == "pulumi-python:dynamic/liftlock:LocalService":
            state["url"] = f"http://127.0.0.1:{int(args.inputs['host_port'])}"
            state["container_id"] = "c" * 64
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        return {}, None


@dataclass
class ProgramRun:
    declared: list[Declared]
    outputs: dict[str, Any]

    def of_type(self, typ: str) -> list[Declared]:
        return [d for d in self.declared if d.typ == typ]

    def one(self, typ: str) -> Declared:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[d.urn for d in found]}"
        return found[0]


def run_program(
    stack: str,
    config: dict[str, str],
    root: Path,
    *,
    preview: bool = False,
    declared: list[Declared] | None = None,
) -> ProgramRun:
    """Declare the stack with `config` (`liftlock:key` → string) rooted at `root`.

    `declared` (optional) receives the declared resources even when the program raises.
    """
    mocks = RecordingMocks(stack=stack, declared=[] if declared is None else declared)
    pulumi.runtime.set_mocks(mocks, project="liftlock", stack=stack, preview=preview)
    pulumi.runtime.set_all_config(config)
    # Imported after the mocks on purpose.
    from infra.config import load_stack_config
    from infra.stack import declare_stack

    captured: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        stack_config = load_stack_config()
        outputs = declare_stack(stack_config, root)
        return pulumi.Output.all(
            target=outputs.target,
            service_url=outputs.service_url,
            bundle_digest=outputs.bundle_digest,
            image=outputs.image,
            render_dir=outputs.render_dir,
            applied_to=outputs.applied_to,
        ).apply(captured.update)

    program()
    return ProgramRun(declared=mocks.declared, outputs=captured)


Check = Callable[[ProgramRun], None]
