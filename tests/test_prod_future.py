"""runtime.prod.GeventFuture: the reply future the outside world (HTTP handlers) waits on."""

from __future__ import annotations

import time

import gevent
import pykka
import pytest

from runtime.prod import GeventFuture


def test_value_set_later_wakes_the_waiter() -> None:
    f = GeventFuture()
    gevent.spawn_later(0.01, f.set, 42)
    assert f.get(timeout=5) == 42
    assert f.get() == 42  # once set, every get answers at once


def test_value_set_before_get() -> None:
    f = GeventFuture()
    f.set(None)
    assert f.get(timeout=0) is None


def test_exception_is_raised_to_the_waiter() -> None:
    f = GeventFuture()

    def fail() -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            f.set_exception()

    gevent.spawn_later(0.01, fail)
    with pytest.raises(ValueError, match="boom"):
        f.get(timeout=5)
    with pytest.raises(ValueError, match="boom"):
        f.get()


def test_timeout_then_a_late_answer_does_not_wake_another_wait() -> None:
    f, other = GeventFuture(), GeventFuture()
    t0 = time.monotonic()
    with pytest.raises(pykka.Timeout):
        f.get(timeout=0.02)
    assert time.monotonic() - t0 >= 0.015
    # The late answer must not resume this greenlet while it waits on another future.
    gevent.spawn_later(0.005, f.set, 1)
    gevent.spawn_later(0.05, other.set, 2)
    assert other.get(timeout=5) == 2
    assert f.get(timeout=0) == 1


def test_set_twice_is_refused() -> None:
    f = GeventFuture()
    f.set(1)
    with pytest.raises(ValueError, match="already set"):
        f.set(2)
    with pytest.raises(ValueError, match="already set"):
        f.set_exception((ValueError, ValueError("x"), None))


def test_a_killed_waiter_leaves_the_future_usable() -> None:
    f = GeventFuture()
    g = gevent.spawn(f.get, timeout=5)
    gevent.sleep(0.01)
    g.kill(block=True, timeout=1)
    f.set(7)
    gevent.sleep(0)  # nothing is woken (the killed waiter is gone)
    assert f.get(timeout=0) == 7


def test_pykka_helpers_still_work() -> None:
    f = GeventFuture()
    doubled = f.map(lambda v: v * 2)
    gevent.spawn_later(0.01, f.set, 21)
    assert doubled.get(timeout=5) == 42
    a, b = GeventFuture(), GeventFuture()
    a.set(1)
    b.set(2)
    assert pykka.get_all([a, b], timeout=1) == [1, 2]


def test_many_waiters_each_get_their_own_answer() -> None:
    futures = [GeventFuture() for _ in range(200)]
    got: list[int] = []
    waiters = [gevent.spawn(lambda f=f: got.append(f.get(timeout=5))) for f in futures]
    gevent.sleep(0)
    for i, f in enumerate(futures):
        f.set(i)
    gevent.joinall(waiters, timeout=5)
    assert sorted(got) == list(range(200))
