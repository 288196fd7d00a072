"""Notification hooks as Pacemaker alerts: the <alerts> section, selection, each run's
environment, and the sans-IO queue that runs them one at a time in event order."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.agents.rc import OpResult
from hastack.crm.alert_runner import AlertRunner
from hastack.crm.alerts import (
    ALERT_VERSION,
    DEFAULT_KINDS,
    AlertConfig,
    AlertQueue,
    AlertsError,
    KillHook,
    RunHook,
    format_timestamp,
    hook_env,
    parse_alerts,
    plan_runs,
    wants,
)
from hastack.crm.cib.xml import read_cib
from hastack.crm.events import EVENTS, ClusterEvent
from hastack.membership.effects import Log

FULL = """
<alerts>
  <alert id="file" path="/usr/local/bin/alert_file.sh">
    <meta_attributes id="file-meta">
      <nvpair id="file-ts" name="timestamp-format" value="%Y %H:%M:%S.%03N"/>
      <nvpair id="file-to" name="timeout" value="15s"/>
    </meta_attributes>
    <instance_attributes id="file-ia">
      <nvpair id="file-dbg" name="debug_exec_order" value="true"/>
      <nvpair id="file-x" name="colour" value="blue"/>
    </instance_attributes>
    <select>
      <select_resources/>
      <select_attributes>
        <attribute id="a1" name="pingd"/>
        <attribute id="a2" name="standby"/>
      </select_attributes>
    </select>
    <recipient id="r1" value="/var/log/one.log"/>
    <recipient id="r2" value="/var/log/two.log">
      <meta_attributes id="r2-meta">
        <nvpair id="r2-to" name="timeout" value="2s"/>
      </meta_attributes>
      <instance_attributes id="r2-ia">
        <nvpair id="r2-x" name="colour" value="red"/>
      </instance_attributes>
    </recipient>
  </alert>
  <alert id="all" path="/bin/true"/>
</alerts>
"""


def ev(seq: int, event: str = "resource-started", **kw: Any) -> ClusterEvent:
    defaults: dict[str, Any] = {}
    kind = EVENTS[event]
    if kind == "resource":
        defaults = {
            "node": "n1",
            "resource": "vip",
            "task": "start",
            "rc": 0,
            "target_rc": 0,
            "status": 0,
            "previous": "Stopped",
        }
    elif kind in ("node", "fencing", "attribute"):
        defaults = {"node": "n2"}
    defaults.update(kw)
    return ClusterEvent.make(seq, 1_700_000_000.25 + seq, event, **defaults)


def config(xml: str = FULL) -> AlertConfig:
    result = parse_alerts(xml)
    assert result.problems == ()
    return result


# -- the configuration ----------------------------------------------------------------------


def test_an_alert_with_recipients_attributes_and_select_is_read_as_pacemaker_means_it() -> None:
    alerts = config().alerts
    assert [a.id for a in alerts] == ["file", "all"]
    file_alert = alerts[0]
    assert file_alert.path == "/usr/local/bin/alert_file.sh"
    assert file_alert.kinds == {"resource", "attribute"}
    assert file_alert.attributes == ("pingd", "standby")
    r1, r2 = file_alert.recipients
    assert (r1.id, r1.value, r1.timeout_ms, r1.timestamp_format) == (
        "r1",
        "/var/log/one.log",
        15_000,
        "%Y %H:%M:%S.%03N",
    )
    assert dict(r1.env) == {"debug_exec_order": "true", "colour": "blue"}
    # a recipient's own attributes win over the alert's
    assert r2.timeout_ms == 2_000 and r2.timestamp_format == "%Y %H:%M:%S.%03N"
    assert dict(r2.env) == {"debug_exec_order": "true", "colour": "red"}


def test_an_alert_without_select_or_recipients_takes_pacemakers_defaults() -> None:
    everything = config().alerts[1]
    assert everything.kinds == DEFAULT_KINDS
    assert "attribute" not in everything.kinds, "Pacemaker sends attribute alerts only if asked"
    (only,) = everything.recipients
    assert only.value is None and only.timeout_ms == 30_000
    assert only.timestamp_format == "%H:%M:%S.%06N"


def test_the_alerts_of_a_real_cib_model_are_read() -> None:
    cib = read_cib(
        "<cib admin_epoch='0' epoch='1' num_updates='0' validate-with='pacemaker-3.9'>"
        "<configuration><crm_config/><nodes/><resources/><constraints/>"
        f"{FULL}</configuration><status/></cib>"
    )
    assert [a.id for a in parse_alerts(cib).alerts] == ["file", "all"]
    assert parse_alerts(None) == AlertConfig()
    no_alerts = read_cib(
        "<cib admin_epoch='0' epoch='1' num_updates='0'><configuration><crm_config/>"
        "<nodes/><resources/><constraints/></configuration><status/></cib>"
    )
    assert parse_alerts(no_alerts) == AlertConfig()


def test_bad_alerts_are_skipped_with_a_problem_each_and_the_good_ones_kept() -> None:
    result = parse_alerts(
        """<alerts>
          <alert id="nopath"/>
          <alert id="relative" path="alert.sh"/>
          <alert id="slow" path="/bin/true">
            <meta_attributes id="m"><nvpair id="t" name="timeout" value="soon"/></meta_attributes>
          </alert>
          <alert id="slow" path="/bin/false"/>
          <alert id="norecipient" path="/bin/true"><recipient id="r"/></alert>
          <alert id="picky" path="/bin/true"><select><select_weather/></select></alert>
          <frob/>
        </alerts>"""
    )
    assert [a.id for a in result.alerts] == ["slow", "picky"]
    assert result.alerts[0].recipients[0].timeout_ms == 30_000  # a bad timeout: the default
    assert result.alerts[1].kinds == frozenset()
    text = "\n".join(result.problems)
    for expected in (
        "absolute path",
        "'alert.sh'",
        "soon",
        "second alert with id 'slow'",
        "needs a value",
        "select_weather",
        "<frob>",
    ):
        assert expected in text, expected
    assert "line" in result.problems[0], "problems say where"


def test_text_that_is_not_xml_is_a_clear_error() -> None:
    with pytest.raises(AlertsError, match="not well-formed XML"):
        parse_alerts("<alerts><alert")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_with_alerts_error(text: str) -> None:
    try:
        result = parse_alerts("<alerts>" + text + "</alerts>")
    except AlertsError:
        return
    for alert in result.alerts:
        assert alert.path.startswith("/") and alert.recipients


# -- selection ------------------------------------------------------------------------------


def test_events_go_to_the_alerts_that_select_their_kind() -> None:
    file_alert, everything = config().alerts
    assert wants(file_alert, ev(1)) and wants(everything, ev(1))
    assert not wants(file_alert, ev(2, "node-lost")) and wants(everything, ev(2, "node-lost"))
    pingd = ev(3, "attribute-changed", fields={"name": "pingd", "value": "100"})
    other = ev(4, "attribute-changed", fields={"name": "other", "value": "1"})
    assert wants(file_alert, pingd) and not wants(file_alert, other)
    assert not wants(everything, pingd), "attribute events only when selected"
    assert wants(everything, ev(5, "quorum-lost")) and not wants(file_alert, ev(5, "quorum-lost"))
    transition = ev(6, "transition-completed")
    assert plan_runs(config(), transition) == [], "transitions are history only"
    assert plan_runs(config(), ev(7, "dc-elected", node="n1")) == [], "so is a DC election"


def test_with_a_select_quorum_events_are_asked_for_by_a_meta_attribute() -> None:
    result = config(
        """<alerts><alert id="q" path="/bin/true">
        <meta_attributes id="m"><nvpair id="q1" name="hastack-select-quorum" value="true"/>
        </meta_attributes><select><select_nodes/></select></alert></alerts>"""
    )
    assert wants(result.alerts[0], ev(1, "quorum-regained"))
    assert wants(result.alerts[0], ev(2, "node-joined"))
    assert not wants(result.alerts[0], ev(3))


def test_disabled_alerts_and_recipients_do_not_run() -> None:
    result = config(
        """<alerts>
        <alert id="off" path="/bin/true"><meta_attributes id="m">
          <nvpair id="e" name="enabled" value="false"/></meta_attributes></alert>
        <alert id="half" path="/bin/true">
          <recipient id="on" value="a"/>
          <recipient id="mute" value="b"><meta_attributes id="m2">
            <nvpair id="e2" name="enabled" value="false"/></meta_attributes></recipient>
        </alert></alerts>"""
    )
    assert [(r.alert_id, r.recipient_id) for r in plan_runs(result, ev(1))] == [("half", "on")]


def test_each_recipient_is_a_run_in_document_order() -> None:
    runs = plan_runs(config(), ev(7))
    assert [(r.alert_id, r.recipient_id, r.timeout) for r in runs] == [
        ("file", "r1", 15.0),
        ("file", "r2", 2.0),
        ("all", None, 30.0),
    ]


# -- the environment ------------------------------------------------------------------------


def env_for(event: ClusterEvent, alert: int = 0, recipient: int = 0, **kw: Any) -> dict[str, str]:
    a = config().alerts[alert]
    return hook_env(a, a.recipients[recipient], event, node="n1", localtime=time.gmtime, **kw)


def test_a_resource_event_gets_pacemakers_variables_and_hastacks() -> None:
    event = ev(
        12,
        "resource-failed",
        task="monitor",
        interval_ms=10_000,
        rc=7,
        target_rc=0,
        previous="Started",
        fields={"exec_time_ms": 23},
    )
    env = env_for(
        event,
        base_env={
            "PATH": "/opt/bin",
            "HOME": "/root",
            "CRM_alert_rc": "99",
            "OCF_ROOT": "/x",
            "HASTACK_event": "fake",
        },
    )
    expected = {
        "kind": "resource",
        "version": ALERT_VERSION,
        "recipient": "/var/log/one.log",
        "node_sequence": "12",
        "timestamp": "2023 22:13:32.250",
        "timestamp_epoch": "1700000012",
        "timestamp_usec": "250000",
        "node": "n1",
        "rsc": "vip",
        "task": "monitor",
        "interval": "10000",
        "rc": "7",
        "target_rc": "0",
        "status": "0",
        "exec_time": "23",
        "desc": "not running",
        "select_kind": "resource,attribute",
        "select_attribute_name": "pingd,standby",
    }
    for name, value in expected.items():
        assert env["CRM_alert_" + name] == value, name
        assert env["CRM_notify_" + name] == value, name
    assert env["HASTACK_event"] == "resource-failed"
    assert env["HASTACK_previous_state"] == "Started"
    assert env["HASTACK_node"] == "n1" and env["HASTACK_dropped"] == "0"
    assert env["debug_exec_order"] == "true"  # instance attributes
    assert env["HOME"] == "/root" and "OCF_ROOT" not in env
    assert env["PATH"].startswith("/usr/sbin:/usr/bin") and env["PATH"].endswith(":/opt/bin")


def test_a_timed_out_action_is_described_by_its_execution_status() -> None:
    env = env_for(ev(1, "resource-failed", rc=1, status=2))
    assert env["CRM_alert_desc"] == "Timed Out" and env["CRM_alert_status"] == "2"


def test_node_fencing_quorum_and_attribute_events() -> None:
    lost = env_for(ev(1, "node-lost", previous="member", fields={"nodeid": 2}), alert=1)
    assert (lost["CRM_alert_kind"], lost["CRM_alert_node"], lost["CRM_alert_nodeid"]) == (
        "node",
        "n2",
        "2",
    )
    assert lost["CRM_alert_desc"] == "lost" and lost["HASTACK_previous_state"] == "member"
    assert "CRM_alert_recipient" not in lost, "an alert without recipients runs without one"
    assert env_for(ev(2, "node-joined"), alert=1)["CRM_alert_desc"] == "member"
    fenced = env_for(
        ev(
            3,
            "node-fenced",
            task="reboot",
            rc=0,
            fields={"executioner": "n1", "origin": "hastack@n1"},
        ),
        alert=1,
    )
    assert (fenced["CRM_alert_kind"], fenced["CRM_alert_task"], fenced["CRM_alert_rc"]) == (
        "fencing",
        "reboot",
        "0",
    )
    assert fenced["CRM_alert_desc"] == "Operation reboot of n2 by n1 for hastack@n1: OK"
    quorum = env_for(ev(4, "quorum-lost", previous="quorate"), alert=1)
    assert quorum["CRM_alert_kind"] == "quorum" and quorum["CRM_alert_desc"] == "lost"
    attr = env_for(ev(5, "attribute-changed", fields={"name": "pingd", "value": "200"}))
    assert (attr["CRM_alert_attribute_name"], attr["CRM_alert_attribute_value"]) == ("pingd", "200")


def test_an_instance_attribute_cannot_pose_as_an_event_field() -> None:
    result = config(
        """<alerts><alert id="a" path="/bin/true"><instance_attributes id="i">
        <nvpair id="n" name="CRM_alert_node" value="forged"/></instance_attributes>
        </alert></alerts>"""
    )
    a = result.alerts[0]
    env = hook_env(a, a.recipients[0], ev(1, "node-lost"), node="n1")
    assert env["CRM_alert_node"] == "n2"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%H:%M:%S.%06N", "22:13:20.123456"),
        ("%3N", "123"),
        ("%N", "123456000"),
        ("%%N %s", "%N 1700000000"),
        ("%Y-%m-%d", "2023-11-14"),
    ],
)
def test_timestamp_formats_as_pacemaker_with_fractions(fmt: str, expected: str) -> None:
    assert format_timestamp(fmt, 1_700_000_000.123456, time.gmtime) == expected


# -- the queue ------------------------------------------------------------------------------


def runs(effects: list[Any]) -> list[RunHook]:
    return [e for e in effects if isinstance(e, RunHook)]


def logs(effects: list[Any], event: str) -> list[Log]:
    return [e for e in effects if isinstance(e, Log) and e.event == event]


def test_hooks_run_one_at_a_time_in_event_order() -> None:
    q = AlertQueue(config(), node="n1", localtime=time.gmtime)
    first = runs(q.feed(ev(1), now=0.0))
    assert [(h.seq, h.alert_id, h.recipient_id) for h in first] == [(1, "file", "r1")]
    assert runs(q.feed(ev(2), now=0.1)) == [], "a hook is running: the next waits"
    assert q.waiting == 2 + 3
    order = [(1, "file", "r1")]
    hook = first[0]
    now = 0.2
    while hook is not None:
        out = runs(q.finished(hook.run_id, rc=0, status="done", now=now))
        hook = out[0] if out else None
        if hook:
            order.append((hook.seq, hook.alert_id, hook.recipient_id))
            assert hook.env["CRM_alert_node_sequence"] == str(hook.seq)
        now += 0.1
    assert order == [
        (1, "file", "r1"),
        (1, "file", "r2"),
        (1, "all", None),
        (2, "file", "r1"),
        (2, "file", "r2"),
        (2, "all", None),
    ]
    assert q.idle and q.completed == 6 and q.failed == 0


def test_a_hook_that_hangs_is_killed_at_its_timeout_and_the_next_runs() -> None:
    q = AlertQueue(config(), node="n1")
    (hook,) = runs(q.feed(ev(1), now=100.0))
    assert q.next_deadline() == 115.0
    assert q.tick(114.9) == []
    effects = q.tick(115.0)
    assert effects[0] == KillHook(hook.run_id, "timed out after 15s")
    assert logs(effects, "alert-timeout")
    (following,) = runs(effects)
    assert following.recipient_id == "r2" and q.next_deadline() == 117.0
    assert q.finished(hook.run_id, rc=0, status="done", now=115.5) == [], "too late: ignored"
    assert q.running == following and q.failed == 1


def test_a_hook_that_fails_is_logged_and_not_retried() -> None:
    q = AlertQueue(config(), node="n1")
    (hook,) = runs(q.feed(ev(1), now=0.0))
    effects = q.finished(hook.run_id, rc=1, status="done", now=1.0, output="boom\n")
    (failed,) = logs(effects, "alert-failed")
    assert failed.level == "warning" and "exit code 1" in failed.message
    assert failed.fields["output"] == "boom"
    (following,) = runs(effects)
    assert following.recipient_id == "r2", "the next run, not the failed one again"
    gone = q.finished(following.run_id, rc=1, status="error", reason="cannot run x", now=2)
    assert "cannot run x" in logs(gone, "alert-failed")[0].message


def test_when_hooks_fall_far_behind_the_oldest_waiting_events_are_dropped_and_counted() -> None:
    q = AlertQueue(config(), node="n1", max_pending=2)
    (hook,) = runs(q.feed(ev(1), now=0))
    effects: list[Any] = []
    for seq in range(2, 7):
        effects += q.feed(ev(seq), now=0)
    dropped = logs(effects, "alert-dropped")
    # event 1 is under way (its other runs stay); 2..4 waited longest and were dropped
    assert [d.fields["seq"] for d in dropped] == [2, 3, 4]
    assert q.dropped == 3
    seen = []
    while hook is not None:
        seen.append((hook.seq, hook.env["HASTACK_dropped"]))
        out = runs(q.finished(hook.run_id, rc=0, status="done", now=1))
        hook = out[0] if out else None
    assert seen == [
        (1, "0"),
        (1, "0"),
        (1, "0"),
        (5, "3"),
        (5, "3"),
        (5, "3"),
        (6, "0"),
        (6, "0"),
        (6, "0"),
    ]


def test_an_event_out_of_order_is_not_run() -> None:
    q = AlertQueue(config(), node="n1")
    q.feed(ev(5), now=0)
    effects = q.feed(ev(4), now=0)
    assert runs(effects) == [] and logs(effects, "alert-event-out-of-order")
    assert q.waiting == 2, "only event 5's remaining runs wait"


def test_a_new_configuration_applies_to_later_events() -> None:
    q = AlertQueue(config(), node="n1")
    assert len(runs(q.feed(ev(1), now=0))) == 1
    problems = q.configure(parse_alerts("<alerts><alert id='x' path='rel'/></alerts>"))
    assert logs(problems, "alert-config-problem")
    q.feed(ev(2), now=0)
    assert q.waiting == 2, "event 1 keeps its runs; event 2 has none under the new config"


def test_events_that_select_no_alert_cost_nothing() -> None:
    q = AlertQueue(AlertConfig(), node="n1")
    assert q.feed(ev(1), now=0) == [] and q.idle


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["feed", "ok", "fail", "tick"]), max_size=60))
def test_any_interleaving_runs_one_hook_at_a_time_in_seq_order(steps: list[str]) -> None:
    q = AlertQueue(config(), node="n1", max_pending=3)
    now, seq = 0.0, 0
    started: list[int] = []
    for step in steps:
        now += 1.0
        if step == "feed":
            seq += 1
            effects = q.feed(ev(seq), now)
        elif step in ("ok", "fail") and q.running is not None:
            effects = q.finished(
                q.running.run_id, rc=0 if step == "ok" else 1, status="done", now=now
            )
        else:
            effects = q.tick(now + 20)
            now += 20
        new = runs(effects)
        assert len(new) <= 1
        started += [h.seq for h in new]
        assert (q.running is None) == (q.next_deadline() is None)
    assert started == sorted(started)


# -- the asyncio shell ----------------------------------------------------------------------


def test_the_shell_logs_a_hook_that_cannot_run_and_runs_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "ok.sh"
    script.write_text(f'#!/bin/sh\necho "$HASTACK_event $CRM_alert_node_sequence" >> "{marker}"\n')
    script.chmod(0o755)
    result = config(
        f"""<alerts><alert id="missing" path="{tmp_path}/nope.sh"/>
        <alert id="ok" path="{script}"/></alerts>"""
    )
    runner = AlertRunner("n1", result, base_env={"PATH": "/usr/bin"})

    async def go() -> None:
        try:
            runner.feed(ev(1, "node-lost"))
            runner.feed(ev(2, "quorum-lost"))
            await asyncio.wait_for(runner.drain(), 20)
        finally:
            await runner.close()

    with caplog.at_level(logging.WARNING, logger="hastack.crm.alert_runner"):
        asyncio.run(go())
    assert marker.read_text().splitlines() == ["node-lost 1", "quorum-lost 2"]
    failures = [r.getMessage() for r in caplog.records if getattr(r, "event", "") == "alert-failed"]
    assert len(failures) == 2 and all("no such file" in m for m in failures)


def test_the_shell_survives_a_runner_that_raises() -> None:
    async def broken(*_args: Any) -> OpResult:
        raise RuntimeError("boom")

    runner = AlertRunner("n1", config(), base_env={}, runner=broken)

    async def go() -> None:
        runner.feed(ev(1))
        await asyncio.wait_for(runner.drain(), 5)
        await runner.close()

    asyncio.run(go())
    assert runner.queue.failed == 3 and runner.queue.idle
