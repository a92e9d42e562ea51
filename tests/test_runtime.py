"""The composition root: a process that changes its settings and calls ``runtime.reset`` reads
everything anew, whatever it had read and cached under the old settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from resoto_tasks import keys, redis_conn, runtime, workflows


@pytest.fixture
def two_prefixes(r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    first, second = (f"rt{uuid.uuid4().hex[:6]}" for _ in range(2))
    yield first, second
    for prefix in (first, second):
        for key in r.scan_iter(match=f"{prefix}:*"):
            r.delete(key)
    monkeypatch.undo()
    runtime.reset()


def test_the_workflow_catalogue_is_read_anew_after_a_reset_even_at_the_same_version(
    two_prefixes: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    document = "name: {name}\nsteps:\n  - name: tick\n"
    for prefix, name in zip(two_prefixes, ("only_in_first", "only_in_second"), strict=True):
        monkeypatch.setenv("RESOTO_KEY_PREFIX", prefix)
        runtime.reset()
        workflows.add_text(document.format(name=name), "test")
        redis_conn.client().set(keys.workflows_version(), "same")  # as two stores never written to ("0")
        assert runtime.app() is not None  # composed under these settings
        assert name in workflows.catalogue.all()
        assert workflows.catalogue.all()[name].name == name
    # Both prefixes are at the same version: only the reset tells the catalogue it reads another place.
    monkeypatch.setenv("RESOTO_KEY_PREFIX", two_prefixes[0])
    runtime.reset()
    assert redis_conn.client().get(keys.workflows_version()) == "same"
    known = workflows.catalogue.all()
    assert "only_in_first" in known and "only_in_second" not in known


def test_after_redis_lost_its_data_the_catalogue_never_serves_the_old_definitions(
    two_prefixes: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process keeps its catalogue across the loss (no reset): the version it cached must not
    come back once as many workflows as before were added again."""
    monkeypatch.setenv("RESOTO_KEY_PREFIX", two_prefixes[0])
    runtime.reset()
    r = redis_conn.client()
    workflows.add_text("name: before_the_loss\nsteps:\n  - name: tick\n", "test")
    assert "before_the_loss" in workflows.catalogue.all()
    for key in r.scan_iter(match=f"{two_prefixes[0]}:*"):  # the data is gone (no persistence)
        r.delete(key)
    workflows.add_text("name: after_the_loss\nsteps:\n  - name: tick\n", "test")
    known = workflows.catalogue.all()
    assert "after_the_loss" in known and "before_the_loss" not in known
