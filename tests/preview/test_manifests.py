"""Rendered manifest trees diffed object by object with field paths; sync verdicts; digests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from liftlock.preview.manifests import (
    IN_SYNC,
    OUT_OF_SYNC,
    RENDERED_AT_MERGE,
    ManifestError,
    diff_trees,
    objects_of,
    sync_verdict,
    tree_digest,
    unchanged_objects,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "deploy/staging/1-manifest/apps_v1-deployment-liftlock-staging-liftlock-model.yaml"
CONFIGMAP = "deploy/staging/1-manifest/v1-configmap-liftlock-staging-liftlock-model-bundle.yaml"


def committed(stack: str = "staging") -> dict[str, bytes]:
    """The committed render of a stack, as the preview reads it."""
    folders = [REPO / "deploy" / stack, REPO / "deploy" / "flux" / stack]
    return {
        p.relative_to(REPO).as_posix(): p.read_bytes()
        for folder in folders
        for p in sorted(folder.rglob("*.yaml"))
    }


def edited(tree: dict[str, bytes], path: str, edit) -> dict[str, bytes]:
    document = yaml.safe_load(tree[path])
    edit(document)
    return {**tree, path: yaml.safe_dump(document).encode()}


def set_replicas(n: int):
    return lambda doc: doc["spec"].__setitem__("replicas", n)


def test_one_value_changed_is_one_field_of_one_object():
    base = committed()
    head = edited(base, DEPLOYMENT, set_replicas(3))
    changes = diff_trees(base, head)
    assert [(c.op, c.type, c.name) for c in changes] == [
        ("update", "kubernetes:apps/v1:Deployment", "liftlock-staging/liftlock-model")
    ]
    assert [(p.path, p.kind, p.old, p.new) for p in changes[0].properties] == [
        ("spec.replicas", "update", 2, 3)
    ]
    assert changes[0].file == DEPLOYMENT
    assert unchanged_objects(base, head) == len(objects_of(base)) - 1


def test_label_keys_with_dots_and_slashes_are_quoted_like_pulumi_paths():
    base = committed()

    def relabel(doc):
        doc["metadata"]["labels"]["liftlock.io/bundle-digest"] = "0" * 32

    (change,) = diff_trees(base, edited(base, DEPLOYMENT, relabel))
    assert [p.path for p in change.properties] == ['metadata.labels["liftlock.io/bundle-digest"]']


def test_a_json_document_inside_a_configmap_is_diffed_field_by_field():
    base = committed()

    def retrain(doc):
        import json

        bundle = json.loads(doc["data"]["bundle.json"])
        bundle["metrics"]["accuracy"] = 0.5
        doc["data"]["bundle.json"] = json.dumps(bundle, indent=2, sort_keys=True)

    (change,) = diff_trees(base, edited(base, CONFIGMAP, retrain))
    paths = [p.path for p in change.properties]
    assert paths == ['data["bundle.json"].metrics.accuracy'], paths


def test_created_and_deleted_objects_and_list_items():
    base = committed()
    head = dict(base)
    removed = next(p for p in base if "poddisruptionbudget" in p)
    del head[removed]
    head["deploy/staging/1-manifest/v1-configmap-extra.yaml"] = (
        b"apiVersion: v1\nkind: ConfigMap\n"
        b"metadata:\n  name: extra\n  namespace: liftlock-staging\n"
    )

    def add_env(doc):
        doc["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})

    head = edited(head, DEPLOYMENT, add_env)
    ops = {(c.op, c.type.split(":")[-1]) for c in diff_trees(base, head)}
    assert ops == {
        ("delete", "PodDisruptionBudget"),
        ("create", "ConfigMap"),
        ("update", "Deployment"),
    }
    update = next(c for c in diff_trees(base, head) if c.op == "update")
    assert [(p.path, p.kind) for p in update.properties] == [
        ("spec.template.spec.containers[0].env[3]", "add")  # after the 3 the program sets
    ]


def test_a_renamed_file_holding_the_same_object_is_no_change():
    base = committed()
    head = {k.replace("apps_v1-", "renamed-"): v for k, v in base.items()}
    assert diff_trees(base, head) == []


def test_invalid_yaml_names_the_file():
    with pytest.raises(ManifestError, match=r"deploy/prod/x\.yaml: not valid YAML"):
        objects_of({"deploy/prod/x.yaml": b"a: [unclosed\n"})


def test_a_hand_edit_is_out_of_sync_naming_file_and_field():
    base = committed("prod")
    deployment = next(p for p in base if "deployment" in p)
    # prod's HPA scales its replicas (no spec.replicas rendered): a hand edit adds one
    hand_edited = edited(base, deployment, set_replicas(7))
    verdict = sync_verdict(base, hand_edited, rendered=base)
    assert verdict.verdict == OUT_OF_SYNC and verdict.fails
    assert verdict.edited_files == [deployment]
    (problem,) = verdict.problems()
    assert problem == f"{deployment}: spec.replicas (7 committed, null rendered)"


def test_a_config_change_leaves_the_render_to_the_deploy_workflow():
    base = committed()
    rendered = edited(base, DEPLOYMENT, set_replicas(3))
    verdict = sync_verdict(base, base, rendered)
    assert verdict.verdict == RENDERED_AT_MERGE and not verdict.fails
    assert [c.name for c in verdict.differences] == ["liftlock-staging/liftlock-model"]


def test_a_change_that_commits_the_render_is_in_sync():
    base = committed()
    rendered = edited(base, DEPLOYMENT, set_replicas(3))
    assert sync_verdict(base, rendered, rendered).verdict == IN_SYNC


def test_a_stray_file_in_the_render_folder_is_out_of_sync():
    base = committed()
    head = {**base, "deploy/staging/notes.txt": b"hand written\n"}
    verdict = sync_verdict(base, head, base)
    assert verdict.verdict == OUT_OF_SYNC
    assert verdict.problems() == [
        "deploy/staging/notes.txt: committed, but the program renders no such file"
    ]


def test_tree_digest_is_what_sha256sum_of_the_sorted_files_gives(tmp_path: Path):
    tree = committed("prod")
    for path, content in tree.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    listing = subprocess.run(
        "find deploy/prod deploy/flux/prod -type f | LC_ALL=C sort | xargs sha256sum | sha256sum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tree_digest(tree) == "sha256:" + listing.stdout.split()[0]
    assert tree_digest(edited(tree, next(iter(tree)), lambda d: None)) != tree_digest(tree)
