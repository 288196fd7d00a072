"""hastack.mon.schedule: mon 1.3's scheduling rules on a simulated clock."""

from __future__ import annotations

import math
import random

import pytest

from hastack.mon.model import MonConfig, Service, Watch
from hastack.mon.schedule import Scheduler

T0 = 1000.0


def config(*services: tuple[str, Service], **globals_: object) -> MonConfig:
    cfg = MonConfig(**globals_)  # type: ignore[arg-type]
    for watch, svc in services:
        cfg.watches.setdefault(watch, Watch(watch)).services[svc.name] = svc
    return cfg


def svc(name: str, interval: float | None = 60, **kw: object) -> Service:
    return Service(name=name, interval=interval, monitor="x.monitor", **kw)  # type: ignore[arg-type]


def sched(cfg: MonConfig, seed: int = 1) -> Scheduler:
    return Scheduler(cfg, T0, random.Random(seed))


def run_once(s: Scheduler, key: tuple[str, str], at: float, took: float, failed: bool) -> None:
    assert key in s.due(at)
    s.started(key, at)
    s.finished(key, at + took, failed)


def test_first_run_one_interval_after_start_then_every_interval_without_drift() -> None:
    s = sched(config(("g", svc("a", 60))))
    k = ("g", "a")
    assert s.due(T0) == [] and s.next_wakeup() == T0 + 60
    assert s.due(T0 + 59.9) == []
    run_once(s, k, T0 + 60, took=7, failed=False)
    # the schedule does not drift with the monitor's 7 s
    assert s.next_wakeup() == T0 + 120
    run_once(s, k, T0 + 120, took=1, failed=False)
    assert s.next_wakeup() == T0 + 180


def test_a_run_longer_than_the_interval_restarts_one_interval_after_its_end() -> None:
    s = sched(config(("g", svc("a", 10))))
    k = ("g", "a")
    run_once(s, k, T0 + 10, took=15, failed=False)
    assert s.next_wakeup() == T0 + 25 + 10


def test_failure_interval_while_failing_and_back_on_success() -> None:
    s = sched(config(("g", svc("a", 60, failure_interval=10))))
    k = ("g", "a")
    run_once(s, k, T0 + 60, took=2, failed=True)
    assert s.interval(k) == 10 and s.next_wakeup() == T0 + 62 + 10
    run_once(s, k, T0 + 72, took=1, failed=True)
    assert s.next_wakeup() == T0 + 82  # drift-free again within the failure interval
    run_once(s, k, T0 + 82, took=3, failed=False)
    assert s.interval(k) == 60 and s.next_wakeup() == T0 + 85 + 60


def test_randskew_bounds_are_whole_seconds_in_1_to_skew_either_way() -> None:
    cfg = config(("g", svc("a", 60, randskew=5)))
    seen = set()
    for seed in range(200):
        s = sched(cfg, seed)
        run_once(s, ("g", "a"), T0 + 60, took=0, failed=False)
        seen.add(s.next_wakeup() - (T0 + 60))
    assert seen == {55, 56, 57, 58, 59, 61, 62, 63, 64, 65}


def test_randstart_spreads_first_runs_over_whole_seconds_below_randstart() -> None:
    services = [("g", svc(f"s{i}", 3600)) for i in range(300)]
    s = sched(config(*services, randstart=30))
    firsts = {s.timer(k, T0) for k in s.services()}
    assert firsts == set(map(float, range(30)))
    again = sched(config(*services, randstart=30))
    assert [again.timer(k, T0) for k in again.services()] == [s.timer(k, T0) for k in s.services()]


def test_maxprocs_queues_the_excess_in_the_order_they_became_due() -> None:
    cfg = config(("g", svc("late", 30)), ("g", svc("early", 20)), ("g", svc("tie", 20)), maxprocs=2)
    s = sched(cfg)
    assert s.due(T0 + 30) == [("g", "early"), ("g", "tie")]
    for k in s.due(T0 + 30):
        s.started(k, T0 + 30)
    assert s.due(T0 + 31) == [] and s.next_wakeup() == math.inf
    s.finished(("g", "tie"), T0 + 40, failed=False)
    assert s.next_wakeup() == T0 + 30  # "late" has waited since then
    assert s.due(T0 + 40) == [("g", "late")]
    assert s.started(("g", "late"), T0 + 40) == pytest.approx(10)  # its lag
    assert s.lag.count == 3 and s.lag.max == pytest.approx(10)


def test_never_started_twice_while_running() -> None:
    s = sched(config(("g", svc("a", 5))))
    k = ("g", "a")
    s.started(k, T0 + 5)
    assert s.due(T0 + 100) == [] and s.next_wakeup() == math.inf
    with pytest.raises(ValueError, match="already running"):
        s.started(k, T0 + 100)
    s.force(k, T0 + 50)  # absorbed by the run in progress, as in mon
    s.finished(k, T0 + 100, failed=False)
    assert s.next_wakeup() == T0 + 105


def test_trap_only_and_monitorless_services_are_never_scheduled() -> None:
    nomon = Service(name="nomon", interval=60)
    s = sched(config(("g", svc("trap", None, traptimeout=60)), ("g", nomon)))
    assert s.services() == [] and s.next_wakeup() == math.inf


def test_disabled_service_and_watch_are_skipped_until_enabled() -> None:
    s = sched(config(("g", svc("a", 10)), ("h", svc("b", 10))))
    s.disable(("g", "a"))
    s.disable_watch("h")
    assert s.due(T0 + 50) == [] and s.next_wakeup() == math.inf
    s.enable_watch("h")
    assert s.due(T0 + 50) == [("h", "b")]
    s.enable(("g", "a"))
    assert s.next_wakeup() == T0 + 10  # overdue: runs at once


def test_force_runs_now_and_restarts_the_schedule_from_that_run() -> None:
    s = sched(config(("g", svc("a", 60))))
    k = ("g", "a")
    s.force(k, T0 + 7)
    assert s.next_wakeup() == T0 + 7 and s.due(T0 + 7) == [k]
    run_once(s, k, T0 + 7, took=1, failed=False)
    assert s.next_wakeup() == T0 + 67


def test_defer_and_skipped() -> None:
    s = sched(config(("g", svc("a", 60))))
    k = ("g", "a")
    s.defer(k, T0 + 61)  # e.g. inside its exclude_period
    assert s.due(T0 + 60) == [] and s.next_wakeup() == T0 + 61
    assert s.due(T0 + 61) == [k]
    s.skipped(k, T0 + 61)  # no hosts: rescheduled as after a run
    assert s.next_wakeup() == T0 + 121


def test_stop_freezes_countdowns_and_start_resumes_them() -> None:
    s = sched(config(("g", svc("a", 60)), ("g", svc("b", 30))))
    s.started(("g", "b"), T0 + 30)
    s.stop(T0 + 40)
    assert s.due(T0 + 100) == [] and s.next_wakeup() == math.inf
    s.finished(("g", "b"), T0 + 45, failed=False)  # its 30 s countdown starts frozen
    s.start(T0 + 140)
    assert s.timer(("g", "a"), T0 + 140) == 20  # 20 s were left at the stop
    assert s.timer(("g", "b"), T0 + 140) == 15  # next check T0+60 was 15 s after its end
    assert s.next_wakeup() == T0 + 155


def test_next_wakeup_is_exact_in_a_simulated_run() -> None:
    cfg = config(
        ("g", svc("a", 7)), ("g", svc("b", 11, failure_interval=3)), ("h", svc("c", 13)),
        maxprocs=2,
    )  # fmt: skip
    s = sched(cfg)
    now, ends, starts = T0, {}, []
    for _ in range(200):
        now = min([s.next_wakeup(), *ends.values()])
        for k in [k for k, t in ends.items() if t <= now]:
            s.finished(k, now, failed=(k == ("g", "b") and len(starts) % 3 == 0))
            del ends[k]
        for k in s.due(now):
            s.started(k, now)
            starts.append((now, k))
            ends[k] = now + 2
        assert len(ends) <= 2
    assert s.lag.max < 2 + 1e-9  # waiting only ever for a slot, never for a poll
    assert {k for _, k in starts} == {("g", "a"), ("g", "b"), ("h", "c")}
