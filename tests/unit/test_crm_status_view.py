"""The status view (`hastack status`): what it shows of small hand-written CIBs, its crm_mon-like
text, its JSON shape, and the CLI that prints it (-f FILE, --json, --watch without a terminal)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hastack
from hastack.cli import status_cmd
from hastack.cli.main import main
from hastack.crm.cib.xml import read_cib
from hastack.crm.status_view import (
    StatusView,
    build_view,
    format_duration,
    format_interval,
    format_time,
    render_text,
    renderable,
)

SRC = str(Path(hastack.__file__).resolve().parent.parent)
T0 = 1_700_000_000  # when the histories below happened
NOW = T0 + 60.0

ONLINE = 'in_ccm="true" crmd="online" join="member" expected="member"'
OFFLINE = 'in_ccm="false" crmd="offline" join="down" expected="down"'
LOST = 'in_ccm="false" crmd="offline" join="member" expected="member"'  # unexpectedly gone
JOINING = 'in_ccm="true" crmd="online" join="pending" expected="member"'


def op(
    rsc: str,
    task: str,
    node: str,
    *,
    interval: int = 0,
    rc: int = 0,
    call: int = 1,
    status: int = 0,
    expected: int | None = None,
    reason: str = "",
    changed: int = T0,
    exec_ms: int = 10,
    queue_ms: int = 0,
    suffix: str | None = None,
) -> str:
    """One <lrm_rsc_op>; ``suffix`` names it (``last_failure_0``), else ``task_interval``."""
    if expected is None:
        expected = 7 if task == "monitor" and interval == 0 else 0
    key = f"{rsc}_{task}_{interval}"
    oid = f"{rsc}_{suffix}" if suffix else key
    tkey = f"1:2:{expected}:0123abcd-0000-0000-0000-000000000000"
    return (
        f'<lrm_rsc_op id="{oid}" operation_key="{key}" operation="{task}" '
        f'interval="{interval}" call-id="{call}" rc-code="{rc}" op-status="{status}" '
        f'transition-key="{tkey}" transition-magic="{status}:{rc};{tkey}" '
        f'exit-reason="{reason}" on_node="{node}" last-rc-change="{changed}" '
        f'last-run="{changed}" exec-time="{exec_ms}" queue-time="{queue_ms}"/>'
    )


def lrm(rsc: str, agent: str, *ops: str) -> str:
    cls, _, rest = agent.partition(":")
    provider, _, kind = rest.rpartition(":")
    prov = f' provider="{provider}"' if provider else ""
    return (
        f'<lrm_resource id="{rsc}" class="{cls}"{prov} type="{kind}">'
        + "".join(ops)
        + "</lrm_resource>"
    )


def node_state(
    node: str, how: str, resources: str = "", attrs: dict[str, str] | None = None
) -> str:
    transient = ""
    if attrs:
        pairs = "".join(
            f'<nvpair id="{node}-t-{k}" name="{k}" value="{v}"/>' for k, v in attrs.items()
        )
        transient = (
            f'<transient_attributes id="{node}"><instance_attributes id="status-{node}">'
            f"{pairs}</instance_attributes></transient_attributes>"
        )
    return (
        f'<node_state id="{node}" uname="{node}" {how}>{transient}'
        f'<lrm id="{node}"><lrm_resources>{resources}</lrm_resources></lrm></node_state>'
    )


def cib(
    nodes: str,
    resources: str,
    status: str,
    *,
    constraints: str = "",
    options: dict[str, str] | None = None,
    rsc_defaults: str = "",
) -> str:
    opts = dict(options or {})
    pairs = "".join(f'<nvpair id="o-{k}" name="{k}" value="{v}"/>' for k, v in opts.items())
    return (
        '<cib admin_epoch="0" epoch="7" num_updates="3" validate-with="pacemaker-3.9" '
        'have-quorum="1" dc-uuid="n1" cib-last-written="Tue Nov 14 22:13:20 2023" '
        'update-origin="n1" update-client="cibadmin" update-user="root">'
        "<configuration><crm_config>"
        f'<cluster_property_set id="cib-bootstrap-options">{pairs}</cluster_property_set>'
        f"</crm_config><nodes>{nodes}</nodes><resources>{resources}</resources>"
        f"<constraints>{constraints}</constraints>{rsc_defaults}</configuration>"
        f"<status>{status}</status></cib>"
    )


def node(name: str, attrs: dict[str, str] | None = None) -> str:
    inner = ""
    if attrs:
        pairs = "".join(
            f'<nvpair id="{name}-{k}" name="{k}" value="{v}"/>' for k, v in attrs.items()
        )
        inner = f'<instance_attributes id="{name}-attrs">{pairs}</instance_attributes>'
    return f'<node id="{name}" uname="{name}">{inner}</node>'


def prim(rid: str, agent: str = "ocf:heartbeat:Dummy", meta: dict[str, str] | None = None) -> str:
    cls, provider, kind = agent.split(":")
    inner = ""
    if meta:
        pairs = "".join(
            f'<nvpair id="{rid}-m-{k}" name="{k}" value="{v}"/>' for k, v in meta.items()
        )
        inner = f'<meta_attributes id="{rid}-meta">{pairs}</meta_attributes>'
    ops = f'<operations><op id="{rid}-mon" name="monitor" interval="10s"/></operations>'
    return (
        f'<primitive id="{rid}" class="{cls}" provider="{provider}" type="{kind}">'
        f"{inner}{ops}</primitive>"
    )


DUMMY = "ocf:heartbeat:Dummy"
STATEFUL = "ocf:pacemaker:Stateful"


def started(rsc: str, node_name: str, *extra: str, agent: str = DUMMY, call: int = 1) -> str:
    return lrm(
        rsc,
        agent,
        op(rsc, "start", node_name, call=call),
        op(rsc, "monitor", node_name, interval=10000, call=call + 1),
        *extra,
    )


def full_cib() -> str:
    """Every node state, a group, clones, failures, fail counts, pins and flags."""
    nodes = (
        node("n1")
        + node("n2", {"standby": "on"})
        + node("n3")
        + node("n4")
        + node("n5")
        + node("n6")
    )
    resources = (
        prim("ip", "ocf:heartbeat:IPaddr2")
        + '<group id="web">'
        + prim("web-ip", "ocf:heartbeat:IPaddr2")
        + prim("web-srv", DUMMY, {"migration-threshold": "5", "failure-timeout": "10min"})
        + "</group>"
        + '<clone id="ping-clone">'
        + prim("ping", "ocf:pacemaker:ping")
        + "</clone>"
        + '<clone id="db-clone"><meta_attributes id="db-clone-meta">'
        '<nvpair id="db-p" name="promotable" value="true"/>'
        '<nvpair id="db-max" name="clone-max" value="2"/></meta_attributes>'
        + prim("db", STATEFUL)
        + "</clone>"
        + prim("old", DUMMY, {"target-role": "Stopped"})
        + prim("legacy", DUMMY, {"is-managed": "false"})
    )
    end_future = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(NOW + 3600))
    end_past = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(NOW - 3600))
    constraints = (
        '<rsc_location id="cli-prefer-ip" rsc="ip" role="Started">'
        '<rule id="cli-prefer-rule-ip" score="INFINITY" boolean-op="and">'
        '<expression id="cli-prefer-expr-ip" attribute="#uname" operation="eq" value="n1" '
        'type="string"/>'
        f'<date_expression id="cli-prefer-lifetime-end-ip" operation="lt" end="{end_future}"/>'
        "</rule></rsc_location>"
        '<rsc_location id="cli-ban-web-on-n3" rsc="web" node="n3" score="-INFINITY" '
        'role="Started"/>'
        '<rsc_location id="cli-prefer-old" rsc="old" role="Started">'
        '<rule id="cli-prefer-rule-old" score="INFINITY" boolean-op="and">'
        '<expression id="cli-prefer-expr-old" attribute="#uname" operation="eq" value="n3"/>'
        f'<date_expression id="cli-prefer-lifetime-end-old" operation="lt" end="{end_past}"/>'
        "</rule></rsc_location>"
    )
    failed_monitor = op(
        "web-srv",
        "monitor",
        "n1",
        interval=10000,
        rc=7,
        call=9,
        reason="port 80 closed",
        exec_ms=35,
        queue_ms=2,
        changed=T0 + 5,
        suffix="last_failure_0",
    )
    n1 = (
        started("ip", "n1", agent="ocf:heartbeat:IPaddr2")
        + started("web-ip", "n1", agent="ocf:heartbeat:IPaddr2")
        + started("web-srv", "n1", failed_monitor)
        + started("ping", "n1", agent="ocf:pacemaker:ping")
        + lrm(
            "db",
            STATEFUL,
            op("db", "start", "n1", call=1),
            op("db", "promote", "n1", call=2),
            op("db", "monitor", "n1", interval=10000, rc=8, expected=8, call=3),
        )
        + started("legacy", "n1")
        + started("ghost", "n1")  # configured nowhere: an orphan
    )
    n2 = started("ping", "n2", agent="ocf:pacemaker:ping") + started("db", "n2", agent=STATEFUL)
    n3 = started("ping", "n3", agent="ocf:pacemaker:ping")
    status = (
        node_state(
            "n1",
            ONLINE,
            n1,
            {
                "fail-count-web-srv#monitor_10000": "3",
                "last-failure-web-srv#monitor_10000": str(T0 + 5),
                "pingd": "100",
            },
        )
        + node_state("n2", ONLINE, n2)
        + node_state("n3", ONLINE, n3, {"maintenance": "true"})
        + node_state("n4", OFFLINE)
        + node_state("n5", LOST)
        + node_state("n6", JOINING)
    )
    return cib(nodes, resources, status, constraints=constraints)


@pytest.fixture(scope="module")
def view() -> StatusView:
    return build_view(read_cib(full_cib()), None, NOW)


# ---------------------------------------------------------------------------------------------
# The view's content


def test_every_node_state(view: StatusView) -> None:
    states = {n.name: n.state for n in view.nodes}
    assert states == {
        "n1": "online",
        "n2": "standby",
        "n3": "maintenance",
        "n4": "offline",
        "n5": "unclean",
        "n6": "pending",
    }
    n2 = view.node("n2")
    assert n2 is not None and n2.standby_with_resources and n2.resources_running == 2
    n1 = view.node("n1")
    assert n1 is not None and n1.is_dc and n1.attributes == {"pingd": "100"}


def test_summary_counts_and_dc(view: StatusView) -> None:
    s = view.summary
    assert (s.stack, s.dc, s.quorate) == ("hastack", "n1", True)
    assert s.nodes_configured == 6
    # ip, web-ip, web-srv, 6 ping instances (clone-max = nodes), 2 db, old, legacy, ghost
    assert s.resources_configured == 14
    assert s.resources_disabled == 1
    assert s.last_change == {
        "time": "Tue Nov 14 22:13:20 2023",
        "user": "root",
        "client": "cibadmin",
        "origin": "n1",
    }
    assert s.epoch == "0.7.3"


def test_primitives_groups_and_flags(view: StatusView) -> None:
    by_id = {i.id: i for i in view.instances()}
    assert (by_id["ip"].role, by_id["ip"].nodes) == ("Started", ("n1",))
    web = view.resource("web")
    assert web is not None and web.kind == "group"
    assert [m.id for m in web.members] == ["web-ip", "web-srv"]
    assert by_id["web-srv"].failed and by_id["web-srv"].nodes == ("n1",)
    assert not by_id["web-ip"].failed
    assert by_id["old"].disabled and not by_id["old"].nodes and by_id["old"].role == "Stopped"
    assert not by_id["legacy"].managed and by_id["legacy"].nodes == ("n1",)
    assert [o.id for o in view.orphans] == ["ghost"]
    assert view.orphans[0].orphaned and view.orphans[0].nodes == ("n1",)


def test_clone_and_promotable_instances(view: StatusView) -> None:
    ping = view.resource("ping-clone")
    assert ping is not None and ping.kind == "clone" and not ping.promotable
    active = sorted(n for i in ping.instances for n in i.nodes)
    assert active == ["n1", "n2", "n3"]
    assert len(ping.instances) == 6  # clone-max defaults to the number of nodes
    on_n3 = next(i for i in ping.instances if i.nodes == ("n3",))
    assert not on_n3.managed  # n3 is in maintenance: what runs there is left alone
    assert all(i.id.startswith("ping:") for i in ping.instances)
    # fewer instances run than clone-max: crm_mon lists every node without one, whatever its state
    assert ping.stopped == ("n4", "n5", "n6")
    db = view.resource("db-clone")
    assert db is not None and db.promotable
    roles = {i.nodes[0]: i.role for i in db.instances if i.nodes}
    assert roles == {"n1": "Promoted", "n2": "Unpromoted"}
    assert db.stopped == ()  # clone-max=2 and both run


def test_failed_action_with_exit_reason_and_times(view: StatusView) -> None:
    [fa] = view.failed_actions
    assert (fa.resource, fa.node, fa.operation, fa.interval_ms) == (
        "web-srv",
        "n1",
        "monitor",
        10000,
    )
    assert (fa.rc, fa.rc_text, fa.status_text) == (7, "not running", "complete")
    assert fa.exit_reason == "port 80 closed"
    assert (fa.exec_time_ms, fa.queue_time_ms, fa.call_id) == (35, 2, 9)
    assert fa.last_rc_change == T0 + 5
    assert fa.op_key == "web-srv_monitor_10000"


def test_fail_counts_with_threshold_and_expiry(view: StatusView) -> None:
    [fc] = view.fail_counts
    assert (fc.node, fc.resource, fc.fail_count, fc.migration_threshold) == ("n1", "web-srv", 3, 5)
    assert fc.failure_timeout_s == 600
    assert fc.expires == T0 + 5 + 600


def test_in_force_lists_pins_flags_and_resources(view: StatusView) -> None:
    forced = {(i.kind, i.target): i for i in view.in_force}
    prefer = forced[("prefer", "ip")]
    assert prefer.node == "n1" and prefer.constraint == "cli-prefer-ip"
    assert prefer.expires == pytest.approx(NOW + 3600, abs=1) and not prefer.expired
    ban = forced[("ban", "web")]
    assert ban.node == "n3" and ban.expires is None and not ban.expired
    old = forced[("prefer", "old")]
    assert old.expired and old.expires == pytest.approx(NOW - 3600, abs=1)
    assert ("standby", "n2") in forced and "permanent" in forced[("standby", "n2")].detail
    assert ("maintenance-node", "n3") in forced
    assert "transient" in forced[("maintenance-node", "n3")].detail
    assert ("unmanaged", "legacy") in forced
    assert ("disabled", "old") in forced
    assert not any(i.kind == "maintenance-mode" for i in view.in_force)


def test_failure_expired_by_failure_timeout_is_not_listed() -> None:
    later = build_view(read_cib(full_cib()), None, T0 + 5 + 601)
    assert later.failed_actions == ()
    web_srv = next(i for i in later.instances() if i.id == "web-srv")
    assert not web_srv.failed


def test_maintenance_mode_unmanages_everything() -> None:
    text = cib(
        node("n1"),
        prim("a"),
        node_state("n1", ONLINE, started("a", "n1")),
        options={"maintenance-mode": "true"},
    )
    v = build_view(read_cib(text), None, NOW)
    assert [i.managed for i in v.instances()] == [False]
    assert v.summary.maintenance_mode
    assert [(i.kind, i.target) for i in v.in_force] == [
        ("maintenance-mode", "cluster"),
        ("unmanaged", "a"),  # everything is, and is listed so
    ]
    rendered = render_text(v)
    assert "Resource management is DISABLED" in rendered
    assert "a\t(ocf:heartbeat:Dummy):\t Started n1 (unmanaged)" in rendered


def test_rsc_defaults_unmanaged_is_in_force_and_applies_to_all() -> None:
    defaults = (
        '<rsc_defaults><meta_attributes id="rd">'
        '<nvpair id="rd-m" name="is-managed" value="false"/></meta_attributes></rsc_defaults>'
    )
    text = cib(
        node("n1"),
        prim("a") + prim("b"),
        node_state("n1", ONLINE, started("a", "n1")),
        rsc_defaults=defaults,
    )
    v = build_view(read_cib(text), None, NOW)
    assert all(not i.managed for i in v.instances())
    forced = {(i.kind, i.target): i.detail for i in v.in_force}
    assert forced[("unmanaged", "rsc_defaults")] == "rsc_defaults is-managed=false"
    assert forced[("unmanaged", "a")] == "a unmanaged (rsc_defaults is-managed=false)"
    assert ("unmanaged", "b") in forced  # stopped, and still not the cluster's to start


def test_blocked_failure_counts_as_blocked() -> None:
    text = cib(
        node("n1"),
        '<primitive id="a" class="ocf" provider="heartbeat" type="Dummy"><operations>'
        '<op id="a-mon" name="monitor" interval="10s" on-fail="block"/></operations></primitive>',
        node_state(
            "n1",
            ONLINE,
            started("a", "n1", op("a", "monitor", "n1", interval=10000, rc=1, call=5)),
        ),
    )
    v = build_view(read_cib(text), None, NOW)
    [a] = v.instances()
    assert a.blocked and a.failed
    assert v.summary.resources_blocked == 1
    assert "(1 BLOCKED)" in render_text(v)


def test_failed_action_that_could_not_run() -> None:
    text = cib(
        node("n1"),
        prim("a"),
        node_state(
            "n1",
            ONLINE,
            lrm("a", DUMMY, op("a", "start", "n1", rc=1, status=2, exec_ms=95134, call=3)),
        ),
    )
    v = build_view(read_cib(text), None, NOW)
    [fa] = v.failed_actions
    assert fa.status_text == "Timed Out"
    line = next(ln for ln in render_text(v).splitlines() if ln.startswith("  * a start"))
    assert line == (
        f"  * a start on n1 could not be executed (Timed Out) at {format_time(T0)} after 1m35.134s"
    )


def test_membership_merges_into_the_nodes() -> None:
    membership = {
        "node": "n1",
        "dc": "n1",
        "term": 4,
        "quorate": False,
        "members": ["n1"],
        "nodes": {
            "n1": {"name": "n1", "node_id": 1, "state": "online", "links": {"eth0": "up"}},
            "n9": {"name": "n9", "node_id": 9, "state": "offline", "links": {"eth0": "down"}},
        },
    }
    v = build_view(read_cib(full_cib()), membership, NOW)
    n1 = v.node("n1")
    assert n1 is not None and n1.membership is not None
    assert n1.membership["links"] == {"eth0": "up"}
    n9 = v.node("n9")  # known to membership only
    assert n9 is not None and n9.state == "offline"
    assert v.summary.quorate is False  # the live membership, not the CIB's have-quorum
    assert v.membership is not None and v.membership["term"] == 4


def test_membership_alone_when_there_is_no_cib() -> None:
    membership = {
        "node": "a",
        "dc": "b",
        "term": 2,
        "quorate": True,
        "members": ["a", "b"],
        "nodes": {
            "a": {"node_id": 1, "state": "online"},
            "b": {"node_id": 2, "state": "online"},
            "c": {"node_id": 3, "state": "offline"},
        },
    }
    v = build_view(None, membership, NOW)
    assert not v.has_cib and v.resources == ()
    text = render_text(v)
    assert "Current DC: b - partition with quorum" in text
    assert "Online: [ a b ]" in text and "OFFLINE: [ c ]" in text
    assert "Full List of Resources" not in text


# ---------------------------------------------------------------------------------------------
# Text


def test_text_rendering_key_lines(view: StatusView) -> None:
    text = render_text(view, attributes=True, failcounts=True)
    lines = text.splitlines()
    for expected in [
        "Cluster Summary:",
        "  * Stack: hastack",
        "  * Current DC: n1 - partition with quorum",
        "  * Last change:  Tue Nov 14 22:13:20 2023 by root via cibadmin on n1",
        "  * 6 nodes configured",
        "  * 14 resource instances configured (1 DISABLED)",
        "  * Node n2: standby (with active resources)",
        "  * Node n3: maintenance",
        "  * Node n5: UNCLEAN (offline)",
        "  * Node n6: pending",
        "  * Online: [ n1 ]",
        "  * OFFLINE: [ n4 ]",
        "  * ip\t(ocf:heartbeat:IPaddr2):\t Started n1",
        "  * Resource Group: web:",
        "    * web-srv\t(ocf:heartbeat:Dummy):\t FAILED n1",
        "  * Clone Set: ping-clone [ping]:",
        "    * ping\t(ocf:pacemaker:ping):\t Started n3 (unmanaged)",  # n3 is in maintenance
        "    * Started: [ n1 n2 ]",
        "  * Clone Set: db-clone [db] (promotable):",
        "    * Promoted: [ n1 ]",
        "    * Unpromoted: [ n2 ]",
        "  * old\t(ocf:heartbeat:Dummy):\t Stopped (disabled)",
        "  * legacy\t(ocf:heartbeat:Dummy):\t Started n1 (unmanaged)",
        "  * ghost\t(ocf:heartbeat:Dummy):\t ORPHANED Started n1 (unmanaged)",
        "  * Node: n1:",
        "    * web-srv: migration-threshold=5 fail-count=3 "
        f"last-failure='{format_time(T0 + 5)}' expires='{format_time(T0 + 605)}'",
        "  * web-srv 10s-interval monitor on n1 returned 'not running' (port 80 closed) at "
        f"{format_time(T0 + 5)} after 35ms (queued 2ms)",
        "In Force (operator pins, bans and flags):",
        "  * ban: web banned from n3 (score -INFINITY) [cli-ban-web-on-n3] (no expiry)",
    ]:
        assert expected in lines, f"missing {expected!r} in:\n{text}"
    assert any(ln.startswith("  * prefer: ip moved to n1") and "(until " in ln for ln in lines)
    assert any("[cli-prefer-old] (expired" in ln for ln in lines)
    assert any(ln.startswith("    * pingd") and ln.endswith(": 100") for ln in lines)
    # headings come in crm_mon's order, hastack's own section last
    order = [
        "Cluster Summary:",
        "Node List:",
        "Full List of Resources:",
        "Node Attributes:",
        "Migration Summary:",
        "Failed Resource Actions:",
        "In Force (operator pins, bans and flags):",
    ]
    assert [lines.index(h) for h in order] == sorted(lines.index(h) for h in order)


def test_attributes_and_failcounts_only_when_asked(view: StatusView) -> None:
    text = render_text(view)
    assert "Node Attributes:" not in text and "Migration Summary:" not in text
    assert "Failed Resource Actions:" in text  # always shown, as crm_mon does


def test_rich_renderable_has_the_same_text(view: StatusView) -> None:
    rich_text = renderable(view, extra="\n\nMembership")
    assert rich_text.plain == render_text(view) + "\n\nMembership"
    assert any(span.style == "bold red" for span in rich_text.spans)  # FAILED is coloured


@pytest.mark.parametrize(
    ("ms", "interval", "duration"),
    [
        (500, "500ms", "500ms"),
        (1000, "1000ms", "1s"),
        (10_000, "10s", "10s"),
        (60_000, "60s", "1m"),
        (95_134, "95134ms", "1m35.134s"),
        (15_001, "15001ms", "15.001s"),
    ],
)
def test_interval_and_duration_words(ms: int, interval: str, duration: str) -> None:
    assert format_interval(ms) == interval
    assert format_duration(ms) == duration


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_shape(view: StatusView) -> None:
    doc = json.loads(json.dumps(view.to_json()))
    assert doc["schema"] == 1
    assert set(doc) == {
        "schema",
        "summary",
        "nodes",
        "resources",
        "orphans",
        "failed_actions",
        "fail_counts",
        "in_force",
        "membership",
    }
    assert set(doc["summary"]) >= {
        "stack",
        "dc",
        "quorate",
        "last_updated",
        "last_change",
        "nodes_configured",
        "resources_configured",
        "resources_disabled",
        "resources_blocked",
    }
    node_keys = {
        "name",
        "id",
        "state",
        "label",
        "online",
        "standby",
        "standby_with_resources",
        "maintenance",
        "pending",
        "unclean",
        "shutdown",
        "is_dc",
        "resources_running",
        "attributes",
        "membership",
    }
    assert all(set(n) == node_keys for n in doc["nodes"])
    resource_keys = {
        "kind",
        "id",
        "agent",
        "managed",
        "disabled",
        "promotable",
        "unique",
        "instances",
        "members",
        "stopped",
    }
    instance_keys = {
        "id",
        "primitive",
        "agent",
        "role",
        "nodes",
        "failed",
        "managed",
        "disabled",
        "blocked",
        "orphaned",
        "failure_ignored",
        "pending",
    }

    def check(r: dict[str, object]) -> None:
        assert set(r) == resource_keys
        for i in r["instances"]:  # type: ignore[attr-defined]
            assert set(i) == instance_keys
        for m in r["members"]:  # type: ignore[attr-defined]
            check(m)

    for r in doc["resources"]:
        check(r)
    web = next(r for r in doc["resources"] if r["id"] == "web")
    assert web["kind"] == "group" and [m["id"] for m in web["members"]] == ["web-ip", "web-srv"]
    assert doc["failed_actions"][0]["exit_reason"] == "port 80 closed"
    assert doc["fail_counts"][0]["expires"] == T0 + 605
    kinds = {(i["kind"], i["target"]) for i in doc["in_force"]}
    assert ("prefer", "ip") in kinds and ("ban", "web") in kinds


# ---------------------------------------------------------------------------------------------
# Any CIB the reader accepts gives a view (no traceback)

_STATES = [ONLINE, OFFLINE, LOST, JOINING]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_STATES),
            st.sampled_from(["start", "stop", "monitor", "promote", "demote", "migrate_to"]),
            st.integers(min_value=0, max_value=9),
            st.integers(min_value=-1, max_value=8),
            st.sampled_from([0, 10000]),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_histories_always_render(
    entries: list[tuple[str, str, int, int, int, bool]],
) -> None:
    nodes = "".join(node(f"n{i}") for i in range(len(entries)))
    status = ""
    for i, (how, task, rc, op_status, interval, in_clone) in enumerate(entries):
        rsc = "c" if in_clone else "p"
        status += node_state(
            f"n{i}",
            how,
            lrm(rsc, DUMMY, op(rsc, task, f"n{i}", rc=rc, status=op_status, interval=interval)),
        )
    text = cib(nodes, prim("p") + '<clone id="cc">' + prim("c") + "</clone>", status)
    v = build_view(read_cib(text), None, NOW)
    assert render_text(v, attributes=True, failcounts=True).startswith("Cluster Summary:")
    json.dumps(v.to_json())


# ---------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def cib_file(tmp_path: Path) -> Path:
    path = tmp_path / "cib.xml"
    path.write_text(full_cib())
    return path


def test_cli_text_from_a_cib_file(cib_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "-f", str(cib_file), "--failcounts", "-A"]) == 0
    out = capsys.readouterr().out
    assert "  * Clone Set: db-clone [db] (promotable):" in out
    assert "Migration Summary:" in out and "Node Attributes:" in out
    assert "Membership" not in out  # a file has no membership view


def test_cli_json_from_a_cib_file_keeps_the_membership_keys(
    cib_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "-f", str(cib_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"node", "dc", "term", "quorate", "members", "nodes", "cluster"} <= set(doc)
    assert doc["dc"] == "n1" and doc["quorate"] is True and doc["node"] is None
    assert doc["members"] == ["n1", "n2", "n3", "n6"]
    assert doc["nodes"]["n5"]["state"] == "unclean"
    assert doc["cluster"]["schema"] == 1 and "membership" not in doc["cluster"]


def test_cli_honours_cib_file_in_the_environment(
    cib_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIB_file", str(cib_file))
    assert main(["status"]) == 0
    assert "Clone Set: ping-clone [ping]:" in capsys.readouterr().out


def test_cli_bad_inputs_say_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIB_file", raising=False)
    assert main(["status", "-f", str(tmp_path / "missing.xml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.xml"
    bad.write_text("<cib><configuration>")
    assert main(["status", "-f", str(bad)]) == 1
    assert "malformed XML" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["status"])
    assert exit_info.value.code == 2
    assert "-f/--cib-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["status", "-f", "x", "--watch", "soon"])
    assert "positive number of seconds" in capsys.readouterr().err


@contextlib.contextmanager
def control_server(path: Path, handlers: dict[str, Any]) -> Iterator[None]:
    """A real control socket (the daemon's ControlServer) answering with ``handlers``, served
    from its own event loop in a thread."""
    from hastack.daemon.control import ControlServer

    loop = asyncio.new_event_loop()
    server = ControlServer(path, handlers)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the control server did not start"
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


MEMBERSHIP = {
    "node": "n1",
    "dc": "n1",
    "term": 5,
    "quorate": True,
    "members": ["n1", "n2"],
    "nodes": {
        "n1": {"name": "n1", "node_id": 1, "state": "online", "votes": 1, "links": {}},
        "n2": {"name": "n2", "node_id": 2, "state": "online", "votes": 1, "links": {}},
    },
}


def test_live_without_cib_query_shows_membership(tmp_path: Path) -> None:
    """A daemon without a CIB (or an older one) answers cib-query with "unknown command":
    the membership view alone, as `hastack status` showed before."""
    path = tmp_path / "control.sock"
    with control_server(path, {"status": lambda _request: MEMBERSHIP}):
        snap = status_cmd.Source(socket_path=str(path), node="n1").snapshot()
    assert snap.error is None and snap.view is not None and not snap.view.has_cib
    assert snap.note is not None and "membership only" in snap.note
    doc = status_cmd.json_document(snap)
    assert doc["term"] == 5 and doc["members"] == ["n1", "n2"]
    assert doc["cluster"]["resources"] == []
    text = status_cmd.text_document(snap, argparse.Namespace(attributes=False, failcounts=False))
    assert "Membership (as node n1 sees it):" in text and "DC: n1   term: 5" in text
    assert "Online: [ n1 n2 ]" in text


def test_live_with_cib_query_merges_both(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    handlers = {
        "status": lambda _request: MEMBERSHIP,
        "cib-query": lambda _request: {"cib": full_cib(), "node": "n1", "dc": "n1"},
    }
    with control_server(path, handlers):
        snap = status_cmd.Source(socket_path=str(path), node="n1").snapshot()
    assert snap.error is None and snap.view.has_cib and snap.note is None
    doc = status_cmd.json_document(snap)
    assert {"node", "dc", "term", "quorate", "members", "nodes"} <= set(doc)
    assert doc["term"] == 5 and doc["cluster"]["summary"]["resources_configured"] == 14
    n1 = next(n for n in doc["cluster"]["nodes"] if n["name"] == "n1")
    assert n1["membership"]["node_id"] == 1


def test_live_daemon_without_a_cib_shows_membership(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    handlers = {
        "status": lambda _request: MEMBERSHIP,
        "cib-query": lambda _request: {"cib": None, "node": "n1", "dc": "n1"},
    }
    with control_server(path, handlers):
        snap = status_cmd.Source(socket_path=str(path), node="n1").snapshot()
    assert snap.view is not None and not snap.view.has_cib
    assert snap.note is not None and "no CIB" in snap.note


def test_live_errors_are_reported_not_raised(tmp_path: Path) -> None:
    snap = status_cmd.Source(socket_path=str(tmp_path / "nothing"), node="n1").snapshot()
    assert snap.error is not None and "not running" in snap.error
    path = tmp_path / "control.sock"
    handlers = {
        "status": lambda _request: MEMBERSHIP,
        "cib-query": lambda _request: {"cib": "<cib><oops", "node": "n1", "dc": "n1"},
    }
    with control_server(path, handlers):
        snap = status_cmd.Source(socket_path=str(path), node="n1").snapshot()
    assert snap.view is not None and not snap.view.has_cib
    assert snap.note is not None and "cannot be read" in snap.note


def test_cli_watch_without_a_terminal_prints_snapshots(cib_file: Path) -> None:
    """Piped, --watch prints one whole snapshot per interval, a blank line between them, and
    Ctrl-C ends it with status 0."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("CIB_file", None)
    argv = [sys.executable, "-m", "hastack.cli.main", "status", "-f", str(cib_file)]
    with subprocess.Popen(
        [*argv, "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 30
            while lines.count("Cluster Summary:\n") < 2 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
            starts = [i for i, line in enumerate(lines) if line == "Cluster Summary:\n"]
            assert starts[:1] == [0] and len(starts) == 2, "".join(lines)
            first = "".join(lines[: starts[1]])
            assert first.endswith("\n\n") and not first.endswith("\n\n\n")
            assert "Clone Set: db-clone [db] (promotable):" in first
            proc.send_signal(signal.SIGINT)  # Ctrl-C ends watching with status 0
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_cli_watch_on_a_terminal_refreshes_live_and_ctrl_c_exits_0(cib_file: Path) -> None:
    """On a terminal (a pty here) rich redraws the view in place until Ctrl-C."""
    import pty
    import select

    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("CIB_file", None)
    argv = [sys.executable, "-m", "hastack.cli.main", "status", "-f", str(cib_file)]
    pid, fd = pty.fork()
    if pid == 0:  # the child: run the command on the pty
        os.execve(sys.executable, [*argv, "--watch", "0.2"], env)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while output.count(b"Cluster Summary") < 3 and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    output += os.read(fd, 65536)
                except OSError:
                    break
        assert output.count(b"Cluster Summary") >= 3, output[-2000:]
        assert b"\x1b[" in output  # drawn with terminal control sequences, not printed
        os.kill(pid, signal.SIGINT)
        while select.select([fd], [], [], 1.0)[0]:
            try:
                if not os.read(fd, 65536):
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "node": _JSON,
            "dc": _JSON,
            "quorate": _JSON,
            "nodes": st.dictionaries(st.text(max_size=6), _JSON, max_size=4) | _JSON,
        },
    ),
    st.booleans(),
)
def test_fuzz_membership_documents_never_break_the_view(
    membership: dict[str, Any], with_cib: bool
) -> None:
    """Whatever shape a (newer or older) daemon's status document has, the view is built and
    rendered, showing what it can."""
    cib_model = read_cib(full_cib()) if with_cib else None
    v = build_view(cib_model, membership, NOW)
    assert render_text(v).startswith("Cluster Summary:")
    json.dumps(v.to_json())
