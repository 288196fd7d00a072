"""benchmarks/failover.py's pure parts: the prober's lines and the failover time read from them,
ratios and the summary, the option lists, the log counts of the false-failover mode, the
keepalived configuration; and the prober itself against a loopback listener."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _failover_stacks import (
    PROBER,
    ProbeEvent,
    failover_time,
    hastack_timeline,
    keepalived_conf,
    log_time,
    parse_probe_line,
)
from failover import count_log_events, parse_list, policy_name, ratio, ratios, summary


def test_probe_lines_parse_and_anything_else_is_none() -> None:
    assert parse_probe_line("up 1.5 1.25\n") == ProbeEvent(True, 1.5, 1.25)
    assert parse_probe_line("down 2 3") == ProbeEvent(False, 2.0, 3.0)
    assert parse_probe_line("up 1.5") is None
    assert parse_probe_line("sideways 1 2") is None
    assert parse_probe_line("up x 2") is None
    assert parse_probe_line("") is None


@given(st.text())
def test_probe_line_parser_never_raises(line: str) -> None:
    ev = parse_probe_line(line)
    assert ev is None or isinstance(ev, ProbeEvent)


def test_failover_time_is_the_first_success_after_a_loss_after_the_fault() -> None:
    events = [
        ProbeEvent(False, 0.0, 0.01),  # an earlier outage: not this fault's
        ProbeEvent(True, 0.5, 0.5001),
        ProbeEvent(False, 10.001, 10.011),  # the fault at 10.0
        ProbeEvent(True, 10.040, 10.0402),
        ProbeEvent(False, 11.0, 11.01),
        ProbeEvent(True, 12.0, 12.0),
    ]
    assert failover_time(events, 10.0) == pytest.approx(0.0402)


def test_a_success_before_any_loss_after_the_fault_does_not_count() -> None:
    # still up (the fault has not bitten yet), then no loss: no failover measured
    assert failover_time([ProbeEvent(True, 9.0, 10.002)], 10.0) is None
    # lost, never back
    assert failover_time([ProbeEvent(False, 10.0, 10.01)], 10.0) is None
    # a connect started before the fault but failing after it is the loss
    events = [ProbeEvent(False, 9.999, 10.009), ProbeEvent(True, 10.02, 10.021)]
    assert failover_time(events, 10.0) == pytest.approx(0.021)


def test_ratio_of_medians_and_missing_sides() -> None:
    a = {"n": 3, "median": 0.06}
    b = {"n": 3, "median": 0.03}
    assert ratio(a, b) == pytest.approx(2.0)
    assert ratio(a, None) is None
    assert ratio(a, {"n": 0}) is None
    assert ratio(a, {"n": 2, "median": 0.0}) is None


def _entry(values: list[float]) -> dict[str, object]:
    from _common import stats

    return {"stats": stats(values), "samples": values, "runs": []}


def test_ratios_and_summary_name_each_stack_and_the_fenced_figure() -> None:
    by_stack = {
        "hastack": {"crash": _entry([0.04, 0.05, 0.06])},
        "keepalived": {"crash": _entry([0.03, 0.04, 0.05])},
        "heartbeat": {"crash": _entry([0.5, 0.6, 0.7])},
        "hastack-fence_dummy": {"crash": _entry([1.2, 1.25, 1.3])},
    }
    r = ratios(by_stack)
    assert r["crash"]["hastack_over_keepalived"] == pytest.approx(0.05 / 0.04)
    assert r["crash"]["heartbeat_over_hastack"] == pytest.approx(0.6 / 0.05)
    assert "cut" not in r
    lines = summary({"fast": by_stack})
    assert lines[0].startswith("fast crash: hastack 50 ms (p99 60 ms, n=3)")
    assert "hastack/keepalived 1.25x" in lines[1]
    assert "heartbeat/hastack 12.00x" in lines[1]
    assert "hastack-fence_dummy/hastack 25.00x" in lines[1]
    assert "hastack-fence_dummy 1250 ms" in lines[0]


def test_option_lists_reject_unknown_and_empty_naming_the_allowed() -> None:
    assert parse_list("fast, default", ["fast", "default"], "--profiles") == ["fast", "default"]
    with pytest.raises(argparse.ArgumentTypeError, match="quick not known; allowed: fast"):
        parse_list("fast,quick", ["fast", "default"], "--profiles")
    with pytest.raises(argparse.ArgumentTypeError, match="none given"):
        parse_list(" , ", ["crash"], "--faults")


def test_log_counts_find_membership_losses_and_elections() -> None:
    log = "\n".join(
        [
            "2026-12-05T22:43:20.793 n2 warning node-dead node n1 is dead: no heartbeat",
            "2026-12-05T22:43:20.795 n2 info dc-elected n2 is DC for term 3",
            "2026-12-05T22:43:20.798 n2 info dc-elected dc-elected term=3 seq=2 node=n2",
            "2026-12-05T22:43:21.301 n2 info node-up node n1 is online",
            "2026-12-05T22:43:22.100 n2 warning node-lost node-lost seq=9 node=n1",
        ]
    )
    log += "\n2026-12-05T22:43:21.346 n2 warning heartbeat-late late heartbeat from n1: 15 ms"
    assert count_log_events(log) == {
        "node_dead_lines": 2,
        "dc_elected_lines": 2,
        "late_heartbeat_lines": 1,
    }
    assert set(count_log_events("").values()) == {0}


def test_keepalived_conf_is_vrrpv3_with_the_advert_interval_and_address() -> None:
    conf = keepalived_conf("n1", 150, 0.01, "10.1.0.200")
    assert "vrrp_version 3" in conf
    assert "advert_int 0.01\n" in conf
    assert "priority 150" in conf
    assert "10.1.0.200/24 dev eth0" in conf
    assert conf.count("{") == conf.count("}")
    assert "advert_int 1\n" in keepalived_conf("n2", 100, 1.0, "10.1.0.200")


def test_the_prober_reports_up_then_down_when_the_listener_goes() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBER, "127.0.0.1", str(port), "0.001", "0.01"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = parse_probe_line(proc.stdout.readline())
        assert first is not None and first.up
        listener.close()  # connections are refused from now on
        t_closed = time.monotonic()
        second = parse_probe_line(proc.stdout.readline())
        assert second is not None and not second.up
        assert second.end >= t_closed - 0.005
        assert second.end - t_closed < 1.0
    finally:
        listener.close()
        proc.kill()
        proc.wait(5)


SURVIVOR_LOG = """\
=== lab: start n2 at 1796510840.559361
2026-12-05T22:47:21.900 n2 info crm-transition transition 0: actions=["vip_start_0 n2"]
2026-12-05T22:47:23.505 n2 info crm-not-dc n2 is no longer the DC (term 2)
2026-12-05T22:47:23.510 n2 warning node-dead node n1 is dead: no heartbeat for 31 ms
2026-12-05T22:47:23.535 n2 warning dc-lost n2 is no longer DC (term 2): no quorum
2026-12-05T22:47:23.539 n2 info dc-elected n2 is DC for term 3 dc=n2 term=3 votes=["n2"]
2026-12-05T22:47:23.539 n2 info dc-elected dc-elected term=3 seq=13 node=n2
2026-12-05T22:47:23.543 n2 info crm-transition transition 4: ["vip_start_0 n2"]
2026-12-05T22:47:23.548 n2 info crm-input-saved transition 4: scheduler input saved
2026-12-05T22:47:23.573 n2 info resource-started node=n2 resource=vip task=start rc=0
2026-12-05T22:47:24.291 n2 info resource-started node=n1 resource=vip task=start rc=0
"""


def test_hastack_timeline_takes_the_first_step_of_each_kind_after_the_fault() -> None:
    fault = log_time("2026-12-05T22:47:23.480 n2 x")
    assert fault is not None
    steps = hastack_timeline(SURVIVOR_LOG, fault, "n2")
    assert steps == {
        "node_dead": pytest.approx(30.0, abs=0.2),
        "dc_lost": pytest.approx(55.0, abs=0.2),
        "dc_elected": pytest.approx(59.0, abs=0.2),
        "transition": pytest.approx(63.0, abs=0.2),
        "input_saved": pytest.approx(68.0, abs=0.2),
        "vip_started": pytest.approx(93.0, abs=0.2),
    }
    # another node's lines are not the survivor's steps; a line without a time is skipped
    assert hastack_timeline(SURVIVOR_LOG, fault, "n1") == {}
    assert log_time("=== lab: start n2") is None


def test_hastack_timeline_stops_at_the_start_of_the_address() -> None:
    log = (
        "2026-12-05T22:47:23.510 n2 warning node-dead node n1 is dead\n"
        "2026-12-05T22:47:23.573 n2 info resource-started node=n2 resource=vip task=start rc=0\n"
        "2026-12-05T22:47:25.000 n2 warning dc-lost n2 is no longer DC (term 3)\n"
    )
    fault = log_time("2026-12-05T22:47:23.480")
    assert fault is not None
    assert set(hastack_timeline(log, fault, "n2")) == {"node_dead", "vip_started"}


def test_policy_names_show_realtime_and_reset_on_fork() -> None:
    import os

    assert policy_name(os.SCHED_RR | os.SCHED_RESET_ON_FORK) == "SCHED_RR|SCHED_RESET_ON_FORK"
    assert policy_name(os.SCHED_OTHER) == "SCHED_OTHER"
    assert policy_name(None) is None
