"""`publish --rate`'s pacing, on a simulated clock: the average rate asked for, late sends made up, bounded bursts."""

from __future__ import annotations

from ltmctl.publishing import _RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def test_late_sends_are_made_up_so_the_average_is_the_rate_asked():
    clock = Clock()
    limit = _RateLimit(500, clock=clock, sleep=clock.sleep)
    started = clock.now
    for n in range(1000):
        limit.wait()
        clock.now += 0.0005  # what a send costs
        if n % 10 == 9:
            clock.now += 0.010  # now and then one stalls (a slow publish() call, an overshooting sleep)
    elapsed = clock.now - started
    # 1,000 sends at 500/s: 2 s, never faster; the 100 stalls of 10 ms are caught up within the schedule
    assert 999 / 500 <= elapsed <= 1000 / 500 + 0.011


def test_a_pause_is_caught_up_by_at_most_a_quarter_second_of_sends():
    clock = Clock()
    limit = _RateLimit(1000, clock=clock, sleep=clock.sleep)
    limit.wait()
    clock.now += 10.0  # the producer was idle for 10 s
    clock.sleeps = 0
    at_once = 0
    while clock.sleeps == 0:
        limit.wait()
        at_once += 1
    assert at_once - 1 <= _RateLimit.CATCH_UP_S * 1000 + 1  # not the 10,000 sends the pause would allow


def test_no_rate_never_waits():
    clock = Clock()
    limit = _RateLimit(None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limit.wait()
    assert clock.sleeps == 0
