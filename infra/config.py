"""The one typed, validated stack configuration: `StackConfig`.

Read from the `liftlock:` namespace of `stacks/Pulumi.<stack>.yaml` and checked against
`stacks/stack.schema.json` (plus the rules a schema cannot say, such as limits ≥ requests) before
the program declares any resource. Every error names the key, the bad value and what is allowed.

Secrets: the program reads every value through Pulumi's config API (`pulumi.Config`), so a key the
schema declares secret (`"x-liftlock-secret": true`) reaches the program only as a secret Output
(`StackConfig.secrets`), and only when it was set as one (`pulumi config set --secret`); any other
key set as a secret is refused, since the program would use (and the render target write) its
value in plain text. In a stack file read without the engine, a `secure:` value is kept as the
opaque `SECRET` marker: never decrypted, never rewritten.

`liftlock` (gates, promote, preview) imports this module, so it does not import pulumi at the top.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

NAMESPACE = "liftlock"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "stacks" / "stack.schema.json"
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")

Target = Literal["docker", "render", "cluster"]
Exposure = Literal["internal", "public"]

DEFAULT_BUNDLE_DIR = "bundle"
DEFAULT_IMAGE_REPOSITORY = "liftlock-model"
#: the embedded registry (`liftlock cluster up`); a team's own is one key: liftlock:registry
DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_HOST_PORT = 8787
DEFAULT_GITOPS_REVISION = "main"
DEFAULT_ARGOCD_NAMESPACE = "argocd"
DEFAULT_FLUX_NAMESPACE = "flux-system"
GitOpsController = Literal["flux", "argocd"]
#: the embedded default (`liftlock cluster up --gitops`) runs Flux
DEFAULT_GITOPS_CONTROLLER: GitOpsController = "flux"
SECRET_ANNOTATION = "x-liftlock-secret"


class _Secret:
    """A `secure:` value of a stack file, read without the passphrase: present, never known."""

    def __repr__(self) -> str:
        return "[secret]"


SECRET = _Secret()


class StackConfigError(ValueError):
    """The stack configuration is invalid; `problems` lists one line per bad key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"invalid stack configuration in {source}:\n{lines}\n"
            f"  fix: edit {source} (keys and allowed values: stacks/stack.schema.json)"
        )


@dataclass(frozen=True, kw_only=True)
class ComputeResources:
    cpu: str
    memory: str


@dataclass(frozen=True, kw_only=True)
class Resources:
    requests: ComputeResources
    limits: ComputeResources


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 1
    target_cpu_utilization: int = 70


@dataclass(frozen=True, kw_only=True)
class OwnerLabels:
    team: str
    owner: str
    cost_center: str


@dataclass(frozen=True, kw_only=True)
class GitOps:
    repo_url: str
    revision: str = DEFAULT_GITOPS_REVISION
    controller: GitOpsController = DEFAULT_GITOPS_CONTROLLER
    flux_namespace: str = DEFAULT_FLUX_NAMESPACE
    argocd_namespace: str = DEFAULT_ARGOCD_NAMESPACE


@dataclass(frozen=True, kw_only=True)
class ApplyTo:
    """A render stack's second destination: the same objects applied to a cluster."""

    kubeconfig: str
    kube_context: str
    rollout_timeout_seconds: int = 180


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything the program needs to know about one stack, already validated."""

    stack: str
    target: Target
    labels: OwnerLabels
    bundle_digest: str | None = None
    bundle_dir: str = DEFAULT_BUNDLE_DIR
    image: str | None = None
    image_repository: str = DEFAULT_IMAGE_REPOSITORY
    registry: str = DEFAULT_REGISTRY
    replicas: int = 1
    resources: Resources | None = None
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    exposure: Exposure = "internal"
    host_port: int = DEFAULT_HOST_PORT
    kubeconfig: str | None = None
    kube_context: str | None = None
    wait_for_ready: bool = True
    drift_schedule: str | None = None
    namespace: str | None = None
    gitops: GitOps | None = None
    apply_to: ApplyTo | None = None
    # Schema-declared secret keys: pulumi Outputs marked secret in the program, SECRET in a
    # stack file read without the engine. Never rendered into deploy/.
    secrets: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_kubernetes(self) -> bool:
        return self.target in ("render", "cluster")

    @property
    def render_dir(self) -> str | None:
        """Folder (relative to the repository root) the render target writes to."""
        return f"deploy/{self.stack}" if self.target == "render" else None

    @property
    def gitops_render_dir(self) -> str | None:
        """The GitOps controller's objects (Flux's GitRepository + Kustomization, or the Argo CD
        Application) live apart from the manifests they sync: deploy/<controller>/<stack>."""
        if self.target != "render":
            return None
        controller = self.gitops.controller if self.gitops else DEFAULT_GITOPS_CONTROLLER
        return f"deploy/{controller}/{self.stack}"


# ---------------------------------------------------------------------------------------------
# Reading raw values


def load_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def decode_raw_values(raw: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi hands config values to the program as strings (objects JSON-encoded).

    A key the schema declares as a string keeps its text; anything else is JSON-decoded when it
    parses, so `replicas: 3` becomes 3 while `replicas: three` stays "three" and fails the type
    check by name.
    """
    properties = schema.get("properties", {})
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        declared = properties.get(key, {}).get("type")
        if not isinstance(value, str) or declared == "string":
            decoded[key] = value
            continue
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


def namespace_values(flat: Mapping[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """`{"liftlock:replicas": "3", "kubernetes:x": ...}` → `{"replicas": "3"}`."""
    prefix = f"{namespace}:"
    return {key[len(prefix) :]: value for key, value in flat.items() if key.startswith(prefix)}


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `liftlock:` values of a stack file, typed (for liftlock's gates and preview).

    `pulumi config set` and `pulumi stack init` write numbers as strings ("3"); like the engine's
    values, those are decoded by the schema's declared type.
    """
    if not path.is_file():
        raise StackConfigError(str(path), [f"{path}: no such stack file"])
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the file"
        problem = getattr(error, "problem", None) or "syntax error"
        raise StackConfigError(str(path), [f"{where}: not valid YAML ({problem})"]) from None
    if not isinstance(document, dict):
        raise StackConfigError(str(path), ["the file must be a mapping with a 'config' key"])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(str(path), ["key 'config' must be a mapping of key to value"])
    values = {key: _mark_secure(value) for key, value in namespace_values(config).items()}
    return decode_raw_values(values, load_schema())


def _mark_secure(value: Any) -> Any:
    """`{secure: <ciphertext>}` -> SECRET, anywhere in the value."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET
        return {key: _mark_secure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mark_secure(item) for item in value]
    return value


def _holds_secret(value: Any) -> bool:
    if value is SECRET:
        return True
    if isinstance(value, dict):
        return any(_holds_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False


def secret_keys(schema: Mapping[str, Any]) -> set[str]:
    """The top-level keys the schema declares secret."""
    return {
        key
        for key, spec in (schema.get("properties") or {}).items()
        if isinstance(spec, dict) and spec.get(SECRET_ANNOTATION)
    }


def secret_problems(
    values: Mapping[str, Any], schema: Mapping[str, Any], secret_set: set[str], stack: str
) -> list[str]:
    """A declared secret key must be set as a secret; nothing else may be."""
    declared = secret_keys(schema)
    problems = []
    for key in sorted(values):
        full = f"{NAMESPACE}:{key}"
        if key in declared and key not in secret_set:
            problems.append(
                f"{full} is a secret but is set in plain text; set it with "
                f"`pulumi config set --secret {full} <value> --stack {stack}`"
            )
        elif key not in declared and key in secret_set:
            problems.append(
                f"{full} is set as a secret, but it is not a secret key: the program would use "
                f"its value in plain text (and the render target write it into deploy/); keep "
                f"credentials out of it (e.g. no user:token@ in a URL) and give them to the "
                "cluster as an external secret; secret keys: "
                f"{', '.join(sorted(declared)) or 'none'}"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# Validation


def _key_name(path: Iterable[Any]) -> str:
    parts = [str(part) for part in path]
    return f"{NAMESPACE}:" + ".".join(parts) if parts else f"{NAMESPACE}:"


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    key = _key_name(error.absolute_path)
    validator = error.validator
    bad = json.dumps(error.instance, default=str)
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        parent = dict(error.instance) if isinstance(error.instance, dict) else {}
        unknown = sorted(set(parent) - set(allowed))
        base = key.rstrip(":").rstrip(".")
        names = ", ".join(f"{base}{'.' if error.absolute_path else ':'}{u}" for u in unknown)
        return f"unknown key {names}; allowed keys here: {', '.join(allowed)}"
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        base = key.rstrip(":")
        sep = "." if error.absolute_path else ":"
        return f"missing key {base}{sep}{missing[0] if missing else '?'}: {error.message}"
    if validator == "enum":
        choices = ", ".join(json.dumps(v) for v in error.validator_value)
        return f"{key} = {bad}: not allowed; allowed: {choices}"
    if validator == "const":
        return f"{key} = {bad}: must be {json.dumps(error.validator_value)}"
    if validator == "type":
        return f"{key} = {bad}: wrong type; expected {error.validator_value}"
    if validator in ("minimum", "exclusiveMinimum"):
        op = "≥" if validator == "minimum" else ">"
        return f"{key} = {bad}: must be {op} {error.validator_value}"
    if validator in ("maximum", "exclusiveMaximum"):
        op = "≤" if validator == "maximum" else "<"
        return f"{key} = {bad}: must be {op} {error.validator_value}"
    if validator == "pattern":
        hint = error.schema.get("description") or f"the pattern {error.validator_value}"
        return f"{key} = {bad}: malformed; expected {hint}"
    if validator == "minLength":
        return f"{key} = {bad}: must not be empty"
    return f"{key} = {bad}: {error.message}"


def schema_problems(values: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(values), key=lambda e: ([str(p) for p in e.absolute_path], e.message)
    )
    return [_describe_schema_error(error) for error in errors]


_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_millicores(quantity: str | float) -> Decimal:
    text = str(quantity)
    try:
        if text.endswith("m"):
            return Decimal(text[:-1])
        return Decimal(text) * 1000
    except InvalidOperation as error:
        raise ValueError(f"not a CPU quantity: {text!r}") from error


def memory_bytes(quantity: str | int) -> Decimal:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return Decimal(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""]


def rule_problems(values: Mapping[str, Any]) -> list[str]:
    """What the schema cannot say: relations between keys."""
    problems: list[str] = []
    resources = values.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for name, measure in (("cpu", cpu_millicores), ("memory", memory_bytes)):
        if name not in requests or name not in limits:
            continue
        if measure(limits[name]) < measure(requests[name]):
            problems.append(
                f"{NAMESPACE}:resources.limits.{name} = {json.dumps(limits[name])}: below "
                f"resources.requests.{name} = {json.dumps(requests[name])}; "
                "a limit must be ≥ its request"
            )
    autoscaling = values.get("autoscaling") or {}
    if autoscaling.get("enabled"):
        low, high = autoscaling.get("minReplicas"), autoscaling.get("maxReplicas")
        if low is None or high is None:
            problems.append(f"{NAMESPACE}:autoscaling: enabled needs minReplicas and maxReplicas")
        elif high < low:
            problems.append(
                f"{NAMESPACE}:autoscaling.maxReplicas = {high}: below minReplicas = {low}"
            )
    gitops = values.get("gitops") or {}
    controller = gitops.get("controller", DEFAULT_GITOPS_CONTROLLER)
    for key, owner in (("fluxNamespace", "flux"), ("argocdNamespace", "argocd")):
        if key in gitops and controller != owner:
            problems.append(
                f"{NAMESPACE}:gitops.{key}: only the {owner} controller uses it "
                f"(gitops.controller = {json.dumps(controller)}); remove the key, or set "
                f"{NAMESPACE}:gitops.controller: {owner}"
            )
    target = values.get("target")
    if target in ("render", "cluster") and "hostPort" in values:
        problems.append(f"{NAMESPACE}:hostPort: only the docker target uses it (target={target})")
    if target != "render" and "applyTo" in values:
        problems.append(
            f"{NAMESPACE}:applyTo: only the render target uses it (target={target}); "
            "the cluster target applies through liftlock:kubeconfig and liftlock:kubeContext"
        )
    if target in ("docker", "render") and ("kubeContext" in values or "kubeconfig" in values):
        key = "kubeContext" if "kubeContext" in values else "kubeconfig"
        problems.append(
            f"{NAMESPACE}:{key}: only the cluster target uses a kubeconfig (target={target}); "
            "render mode must not be given one"
        )
    return problems


def parse_stack_config(
    raw: Mapping[str, Any],
    *,
    stack: str,
    source: str | None = None,
    decode: bool = True,
    secrets: Mapping[str, Any] | None = None,
    secret_set: set[str] | None = None,
) -> StackConfig:
    """Validate `liftlock:` values (without the prefix) and build the StackConfig.

    `decode` turns Pulumi's string values into typed ones (see decode_raw_values); pass False for
    values already typed (a YAML file read by `read_stack_file`). `secrets` are the declared secret
    keys' values as the program holds them (Outputs); `secret_set` names the keys the engine says
    were set as secrets (from a stack file: the keys holding a `secure:` value).
    """
    where = source or f"stacks/Pulumi.{stack}.yaml"
    schema = load_schema()
    values = decode_raw_values(raw, schema) if decode else dict(raw)
    if secret_set is None:
        secret_set = {key for key, value in values.items() if _holds_secret(value)}
    problems = secret_problems({**values, **(secrets or {})}, schema, secret_set, stack)
    declared = secret_keys(schema)
    # A secret's value is never judged here (the program holds it as an Output).
    checked = {key: value for key, value in values.items() if key not in declared}
    problems += [p for p in schema_problems(checked, schema) if "[secret]" not in p]
    if not problems:
        problems = rule_problems(checked)
    if problems:
        raise StackConfigError(where, problems)
    held = {key: value for key, value in values.items() if key in declared}
    return _build(checked, stack=stack, secrets={**held, **(secrets or {})})


def _build(
    values: Mapping[str, Any], *, stack: str, secrets: Mapping[str, Any] | None = None
) -> StackConfig:
    resources = None
    if "resources" in values:
        spec = values["resources"]
        resources = Resources(
            requests=ComputeResources(
                cpu=str(spec["requests"]["cpu"]), memory=str(spec["requests"]["memory"])
            ),
            limits=ComputeResources(
                cpu=str(spec["limits"]["cpu"]), memory=str(spec["limits"]["memory"])
            ),
        )
    scaling = values.get("autoscaling") or {}
    autoscaling = Autoscaling(
        enabled=bool(scaling.get("enabled", False)),
        min_replicas=int(scaling.get("minReplicas", values.get("replicas", 1))),
        max_replicas=int(scaling.get("maxReplicas", values.get("replicas", 1))),
        target_cpu_utilization=int(scaling.get("targetCpuUtilization", 70)),
    )
    labels = values["labels"]
    gitops = None
    if "gitops" in values:
        gitops = GitOps(
            repo_url=values["gitops"]["repoUrl"],
            revision=values["gitops"].get("revision", DEFAULT_GITOPS_REVISION),
            controller=values["gitops"].get("controller", DEFAULT_GITOPS_CONTROLLER),
            flux_namespace=values["gitops"].get("fluxNamespace", DEFAULT_FLUX_NAMESPACE),
            argocd_namespace=values["gitops"].get("argocdNamespace", DEFAULT_ARGOCD_NAMESPACE),
        )
    apply_to = None
    if "applyTo" in values:
        apply_to = ApplyTo(
            kubeconfig=values["applyTo"]["kubeconfig"],
            kube_context=values["applyTo"]["kubeContext"],
            rollout_timeout_seconds=int(values["applyTo"].get("rolloutTimeoutSeconds", 180)),
        )
    return StackConfig(
        stack=stack,
        target=values["target"],
        labels=OwnerLabels(
            team=labels["team"], owner=labels["owner"], cost_center=labels["costCenter"]
        ),
        bundle_digest=values.get("bundleDigest"),
        bundle_dir=values.get("bundleDir", DEFAULT_BUNDLE_DIR),
        image=values.get("image"),
        image_repository=values.get("imageRepository", DEFAULT_IMAGE_REPOSITORY),
        registry=values.get("registry", DEFAULT_REGISTRY),
        replicas=int(values.get("replicas", 1)),
        resources=resources,
        autoscaling=autoscaling,
        exposure=values.get("exposure", "internal"),
        host_port=int(values.get("hostPort", DEFAULT_HOST_PORT)),
        kubeconfig=values.get("kubeconfig"),
        kube_context=values.get("kubeContext"),
        wait_for_ready=bool(values.get("waitForReady", True)),
        drift_schedule=values.get("driftSchedule"),
        namespace=values.get("namespace"),
        gitops=gitops,
        apply_to=apply_to,
        secrets=dict(secrets or {}),
    )


def load_stack_file(path: Path, *, stack: str | None = None) -> StackConfig:
    """StackConfig of a stack file on disk (`stacks/Pulumi.<stack>.yaml`), without the engine."""
    name = stack or path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return parse_stack_config(read_stack_file(path), stack=name, source=str(path), decode=False)


def load_stack_config() -> StackConfig:
    """StackConfig of the running Pulumi program's stack (call from the program only).

    Values come through `pulumi.Config`: a declared secret key only as `require_secret`'s Output.
    The SDK offers no public listing of the keys that are set, so the names (never the values)
    come from the runtime's config table, to name unknown keys.
    """
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    stack = pulumi.get_stack()
    config = pulumi.Config(NAMESPACE)
    # Key names only (the language host's environment, or what a test's set_all_config set).
    names = sorted(namespace_values(dict.fromkeys([*get_config_env(), *CONFIG.get()])))
    declared = secret_keys(load_schema())
    raw: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    secret_set = {name for name in names if is_config_secret(f"{NAMESPACE}:{name}")}
    for name in names:
        if name in declared:
            secrets[name] = config.require_secret(name)
        else:
            raw[name] = config.get(name)
    return parse_stack_config(raw, stack=stack, secrets=secrets, secret_set=secret_set)
