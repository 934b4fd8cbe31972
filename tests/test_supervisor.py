"""The supervisor's restart backoff, on a clock the test moves."""

from __future__ import annotations

from syncagents.cli.supervisor import (
    FIRST_BACKOFF,
    HEALTHY_RUN,
    MAX_BACKOFF,
    RestartBackoff,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_while_crashing_and_starts_over_after_a_healthy_run() -> None:
    clock = Clock()
    backoff = RestartBackoff(clock)
    delays = []
    for _ in range(6):  # a crash loop: each run lasts a second
        backoff.run_started()
        clock.now += 1.0
        delays.append(backoff.delay_after_exit())
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert (FIRST_BACKOFF, MAX_BACKOFF) == (1.0, 10.0)

    backoff.run_started()
    clock.now += HEALTHY_RUN  # it ran healthy for a minute: a new failure, not a loop
    assert backoff.delay_after_exit() == FIRST_BACKOFF
    backoff.run_started()
    clock.now += 1.0
    assert backoff.delay_after_exit() == 2 * FIRST_BACKOFF

    backoff.run_started()
    clock.now += HEALTHY_RUN - 0.5  # not quite long enough
    assert backoff.delay_after_exit() == 4 * FIRST_BACKOFF
