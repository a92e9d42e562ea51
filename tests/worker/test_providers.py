"""Provider discovery through the ``resoto_tasks.providers`` entry points."""

from __future__ import annotations

import pytest

from tests.support.workers import WorkerProcess
from worker.providers.base import (
    Provider,
    UnknownProvider,
    available_providers,
    load_provider,
    load_providers,
)
from worker.providers.example import ExampleProvider


def test_the_example_provider_is_found_through_its_entry_point() -> None:
    assert "example" in available_providers()
    provider = load_provider("example")
    assert isinstance(provider, ExampleProvider)
    assert isinstance(provider, Provider)
    assert provider.name == "example"


def test_unknown_providers_are_all_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownProvider) as caught:
        load_providers(["example", "azure", "gcp"])
    assert caught.value.names == ["azure", "gcp"]
    message = str(caught.value)
    assert "'azure', 'gcp'" in message
    assert "known providers: aws, example" in message
    assert "RESOTO_COLLECT_PROVIDERS" in message


def test_names_are_trimmed_and_deduplicated() -> None:
    assert [p.name for p in load_providers([" example", "example", ""])] == ["example"]


def test_a_worker_whose_providers_cannot_load_exits_2_with_one_line_and_no_traceback() -> None:
    worker = WorkerProcess("collect", env={"RESOTO_COLLECT_PROVIDERS": "example,nosuchcloud"}).start(wait=False)
    assert worker.proc is not None
    assert worker.proc.wait(60) == 2
    log = worker.tail(20_000)
    errors = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert len(errors) == 1, log
    assert "worker cannot start: unknown provider 'nosuchcloud'" in errors[0]
    assert "Traceback" not in log
