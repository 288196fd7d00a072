"""The fencer core: device choice, topology, retries, delays, manual and watchdog devices,
merging, checks and the history."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from hastack.crm.cib.model import FencingLevel
from hastack.fencing.devices import FenceDevice, FencingConfig, Level, Topology
from hastack.fencing.fencer import (
    CancelDevice,
    CheckDone,
    FenceDone,
    Fencer,
    FenceRecord,
    RunDevice,
    WatchdogReport,
)
from hastack.fencing.runners import DeviceResult

NODES = ("n1", "n2", "n3")


def device(did: str, **kw: object) -> FenceDevice:
    base: dict[str, object] = {
        "id": did,
        "agent": "fence_dummy",
        "params": {"status_file": "/x"},
        "host_check": "static-list",
        "host_list": NODES,
        "timeouts": dict.fromkeys(("reboot", "off", "on", "list", "monitor", "status"), 30.0),
    }
    base.update(kw)
    return FenceDevice(**base)  # type: ignore[arg-type]


def fencer(*devices: FenceDevice, topology: Topology | None = None, **kw: object) -> Fencer:
    config = FencingConfig(tuple(devices), topology or Topology())
    return Fencer("n1", config, random.Random(1), **kw)  # type: ignore[arg-type]


def ok(**kw: object) -> DeviceResult:
    fields: dict[str, object] = {
        "ok": True,
        "power": None,
        "targets": None,
        "rc": 0,
        "reason": "",
        "output": "",
        "seconds": 0.1,
    }
    fields.update(kw)
    return DeviceResult(**fields)  # type: ignore[arg-type]


def failed(reason: str = "exit 1") -> DeviceResult:
    return ok(ok=False, rc=1, reason=reason)


def runs(effects: Sequence[object]) -> list[RunDevice]:
    return [e for e in effects if isinstance(e, RunDevice)]


def done(effects: Sequence[object]) -> list[FenceRecord]:
    return [e.record for e in effects if isinstance(e, FenceDone)]


def test_a_request_runs_the_device_with_its_port_and_action() -> None:
    f = fencer(device("pdu", host_map={"n2": "7"}, action_map={"reboot": "off"}))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 1000.0))
    assert run.call.device == "pdu"
    assert run.call.action == "off"  # pcmk_reboot_action
    assert run.call.target == "n2" and run.call.port == "7"
    assert run.call.params == {"status_file": "/x"}
    assert run.call.timeout == 30.0
    (record,) = done(f.result(run.key, ok(), 1.0, 1001.0))
    assert record.state == "done" and record.devices == ("pdu",)
    assert record.requesters == ("controller",) and record.completed == 1001.0
    assert list(f.history) == [record]
    assert f.operations == {}


def test_failed_action_is_retried_then_the_next_device_is_tried() -> None:
    f = fencer(device("a", priority=5, retries={"reboot": 1}), device("b"))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert run.call.device == "a"  # the higher priority first
    (retry,) = runs(f.result(run.key, failed(), 1.0, 1.0))
    assert retry.call.device == "a"
    (other,) = runs(f.result(retry.key, failed("exit 2"), 2.0, 2.0))
    assert other.call.device == "b"
    (record,) = done(f.result(other.key, ok(), 3.0, 3.0))
    assert record.state == "done" and record.devices == ("b",)


def test_every_level_failing_fails_the_operation_with_the_reasons() -> None:
    f = fencer(device("a", retries={"reboot": 0}))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    (record,) = done(f.result(run.key, failed("no route to PDU"), 1.0, 1.0))
    assert record.state == "failed"
    assert "no route to PDU" in record.error


def test_no_retry_once_the_timeout_is_spent() -> None:
    f = fencer(device("a", retries={"reboot": 5}))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    (record,) = done(f.result(run.key, failed("timed out"), 29.5, 29.5))
    assert record.state == "failed"


def test_topology_level_with_two_devices_turns_a_reboot_into_off_then_on() -> None:
    raw = FencingLevel(id="l1", index="1", devices="psu1,psu2", target="n2")
    topology = Topology(((raw, Level(1, ("psu1", "psu2"), "l1")),))
    f = fencer(device("psu1"), device("psu2"), topology=topology)
    seen: list[tuple[str, str]] = []
    effects = f.request("n2", "reboot", "controller", "lost", 0.0, 0.0)
    for step in range(4):
        (run,) = runs(effects)
        seen.append((run.call.device, run.call.action))
        result = failed("outlet stuck") if step == 3 else ok()
        effects = f.result(run.key, result, 1.0, 1.0)
    assert seen == [("psu1", "off"), ("psu2", "off"), ("psu1", "on"), ("psu2", "on")]
    (record,) = done(effects)  # a failed "on" does not undo the fencing
    assert record.state == "done" and set(record.devices) == {"psu1", "psu2"}


def test_a_failing_level_moves_to_the_next_level() -> None:
    levels = (
        (FencingLevel(id="l1", index="1", devices="ipmi", target="n2"), Level(1, ("ipmi",))),
        (FencingLevel(id="l2", index="2", devices="pdu", target="n2"), Level(2, ("pdu",))),
    )
    f = fencer(device("ipmi", retries={"reboot": 0}), device("pdu"), topology=Topology(levels))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert run.call.device == "ipmi"
    (run2,) = runs(f.result(run.key, failed("BMC unreachable"), 1.0, 1.0))
    assert run2.call.device == "pdu"
    (record,) = done(f.result(run2.key, ok(), 2.0, 2.0))
    assert record.devices == ("pdu",)


def test_a_device_never_runs_on_the_node_it_fences_unless_on_purpose() -> None:
    f = fencer(device("a"))
    (record,) = done(f.request("n1", "reboot", "controller", "x", 0.0, 0.0))
    assert record.state == "failed" and "no configured device can fence n1" in record.error
    (run,) = runs(f.request("n1", "reboot", "no-quorum-policy", "x", 1.0, 1.0, allow_self=True))
    assert run.call.target == "n1"


def test_no_device_at_all_fails_at_once_and_says_so() -> None:
    f = fencer()
    (record,) = done(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert record.error == "no fence device is configured"


def test_delays_are_waited_before_the_first_action() -> None:
    f = fencer(device("a", delay_base={"": 1.0}, delay_max=3.0))
    effects = f.request("n2", "reboot", "controller", "lost", 10.0, 10.0, delay=5.0)
    assert runs(effects) == []
    deadline = f.next_deadline()
    expected = 10.0 + 5.0 + 1.0 + random.Random(1).uniform(0.0, 2.0)
    assert deadline == pytest.approx(expected)
    assert f.tick(deadline - 0.01, 0.0) == []
    (run,) = runs(f.tick(deadline, 0.0))
    assert run.call.device == "a"


def test_a_second_request_joins_the_operation_in_progress() -> None:
    f = fencer(device("a"))
    (run,) = runs(f.request("n2", "reboot", "membership", "peer lost", 0.0, 0.0))
    assert runs(f.request("n2", "reboot", "controller", "unclean", 0.1, 0.1)) == []
    (record,) = done(f.result(run.key, ok(), 1.0, 1.0))
    assert record.requesters == ("membership", "controller")


def test_manual_device_waits_for_the_operator() -> None:
    f = fencer(device("meat", agent="hastack/manual"))
    effects = f.request("n2", "reboot", "controller", "lost", 0.0, 0.0)
    assert runs(effects) == [] and f.next_deadline() == 30.0
    (record,) = done(f.confirm("n2", "operator on n1", 5.0, 5.0))
    assert record.state == "done" and record.confirmed_by == "operator on n1"
    assert record.requesters == ("controller",)


def test_manual_device_unconfirmed_in_time_fails() -> None:
    f = fencer(device("meat", agent="hastack/manual"))
    f.request("n2", "reboot", "controller", "lost", 0.0, 0.0)
    (record,) = done(f.tick(30.0, 30.0))
    assert record.state == "failed" and "confirm" in record.error


def test_confirm_without_an_operation_is_recorded_and_cancels_nothing() -> None:
    f = fencer(device("a"))
    effects = f.confirm("n3", "operator on n1", 0.0, 7.0)
    assert not any(isinstance(e, CancelDevice) for e in effects)
    (record,) = done(effects)
    assert record.target == "n3" and record.state == "done" and record.started == 7.0


def test_confirm_cancels_a_device_action_in_flight() -> None:
    f = fencer(device("a"))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    effects = f.confirm("n2", "op", 1.0, 1.0)
    assert CancelDevice(run.key) in effects
    assert f.result(run.key, ok(), 2.0, 2.0) == []  # the late answer is ignored


def test_watchdog_device_counts_the_target_fenced_after_the_timeout() -> None:
    f = fencer(device("wd", agent="hastack/watchdog", host_check="none"), watchdog_timeout=10.0)
    f.watchdog_report("n2", WatchdogReport(True, 5.0, 10.0))
    assert runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0)) == []
    assert f.tick(9.9, 9.9) == []
    (record,) = done(f.tick(10.0, 10.0))
    assert record.state == "done" and record.devices == ("wd",)


def test_a_negative_watchdog_timeout_waits_twice_the_targets_device_timeout() -> None:
    f = fencer(device("wd", agent="hastack/watchdog", host_check="none"), watchdog_timeout=-1.0)
    f.watchdog_report("n2", WatchdogReport(True, 4.0, 8.0))
    assert f.watchdog_wait("n2") == (8.0, "")
    f.request("n2", "reboot", "controller", "lost", 0.0, 0.0)
    assert f.tick(7.9, 7.9) == []
    (record,) = done(f.tick(8.0, 8.0))
    assert record.state == "done"


def test_watchdog_device_without_a_timeout_fails() -> None:
    f = fencer(device("wd", agent="hastack/watchdog", host_check="none"))
    f.watchdog_report("n2", WatchdogReport(True, 5.0, 10.0))
    (record,) = done(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert "stonith-watchdog-timeout" in record.error


def test_dynamic_list_asks_the_device_first() -> None:
    f = fencer(device("a", host_check="dynamic-list", host_list=None), device("b"))
    (query,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert query.call.action == "list" and query.call.target is None
    (next_run,) = runs(f.result(query.key, ok(targets=("n3",)), 1.0, 1.0))
    assert next_run.call.device == "b"  # a does not list n2: not its node
    assert f.can_fence(f.config.devices[0], "n3") is True


def test_dynamic_list_naming_the_target_goes_on_to_the_power_action() -> None:
    f = fencer(device("a", host_check="dynamic-list", host_list=None))
    (query,) = runs(f.request("n2", "off", "controller", "lost", 0.0, 0.0))
    (power,) = runs(f.result(query.key, ok(targets=("n2", "n3")), 1.0, 1.0))
    assert power.call.action == "off" and power.call.target == "n2"


def test_checks_and_fence_paths() -> None:
    f = fencer(
        device("a", host_list=("n2",)),
        device("b", host_check="dynamic-list", host_list=None),
    )
    assert f.paths(["n2"])["n2"].ok is False  # not checked yet
    check_id, effects = f.check(0.0, 0.0)
    calls = {(r.call.device, r.call.action): r for r in runs(effects)}
    assert set(calls) == {("a", "monitor"), ("b", "monitor"), ("b", "list")}
    assert not any(r.call.action in ("off", "reboot", "on") for r in runs(effects))
    f.result(calls[("a", "monitor")].key, ok(), 1.0, 1.0)
    f.result(calls[("b", "monitor")].key, ok(), 1.0, 1.0)
    final = f.result(calls[("b", "list")].key, ok(targets=("n3",)), 1.0, 1.0)
    (report,) = [e for e in final if isinstance(e, CheckDone)]
    assert report.check_id == check_id and report.report["b"].targets == ("n3",)
    paths = f.paths(["n2", "n3", "n4"])
    assert paths["n2"].ok and paths["n2"].working == ("a",)
    assert paths["n3"].ok and paths["n3"].working == ("b",)
    assert not paths["n4"].ok


def test_a_failed_check_makes_the_path_not_working() -> None:
    f = fencer(device("a", host_list=("n2",)))
    _, effects = f.check(0.0, 0.0)
    (run,) = runs(effects)
    f.result(run.key, failed("connection refused"), 1.0, 1.0)
    path = f.paths(["n2"])["n2"]
    assert not path.ok and "connection refused" in path.why


def test_history_records_round_trip_and_are_learned_once() -> None:
    f = fencer(device("a"))
    (run,) = runs(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    (record,) = done(f.result(run.key, ok(), 1.0, 1.0))
    copy = FenceRecord.from_json(record.to_json())
    assert copy == record
    other = fencer()
    assert other.learn(copy) is True
    assert other.learn(copy) is False
    with pytest.raises(ValueError):
        FenceRecord.from_json({**record.to_json(), "state": "exploded"})


@pytest.mark.parametrize(
    ("report", "why"),
    [
        (None, "n2 has no armed watchdog (no report)"),
        (
            WatchdogReport(False, problem="no watchdog device on /dev/watchdog"),
            "no watchdog device on /dev/watchdog",
        ),
        # its guard promises a reset within 20 s of losing quorum; we would wait only 10
        (WatchdogReport(True, 5.0, 20.0), "guards a stonith-watchdog-timeout of 20 s"),
    ],
)
def test_watchdog_fencing_is_refused_for_a_node_that_would_not_reset_itself(
    report: WatchdogReport | None, why: str
) -> None:
    f = fencer(device("wd", agent="hastack/watchdog", host_check="none"), watchdog_timeout=10.0)
    f.watchdog_report("n3", WatchdogReport(True, 5.0, 10.0))
    if report is not None:
        f.watchdog_report("n2", report)
    (record,) = done(f.request("n2", "reboot", "controller", "lost", 0.0, 0.0))
    assert record.state == "failed" and why in record.error
    _, effects = f.check(0.0, 0.0, ["n2", "n3"])
    (check,) = [e for e in effects if isinstance(e, CheckDone)]
    assert check.report["wd"].ok and why in check.report["wd"].failed_targets["n2"]
    paths = f.paths(["n2", "n3"])
    assert not paths["n2"].ok and why in paths["n2"].why
    assert paths["n3"].ok and paths["n3"].working == ("wd",)


def test_watchdog_reports_round_trip_and_a_change_is_logged() -> None:
    report = WatchdogReport(True, 5.0, 10.0)
    assert WatchdogReport.from_json(report.to_json()) == report
    with pytest.raises(ValueError):
        WatchdogReport.from_json({**report.to_json(), "timeout": "soon"})
    f = fencer()
    assert f.watchdog_report("n2", report) == []
    (log,) = f.watchdog_report("n2", WatchdogReport(False, problem="device gone"))
    assert "n2's watchdog is no longer armed (device gone)" in log.message


def test_checks_ask_the_status_of_every_covered_node_and_a_failure_is_that_nodes() -> None:
    f = fencer(device("pdu", host_list=("n2", "n3")))
    _, effects = f.check(0.0, 0.0, ["n2", "n3", "n4"])
    calls = {(r.call.action, r.call.target): r for r in runs(effects)}
    assert set(calls) == {("monitor", None), ("status", "n2"), ("status", "n3")}
    f.result(calls[("monitor", None)].key, ok(), 1.0, 1.0)
    f.result(calls[("status", "n2")].key, ok(power="on"), 1.0, 1.0)
    final = f.result(calls[("status", "n3")].key, failed("outlet 3: no answer"), 1.0, 1.0)
    assert any(isinstance(e, CheckDone) for e in final)
    paths = f.paths(["n2", "n3"])
    assert paths["n2"].ok
    assert not paths["n3"].ok and "outlet 3: no answer" in paths["n3"].why


@pytest.mark.parametrize(("configured", "given"), [("port", ""), (None, None), ("uuid", "uuid")])
def test_pcmk_host_argument_reaches_the_runner(configured: str | None, given: str | None) -> None:
    f = fencer(device("a", host_argument=configured))
    (run,) = runs(f.request("n2", "off", "controller", "lost", 0.0, 0.0))
    assert run.call.host_argument == given and run.call.port == "n2"


def test_an_agent_that_cannot_list_is_asked_by_status_instead() -> None:
    f = fencer(device("dummy", host_check="dynamic-list", host_list=None))
    (query,) = runs(f.request("n2", "off", "controller", "lost", 0.0, 0.0))
    assert query.call.action == "list"
    (status,) = runs(f.result(query.key, failed("Unrecognised action 'list'"), 1.0, 1.0))
    assert (status.call.action, status.call.target) == ("status", "n2")
    (power,) = runs(f.result(status.key, ok(power="on"), 1.1, 1.1))
    assert power.call.action == "off"
    (record,) = done(f.result(power.key, ok(), 1.5, 1.5))
    assert record.state == "done"
    # the checks ask it by status from now on, and its failed list is no failure
    _, effects = f.check(2.0, 2.0, ["n2"])
    assert {(r.call.action, r.call.target) for r in runs(effects)} == {
        ("monitor", None),
        ("status", "n2"),
    }
