"""Polling against a deadline, on a fake clock: no test here sleeps."""

import pytest

from viworks_verify.core.polling import NotReady, poll_until


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.waits = []

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


def test_returns_the_value_and_time_to_ready():
    clock = FakeClock()
    values = iter(["Offline", "Offline", "Online"])
    ready = poll_until(
        lambda: next(values), lambda v: v == "Online", what="gw", timeout_s=10, clock=clock, wait=clock.wait
    )
    assert ready.value == "Online" and ready.attempts == 3
    assert ready.elapsed_s == pytest.approx(sum(clock.waits))


def test_gives_up_at_the_deadline_with_the_last_observation():
    clock = FakeClock()
    with pytest.raises(NotReady, match="gw not ready after 5 s; last seen: Offline") as caught:
        poll_until(lambda: "Offline", lambda v: v == "Online", what="gw", timeout_s=5, clock=clock, wait=clock.wait)
    assert caught.value.last == "Offline"
    assert clock.now == pytest.approx(5)  # never waits past the deadline


def test_a_probe_exception_is_an_observation_not_a_crash():
    clock = FakeClock()

    def probe():
        raise ConnectionRefusedError("port 8081")

    with pytest.raises(NotReady, match="ConnectionRefusedError: port 8081"):
        poll_until(probe, bool, what="ws", timeout_s=1, clock=clock, wait=clock.wait)


def test_the_interval_grows_but_is_capped():
    clock = FakeClock()
    with pytest.raises(NotReady):
        poll_until(
            lambda: False, bool, what="x", timeout_s=30, interval_s=0.5, max_interval_s=2, clock=clock, wait=clock.wait
        )
    assert clock.waits[0] == 0.5 and max(clock.waits) == 2
