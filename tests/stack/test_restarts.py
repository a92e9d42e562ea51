"""The restart policy of ``resoto-tasks up``: at once at first, slower while a child keeps dying."""

from __future__ import annotations

from resoto_tasks.local_stack.restarts import RestartPolicy


def test_a_child_that_keeps_dying_waits_longer_each_time_up_to_the_last_delay() -> None:
    policy = RestartPolicy(backoff_s=(1.0, 2.0, 5.0), stable_after_s=60.0)
    now = 1000.0
    delays = []
    for _ in range(5):
        delays.append(policy.exited("worker-collect", ran_for_s=3.0, now=now))
        now += delays[-1]
        assert policy.due(now) == ["worker-collect"]
    assert delays == [1.0, 2.0, 5.0, 5.0, 5.0]
    assert policy.restarts_in_a_row("worker-collect") == 5


def test_a_child_that_ran_long_enough_starts_afresh_at_the_shortest_delay() -> None:
    policy = RestartPolicy(backoff_s=(1.0, 2.0, 5.0), stable_after_s=60.0)
    policy.exited("beat", ran_for_s=1.0, now=0.0)
    policy.exited("beat", ran_for_s=1.0, now=10.0)
    assert policy.exited("beat", ran_for_s=600.0, now=700.0) == 1.0


def test_a_child_is_due_only_once_its_delay_passed_and_only_once() -> None:
    policy = RestartPolicy(backoff_s=(2.0,))
    policy.exited("worker-cleanup", ran_for_s=0.0, now=100.0)
    policy.exited("flower", ran_for_s=0.0, now=100.5)
    assert policy.due(101.0) == []
    assert policy.due(102.0) == ["worker-cleanup"]
    assert policy.due(103.0) == ["flower"]
    assert policy.due(200.0) == []
