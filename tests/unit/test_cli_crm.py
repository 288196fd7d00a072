"""`hastack resource|constraint|property|node|standby|takeover` on CIB files (-f, CIB_file)
and through a stand-in control socket: a thread serving hastack.daemon.control.ControlServer
whose handlers apply the operations to an in-memory CIB, as the DC's handlers will."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from hastack.cli.crm_cmds import Usage, pairs
from hastack.cli.main import main
from hastack.crm.cib.edit import EditError, apply_edit
from hastack.crm.operations import operation_edit
from hastack.daemon.control import ControlServer

UUID = "aaaaaaaa-0000-0000-0000-000000000000"
CIB = f"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="5" num_updates="2"
    have-quorum="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
        expected="member">
      <lrm id="1"><lrm_resources>
        <lrm_resource id="db" class="ocf" provider="heartbeat" type="Dummy">
          <lrm_rsc_op id="db_last_0" operation_key="db_start_0" operation="start"
            transition-key="1:1:0:{UUID}" transition-magic="0:0;1:1:0:{UUID}" call-id="3"
            rc-code="0" op-status="0" interval="0" on_node="node1"/>
        </lrm_resource>
      </lrm_resources></lrm>
    </node_state>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member"
        expected="member"/>
  </status>
</cib>
""".encode()


@pytest.fixture
def cib_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CIB_file", raising=False)
    path = tmp_path / "cib.xml"
    path.write_bytes(CIB)
    return path


def hastack(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def constraints(path: Path) -> list[etree._Element]:
    root = etree.fromstring(path.read_bytes())
    return [c for c in root.find("configuration/constraints") if isinstance(c.tag, str)]


def test_move_ban_clear_on_a_file(cib_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(cib_file)
    code, out, _ = hastack(capsys, "resource", "move", "db", "node2", "-u", "PT10M", "-f", f)
    assert code == 0 and "moved db to node2 (until " in out and "(version 0.6.0)" in out
    (pin,) = constraints(cib_file)
    assert pin.get("id") == "cli-prefer-db"
    assert pin.find("rule/date_expression").get("operation") == "lt"
    code, out, _ = hastack(capsys, "resource", "ban", "db", "-f", f)
    assert code == 0 and "banned db from node1" in out
    code, out, _ = hastack(capsys, "constraint", "list", "--json", "-f", f)
    listed = json.loads(out)
    assert [c["id"] for c in listed] == ["cli-prefer-db", "cli-ban-db-on-node1"]
    assert listed[0]["expires"].endswith("Z")
    code, out, _ = hastack(capsys, "resource", "clear", "db", "-f", f)
    assert code == 0 and constraints(cib_file) == []


def test_cib_file_from_the_environment(
    cib_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIB_file", str(cib_file))
    code, out, _ = hastack(capsys, "property", "set", "no-quorum-policy", "ignore")
    assert code == 0
    code, out, _ = hastack(capsys, "property", "get", "no-quorum-policy")
    assert (code, out) == (0, "ignore\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["resource", "move", "web", "node2"], "no resource 'web'; the resources are: db"),
        (["resource", "move", "db", "node2", "-u", "10 minutes"], "bad lifetime"),
        (["resource", "ban", "db", "node7"], "no node 'node7'; the nodes are: node1, node2"),
        (["constraint", "location", "db", "node1", "lots"], "not a score"),
        (["property", "set", "stonith-enable", "false"], "unknown cluster option"),
        (["resource", "create", "x", "nfs"], "no standard"),
        (["resource", "update", "db", "novalue"], "write NAME=VALUE"),
        (["resource", "restart", "db"], "running cluster"),
        (["node", "standby", "node9"], "no node 'node9'"),
        (["property", "get", "cluster-name"], "cluster-name is not set"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    cib_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _out, err = hastack(capsys, *argv, "-f", str(cib_file))
    assert code in (1, 2) and message in err, err
    assert "Traceback" not in err
    assert cib_file.read_bytes() == CIB


def test_bad_command_line_exits_2(cib_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["resource", "move", "-f", str(cib_file)])
    assert exc.value.code == 2
    code, _, err = hastack(capsys, "resource", "update", "db", "x", "-f", str(cib_file))
    assert code == 2 and "NAME=VALUE" in err


def test_dry_run_prints_diff_and_transition_and_changes_nothing(
    cib_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = hastack(
        capsys, "resource", "move", "db", "node2", "--dry-run", "-f", str(cib_file)
    )
    assert code == 0
    assert cib_file.read_bytes() == CIB
    # transient by default: the pin carries the "until moved" rule
    assert '+      <rsc_location id="cli-prefer-db" rsc="db" role="Started">' in out
    assert "#hastack-until-moved" in out
    transition = out.split("Transition:\n", 1)[1].splitlines()
    assert "  * db_stop_0 node1: db moves away" in transition
    assert any(line.startswith("  * db_start_0 node2") for line in transition)
    assert "(dry run: nothing changed)" in out


def test_resource_create_update_show_list_delete(
    cib_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(cib_file)
    code, out, err = hastack(
        capsys,
        "resource", "create", "ip", "ocf:heartbeat:IPaddr2", "ip=10.0.0.9",
        "--op", "monitor interval=10s timeout=20s", "--group", "web", "-f", f,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = hastack(capsys, "resource", "update", "ip", "cidr_netmask=24", "-f", f)
    assert code == 0
    code, out, _ = hastack(capsys, "resource", "show", "ip", "--json", "-f", f)
    shown = json.loads(out)
    assert shown["params"] == {"ip": "10.0.0.9", "cidr_netmask": "24"}
    assert shown["parent"] == "web" and shown["ops"][0]["id"] == "ip-monitor-interval-10s"
    assert hastack(capsys, "resource", "disable", "web", "-f", f)[0] == 0
    code, out, _ = hastack(capsys, "resource", "list", "--json", "-f", f)
    listed = {r["id"]: r for r in json.loads(out)}
    assert listed["db"]["active"] == [{"node": "node1", "role": "Started"}]
    assert listed["web"]["target_role"] == "Stopped"
    code, out, _ = hastack(capsys, "resource", "list", "-f", f)
    assert "target-role=Stopped" in out
    code, out, _ = hastack(capsys, "resource", "delete", "ip", "-f", f)
    assert code == 0 and "group web (its last member)" in out


def test_constraints_and_nodes(cib_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(cib_file)
    hastack(capsys, "resource", "create", "web", "lsb:nginx", "-f", f)
    assert hastack(capsys, "constraint", "colocation", "web", "db", "-f", f)[0] == 0
    assert (
        hastack(capsys, "constraint", "order", "db", "web", "--kind", "Optional", "-f", f)[0] == 0
    )
    assert hastack(capsys, "constraint", "location", "db", "node2", "50", "-f", f)[0] == 0
    ids = [c.get("id") for c in constraints(cib_file)]
    assert ids == ["colocation-web-db-INFINITY", "order-db-web-optional", "location-db-node2-50"]
    code, out, _ = hastack(capsys, "constraint", "list", "-f", f)
    assert "web with db" in out and "start db then start web" in out
    assert hastack(capsys, "constraint", "remove", "order-db-web-optional", "-f", f)[0] == 0
    assert hastack(capsys, "node", "standby", "node2", "-f", f)[0] == 0
    assert hastack(capsys, "node", "attribute", "node1", "site", "east", "-f", f)[0] == 0
    code, out, _ = hastack(capsys, "node", "list", "--json", "-f", f)
    nodes = {n["name"]: n for n in json.loads(out)}
    assert nodes["node2"]["standby"] is True and nodes["node2"]["state"] == "standby"
    assert nodes["node1"]["attributes"] == {"site": "east"}
    code, out, _ = hastack(capsys, "node", "attribute", "node1", "site", "--json", "-f", f)
    assert code == 0
    assert json.loads(out)["values"] == [{"set": "nodes-1", "value": "east"}]
    assert hastack(capsys, "node", "unstandby", "node2", "-f", f)[0] == 0
    assert hastack(capsys, "node", "maintenance", "node1", "-f", f)[0] == 0
    code, out, _ = hastack(capsys, "node", "list", "-f", f)
    assert code == 0 and "maintenance=true" in out


def test_r1_standby_and_takeover_on_a_file(
    cib_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = str(cib_file)
    code, out, _ = hastack(capsys, "standby", "--node", "node1", "-f", f)
    assert code == 0 and "node1 gives up db" in out
    code, out, _ = hastack(capsys, "takeover", "local", "--node", "node1", "--dry-run", "-f", f)
    assert code == 0 and "takes over" not in out and "runs every local" in out
    code, out, _ = hastack(capsys, "takeover", "--node", "node2", "-f", f)
    assert code == 0 and "node2 takes over db" in out
    assert [c.get("id") for c in constraints(cib_file)] == ["cli-ban-db-on-node1", "cli-prefer-db"]


def test_no_file_and_no_daemon_names_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIB_file", raising=False)
    code, _, err = hastack(capsys, "resource", "list", "-c", str(tmp_path))
    assert code == 1 and "-f FILE" in err and "-c CONFIG_DIR" in err


# --- through the control socket ----------------------------------------------------------


class FakeDc:
    """The DC's side of the protocol, on an in-memory CIB: cib-query, cib-apply and
    resource-request (which records the request)."""

    def __init__(self) -> None:
        self.data = CIB
        self.requests: list[dict[str, Any]] = []

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"cib": self.data.decode(), "node": "node1", "dc": "node1"}

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            edit = operation_edit(request["operation"], datetime.now(UTC))
            result = apply_edit(self.data, "the CIB", edit)
        except EditError as exc:
            return {"error": str(exc)}
        self.data = result.data
        return {"ok": True, "summary": result.summary, "epoch": list(result.epoch)}

    def runtime(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request["operation"])
        return {"ok": True, "summary": f"{request['operation']['op']} requested"}


@pytest.fixture
def daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[str, FakeDc]]:
    conf = tmp_path / "conf"
    run_dir = tmp_path / "run"
    argv = ["config", "init", "-c", str(conf), "--node", "node1", "--node", "node2"]
    argv += ["--ucast", "lo", "127.0.0.1", "127.0.0.2", "--run-dir", str(run_dir)]
    assert main(argv) == 0
    capsys.readouterr()
    (run_dir / "node1").mkdir(parents=True)
    dc = FakeDc()
    handlers = {"cib-query": dc.query, "cib-apply": dc.apply, "resource-request": dc.runtime}
    server = ControlServer(run_dir / "node1" / "control.sock", handlers)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield str(conf), dc
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_commands_through_the_control_socket(
    daemon: tuple[str, FakeDc], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIB_file", raising=False)
    conf, dc = daemon
    at = ["-c", conf, "--node", "node1"]
    code, out, err = hastack(capsys, "resource", "ban", "db", "node2", *at)
    assert (
        code == 0 and "banned db from node2 (until the move has happened) (version 0.6.0)" in out
    ), err
    assert b'id="cli-ban-db-on-node2"' in dc.data
    code, out, _ = hastack(capsys, "constraint", "list", "--json", *at)
    assert [c["id"] for c in json.loads(out)] == ["cli-ban-db-on-node2"]
    before = dc.data
    code, out, _ = hastack(capsys, "node", "standby", "node1", "--dry-run", *at)
    assert code == 0 and '+          <nvpair id="nodes-1-standby"' in out
    assert "db_stop_0 node1" in out and dc.data == before
    code, out, err = hastack(capsys, "resource", "move", "nope", "node2", *at)
    assert code == 1 and "no resource 'nope'" in err and dc.data == before
    code, out, _ = hastack(capsys, "resource", "restart", "db", *at)
    code2, out2, _ = hastack(capsys, "resource", "cleanup", "db", "-N", "node1", *at)
    assert "resource-cleanup requested" in out2
    assert (code, code2) == (0, 0) and "resource-restart requested" in out
    assert dc.requests == [
        {"op": "resource-restart", "resource": "db"},
        {"op": "resource-cleanup", "resource": "db", "node": "node1"},
    ]
    code, out, _ = hastack(capsys, "standby", *at)
    assert code == 0 and "node1 gives up db" in out


def test_daemon_not_running_is_a_clear_error(
    daemon: tuple[str, FakeDc], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIB_file", raising=False)
    conf, _ = daemon
    code, _, err = hastack(capsys, "resource", "list", "-c", conf, "--node", "node2")
    assert code == 1 and "not running" in err and "-f FILE" in err


FAILED_MONITOR = (
    '<lrm_rsc_op id="db_last_failure_0" operation_key="db_monitor_10000" operation="monitor" '
    f'transition-key="2:1:0:{UUID}" transition-magic="0:7;2:1:0:{UUID}" call-id="4" '
    'rc-code="7" op-status="0" interval="10000" on_node="node1"/>'
)


def test_cleanup_and_refresh_on_a_file(cib_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = str(cib_file)
    text = CIB.replace(b'on_node="node1"/>', b'on_node="node1"/>' + FAILED_MONITOR.encode())
    cib_file.write_bytes(text)
    code, out, _ = hastack(capsys, "resource", "cleanup", "db", "--dry-run", "-f", f)
    removed = [line for line in out.splitlines() if line.startswith("-") and "lrm_r" in line]
    assert code == 0 and any("db_last_failure_0" in line for line in removed)
    assert "Transition:" in out and cib_file.read_bytes() == text
    code, out, _ = hastack(
        capsys, "resource", "cleanup", "db", "--operation", "monitor", "--interval", "10s", "-f", f
    )
    assert code == 0 and "failed monitor of db on node1" in out and "(version 0.5.3)" in out
    assert b"db_last_failure_0" not in cib_file.read_bytes()
    assert b'id="db_last_0"' in cib_file.read_bytes()
    code, out, _ = hastack(capsys, "resource", "refresh", "-N", "node1", "-f", f)
    assert code == 0 and "history of db on node1" in out
    assert b"lrm_resource " not in cib_file.read_bytes()


@given(st.lists(st.text(max_size=12), max_size=5))
def test_name_value_words_parse_or_are_refused(words: list[str]) -> None:
    try:
        parsed = pairs(words, "parameter", allow_empty=True)
    except Usage as exc:
        assert "NAME=VALUE" in str(exc)
    else:
        for word in words:
            assert word.partition("=")[0] in parsed
        assert all(v is None or isinstance(v, str) for v in parsed.values())


def test_until_moved_pin_is_scheduled_as_a_plain_move(
    cib_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["resource", "move", "db", "node2", "--until-moved", "--dry-run", "-f", str(cib_file)]
    code, out, _ = hastack(capsys, *argv)
    assert code == 0 and "#hastack-until-moved" in out
    transition = out.split("Transition:\n", 1)[1].splitlines()
    assert "  * db_stop_0 node1: db moves away" in transition
    assert any(line.startswith("  * db_start_0 node2") for line in transition)
