"""Rendered manifests compared object by object, with field paths, as `kubectl diff` shows them.

For a render stack the state of record is the committed `deploy/<stack>/` tree (what Argo CD or
Flux applies), so its infrastructure diff is the head program's render against the base
commit's tree, and whether the committed tree is the program's render is a diff of the same
kind. Trees are `{repository-relative path: file bytes}`; objects are keyed by apiVersion, kind,
namespace and name, so a renamed file is no change and a moved object is one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from liftlock.preview.report import PropertyChange, ResourceChange

Tree = Mapping[str, bytes]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(ValueError):
    """A manifest file is not YAML of Kubernetes objects (the message names the file)."""


@dataclass(frozen=True)
class ManifestObject:
    key: str  # `apps/v1 Deployment liftlock-staging/liftlock-model`
    type: str  # `kubernetes:apps/v1:Deployment`, as the engine names the resource type
    name: str  # `liftlock-staging/liftlock-model`
    file: str
    body: dict[str, Any]


def objects_of(tree: Tree) -> dict[str, ManifestObject]:
    """Every Kubernetes object of the tree's YAML files, by key."""
    found: dict[str, ManifestObject] = {}
    for path in sorted(tree):
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            documents = list(yaml.safe_load_all(tree[path].decode("utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path}: not valid YAML ({error})") from error
        for document in documents:
            if not isinstance(document, dict):
                continue
            meta = document.get("metadata") or {}
            namespace = meta.get("namespace") or ""
            name = f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))
            api, kind = str(document.get("apiVersion", "")), str(document.get("kind", ""))
            key = f"{api} {kind} {name}"
            found[key] = ManifestObject(key, f"kubernetes:{api}:{kind}", name, path, document)
    return found


def _step(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if _PLAIN_KEY.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{json.dumps(text)}]"


def _json_document(value: Any) -> Any:
    """A string holding a JSON object or array (a ConfigMap's bundle.json) as that document."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return None


def field_changes(old: Any, new: Any, path: str = "") -> list[PropertyChange]:
    """Leaf-level changes from `old` to `new`: dicts by key, lists by index, JSON strings inside."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[PropertyChange] = []
        for key in sorted(set(old) | set(new), key=str):
            where = _step(path, key)
            if key not in old:
                changes.append(PropertyChange(where, "add", None, new[key]))
            elif key not in new:
                changes.append(PropertyChange(where, "delete", old[key], None))
            else:
                changes += field_changes(old[key], new[key], where)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for index in range(max(len(old), len(new))):
            where = _step(path, index)
            if index >= len(old):
                changes.append(PropertyChange(where, "add", None, new[index]))
            elif index >= len(new):
                changes.append(PropertyChange(where, "delete", old[index], None))
            else:
                changes += field_changes(old[index], new[index], where)
        return changes
    if old == new:
        return []
    old_doc, new_doc = _json_document(old), _json_document(new)
    if old_doc is not None and new_doc is not None:
        return field_changes(old_doc, new_doc, path)
    return [PropertyChange(path, "update", old, new)]


def diff_trees(old: Tree, new: Tree) -> list[ResourceChange]:
    """Per-object changes from the `old` tree to the `new` one (creates, updates, deletes)."""
    before, after = objects_of(old), objects_of(new)
    changes = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            obj = after[key]
            changes.append(ResourceChange(obj.file, obj.type, obj.name, "create", file=obj.file))
        elif key not in after:
            obj = before[key]
            changes.append(ResourceChange(obj.file, obj.type, obj.name, "delete", file=obj.file))
        else:
            fields = field_changes(before[key].body, after[key].body)
            if fields:
                obj = after[key]
                changes.append(
                    ResourceChange(obj.file, obj.type, obj.name, "update", tuple(fields), obj.file)
                )
    order = {"delete": 0, "update": 1, "create": 2}
    return sorted(changes, key=lambda c: (order[c.op], c.type, c.name))


def unchanged_objects(old: Tree, new: Tree) -> int:
    before, after = objects_of(old), objects_of(new)
    return sum(
        1
        for key in set(before) & set(after)
        if not field_changes(before[key].body, after[key].body)
    )


def file_digests(tree: Tree) -> dict[str, str]:
    """Path -> sha256 hex of its bytes."""
    return {path: hashlib.sha256(tree[path]).hexdigest() for path in sorted(tree)}


def tree_digest(tree: Tree) -> str:
    """`sha256:` of the `sha256sum` listing of the tree's files sorted by path.

    The same listing `find <dirs> -type f | LC_ALL=C sort | xargs sha256sum` prints, so the
    deploy workflow recomputes it with coreutils alone.
    """
    listing = "".join(f"{digest}  {path}\n" for path, digest in file_digests(tree).items())
    return "sha256:" + hashlib.sha256(listing.encode("utf-8")).hexdigest()


#: Manifests verdicts: the committed tree is the render; the change leaves the stack's tree
#: alone (the deploy workflow renders and commits it at merge); the change edits the tree into
#: something the program does not render.
IN_SYNC, RENDERED_AT_MERGE, OUT_OF_SYNC = "in-sync", "rendered-at-merge", "out-of-sync"


@dataclass
class SyncVerdict:
    """Whether the committed tree of a render stack is what its program renders."""

    verdict: str
    differences: list[ResourceChange] = field(default_factory=list)
    edited_files: list[str] = field(default_factory=list)  # render-dir files the change edits
    stray_files: list[str] = field(default_factory=list)  # committed files that hold no object

    @property
    def in_sync(self) -> bool:
        return self.verdict == IN_SYNC

    @property
    def fails(self) -> bool:
        return self.verdict == OUT_OF_SYNC

    def hand_edits(self) -> list[ResourceChange]:
        """The differences in files the change itself edited (what fails the check)."""
        edited = set(self.edited_files)
        return [d for d in self.differences if d.file in edited]

    def problems(self) -> list[str]:
        """One line per hand edit: the file, and the fields with their committed and rendered
        values (every difference when the change edited files but none of them differ: then
        the edit moved or removed what the program renders)."""
        shown = self.hand_edits() or self.differences
        lines = [describe_difference(change) for change in shown]
        return lines + [
            f"{path}: committed, but the program renders no such file" for path in self.stray_files
        ]


def sync_verdict(base_committed: Tree, head_committed: Tree, rendered: Tree) -> SyncVerdict:
    """Judge the head's committed tree against the head's render.

    A change that edits none of the stack's rendered files leaves writing them to the deploy
    workflow (the render is recorded and applied at merge); a change that edits any must leave
    them exactly as the program renders them, or it is a hand edit the controller would apply.
    """
    edited = sorted(
        path
        for path in set(base_committed) | set(head_committed)
        if base_committed.get(path) != head_committed.get(path)
    )
    differences = diff_trees(head_committed, rendered)
    holding = {obj.file for obj in objects_of(head_committed).values()}
    stray = sorted(set(head_committed) - set(rendered) - holding)
    if not differences and not stray:
        return SyncVerdict(IN_SYNC, [], edited)
    verdict = OUT_OF_SYNC if edited else RENDERED_AT_MERGE
    return SyncVerdict(verdict, differences, edited, stray)


def describe_difference(change: ResourceChange, limit: int = 5) -> str:
    """`deploy/prod/…deployment….yaml: spec.replicas (3 committed, 5 rendered)`."""
    if change.op == "create":
        return (
            f"{change.file}: {change.type.split(':')[-1]} {change.name} is rendered, not committed"
        )
    if change.op == "delete":
        return (
            f"{change.file}: {change.type.split(':')[-1]} {change.name} is committed, not rendered"
        )
    parts = [
        f"{p.path} ({json.dumps(p.old, default=str)} committed, "
        f"{json.dumps(p.new, default=str)} rendered)"
        for p in change.properties[:limit]
    ]
    more = f" and {len(change.properties) - limit} more" if len(change.properties) > limit else ""
    return f"{change.file}: " + ", ".join(parts) + more
