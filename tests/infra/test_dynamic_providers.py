"""The diff rules of the dynamic providers (no Docker needed: the engine checks are stubbed)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.components.local_service import LocalServiceProvider
from infra.components.model_image import ModelImageProvider, image_tag

DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64


def image_props(**changes: Any) -> dict[str, Any]:
    props = {
        "repository": "liftlock-model",
        "registry": "127.0.0.1:5000",
        "tag": image_tag("liftlock-model", DIGEST, "127.0.0.1:5000"),
        "bundle_digest": DIGEST,
        "bundle_dir": "/repo/bundle",
        "context_hash": "sha256:" + "c" * 64,
        "image_id": "sha256:" + "d" * 64,
        "reference": "127.0.0.1:5000/liftlock-model@sha256:" + "e" * 64,
    }
    return {**props, **changes}


@pytest.fixture
def image_provider(monkeypatch: pytest.MonkeyPatch) -> ModelImageProvider:
    provider = ModelImageProvider()
    monkeypatch.setattr(provider, "_image_present", lambda olds: True)
    return provider


def test_unchanged_bundle_and_context_is_no_change(image_provider: ModelImageProvider) -> None:
    result = image_provider.diff("id", image_props(), image_props())
    assert not result.changes


def test_state_from_before_pushing_builds_and_pushes_again(
    image_provider: ModelImageProvider,
) -> None:
    old = image_props()
    del old["reference"]
    assert image_provider.diff("id", old, image_props()).changes


def test_new_bundle_means_a_new_tag_and_a_replacement(image_provider: ModelImageProvider) -> None:
    news = image_props(bundle_digest=NEW_DIGEST, tag=image_tag("liftlock-model", NEW_DIGEST))
    result = image_provider.diff("id", image_props(), news)
    assert result.changes and result.replaces == ["tag"]
    assert result.delete_before_replace is False, "the old tag goes after the new one exists"


def test_changed_sources_rebuild_in_place(image_provider: ModelImageProvider) -> None:
    result = image_provider.diff(
        "id", image_props(), image_props(context_hash="sha256:" + "e" * 64)
    )
    assert result.changes and not result.replaces


def test_an_image_removed_behind_the_engines_back_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = ModelImageProvider()
    monkeypatch.setattr(provider, "_image_present", lambda olds: False)
    assert provider.diff("id", image_props(), image_props()).changes


def service_props(**changes: Any) -> dict[str, Any]:
    props = {
        "image_id": "sha256:" + "d" * 64,
        "host_port": 8787,
        "container_name": "liftlock-model-dev",
        "environment": {},
        "labels": {"liftlock.io/stack": "dev"},
    }
    return {**props, **changes}


def test_container_is_replaced_when_the_image_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = LocalServiceProvider()
    monkeypatch.setattr(provider, "_running", lambda container_id: True)
    assert not provider.diff("c", service_props(), service_props()).changes
    result = provider.diff("c", service_props(), service_props(image_id="sha256:" + "f" * 64))
    assert result.replaces == ["image_id"]
    assert result.delete_before_replace, "same name and port: the old container must go first"


def test_a_stopped_container_is_recreated(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = LocalServiceProvider()
    monkeypatch.setattr(provider, "_running", lambda container_id: False)
    assert provider.diff("c", service_props(), service_props()).replaces == ["container_id"]
