"""hastack's operator operations against Pacemaker's own tools (Debian's pacemaker-cli-utils
2.1.5 on a file through CIB_file): crm_resource --move/--ban/--clear (with and without
--lifetime), crm_attribute and crm_standby for node attributes and cluster options. The same
command must leave the same CIB — elements, ids, scores, rule structure and version counters;
a lifetime's end is compared as a time (the two clocks are read a moment apart) — and
crm_simulate must compute the same transition from both results. hastack's own until_moved
form has no Pacemaker counterpart: crm_simulate must place it as the plain move.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hastack.crm.cib.edit import apply_edit
from hastack.crm.operations import operation_edit
from hastack.crm.rules import parse_iso8601

UUID = "aaaaaaaa-0000-0000-0000-000000000000"


def _started(rsc: str, node: str, call: int) -> str:
    return (
        f'<lrm_resource id="{rsc}" class="ocf" provider="heartbeat" type="Dummy">'
        f'<lrm_rsc_op id="{rsc}_last_0" operation_key="{rsc}_start_0" operation="start" '
        f'transition-key="1:1:0:{UUID}" '
        f'transition-magic="0:0;1:1:0:{UUID}" call-id="{call}" rc-code="0" op-status="0" '
        f'interval="0" on_node="{node}"/></lrm_resource>'
    )


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
      <node id="3" uname="node3"/>
    </nodes>
    <resources>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy"/>
      <group id="g">
        <primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>
      </group>
    </resources>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
        expected="member" crm-debug-origin="test">
      <lrm id="1"><lrm_resources>{_started("db", "node1", 3)}{_started("a", "node1", 4)}
      </lrm_resources></lrm>
    </node_state>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member"
        expected="member" crm-debug-origin="test"><lrm id="2"><lrm_resources/></lrm>
    </node_state>
    <node_state id="3" uname="node3" in_ccm="true" crmd="online" join="member"
        expected="member" crm-debug-origin="test"><lrm id="3"><lrm_resources/></lrm>
    </node_state>
  </status>
</cib>
""".encode()

# (the Pacemaker commands, the same through hastack's operations; applied in order)
Case = tuple[list[list[str]], list[dict[str, Any]]]
CASES: dict[str, Case] = {
    "move": (
        [["crm_resource", "--move", "-r", "db", "-N", "node2"]],
        [{"op": "resource-move", "resource": "db", "node": "node2"}],
    ),
    "move with lifetime": (
        [["crm_resource", "--move", "-r", "db", "-N", "node2", "-u", "PT10M"]],
        [{"op": "resource-move", "resource": "db", "node": "node2", "lifetime": "PT10M"}],
    ),
    "move a group, forced": (
        [["crm_resource", "--move", "-r", "g", "-N", "node3", "--force"]],
        [{"op": "resource-move", "resource": "g", "node": "node3", "force": True}],
    ),
    "move away from the current node": (
        [["crm_resource", "--move", "-r", "db"]],
        [{"op": "resource-move", "resource": "db"}],
    ),
    "ban": (
        [["crm_resource", "--ban", "-r", "db", "-N", "node2"]],
        [{"op": "resource-ban", "resource": "db", "node": "node2"}],
    ),
    "ban with lifetime": (
        [["crm_resource", "--ban", "-r", "db", "-N", "node1", "-u", "P1DT2H"]],
        [{"op": "resource-ban", "resource": "db", "node": "node1", "lifetime": "P1DT2H"}],
    ),
    "move again replaces the preference and lifts the ban on the target": (
        [
            ["crm_resource", "--ban", "-r", "db", "-N", "node3"],
            ["crm_resource", "--move", "-r", "db", "-N", "node2"],
            ["crm_resource", "--move", "-r", "db", "-N", "node3", "-u", "PT1H"],
        ],
        [
            {"op": "resource-ban", "resource": "db", "node": "node3"},
            {"op": "resource-move", "resource": "db", "node": "node2"},
            {"op": "resource-move", "resource": "db", "node": "node3", "lifetime": "PT1H"},
        ],
    ),
    "clear": (
        [
            ["crm_resource", "--move", "-r", "db", "-N", "node2"],
            ["crm_resource", "--ban", "-r", "db", "-N", "node3"],
            ["crm_resource", "--clear", "-r", "db"],
        ],
        [
            {"op": "resource-move", "resource": "db", "node": "node2"},
            {"op": "resource-ban", "resource": "db", "node": "node3"},
            {"op": "resource-clear", "resource": "db"},
        ],
    ),
    "clear on one node": (
        [
            ["crm_resource", "--move", "-r", "db", "-N", "node2", "-u", "PT5M"],
            ["crm_resource", "--ban", "-r", "db", "-N", "node3"],
            ["crm_resource", "--clear", "-r", "db", "-N", "node3"],
        ],
        [
            {"op": "resource-move", "resource": "db", "node": "node2", "lifetime": "PT5M"},
            {"op": "resource-ban", "resource": "db", "node": "node3"},
            {"op": "resource-clear", "resource": "db", "node": "node3"},
        ],
    ),
    "standby": (
        [["crm_attribute", "-N", "node1", "-n", "standby", "-v", "on"]],
        [{"op": "node-standby", "node": "node1"}],
    ),
    "standby until reboot": (
        [["crm_standby", "-N", "node1", "-v", "on", "-l", "reboot"]],
        [{"op": "node-standby", "node": "node1", "lifetime": "reboot"}],
    ),
    "node maintenance": (
        [["crm_attribute", "-N", "node1", "-n", "maintenance", "-v", "true"]],
        [{"op": "node-maintenance", "node": "node1"}],
    ),
    "node attribute set and delete": (
        [
            ["crm_attribute", "-N", "node2", "-n", "site", "-v", "east"],
            ["crm_attribute", "-N", "node3", "-n", "site", "-v", "west"],
            ["crm_attribute", "-N", "node2", "-n", "site", "-D"],
        ],
        [
            {"op": "node-attribute", "node": "node2", "name": "site", "value": "east"},
            {"op": "node-attribute", "node": "node3", "name": "site", "value": "west"},
            {"op": "node-attribute", "node": "node2", "name": "site", "value": None},
        ],
    ),
    "cluster option": (
        [
            ["crm_attribute", "-t", "crm_config", "-n", "no-quorum-policy", "-v", "ignore"],
            ["crm_attribute", "-t", "crm_config", "-n", "symmetric-cluster", "-v", "false"],
            ["crm_attribute", "-t", "crm_config", "-n", "symmetric-cluster", "-D"],
        ],
        [
            {"op": "property-set", "name": "no-quorum-policy", "value": "ignore"},
            {"op": "property-set", "name": "symmetric-cluster", "value": "false"},
            {"op": "property-delete", "name": "symmetric-cluster"},
        ],
    ),
    "disable and unmanage": (
        [
            ["crm_resource", "-r", "db", "--meta", "-p", "target-role", "-v", "Stopped"],
            ["crm_resource", "-r", "g", "--meta", "-p", "is-managed", "-v", "false"],
        ],
        [
            {"op": "resource-disable", "resource": "db"},
            {"op": "resource-unmanage", "resource": "g"},
        ],
    ),
}

# crm_resource commits each constraint it adds or removes on its own (a forced move: the
# preference, then the ban), where a hastack operation is one all-or-nothing change: in these
# cases Pacemaker's epoch ends higher, and only hastack's own count is checked.
SEVERAL_COMMITS = {
    "move a group, forced",
    "move again replaces the preference and lifts the ban on the target",
    "clear",
}

TOOLS = ("crm_resource", "crm_attribute", "crm_standby", "crm_simulate")
_END = re.compile(r'end="([^"]+)"')


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        msg = f"{', '.join(missing)} (pacemaker-cli-utils) not installed: cannot compare with them"
        print(msg)
        pytest.skip(msg)


def _run_theirs(path: Path, commands: list[list[str]]) -> None:
    env = dict(os.environ, CIB_file=str(path), LC_ALL="C")
    for command in commands:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.stderr}"


def _run_ours(data: bytes, operations: list[dict[str, Any]]) -> bytes:
    for operation in operations:
        result = apply_edit(data, "ours", operation_edit(operation, datetime.now(UTC)))
        assert not [p for p in result.new_problems if p.severity == "error"], result.new_problems
        data = result.data
    return data


def canonical(data: bytes) -> tuple[tuple[str | None, ...], str, list[datetime]]:
    """The version counters, the configuration and status without formatting (lifetime ends
    replaced by a placeholder), and the lifetime ends as times."""
    root = etree.fromstring(data, etree.XMLParser(remove_blank_text=True))
    versions = tuple(root.get(name) for name in ("admin_epoch", "epoch", "num_updates"))
    body = b"".join(
        etree.tostring(root.find(section), method="c14n") for section in ("configuration", "status")
    ).decode()
    ends = [parse_iso8601(end) for end in _END.findall(body)]
    return versions, _END.sub('end="END"', body), ends


def transition(path: Path) -> str:
    """crm_simulate's transition summary and revised status for a CIB file."""
    done = subprocess.run(
        ["crm_simulate", "-x", str(path), "-S"],
        env=dict(os.environ, LC_ALL="C"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    summary = text[text.index("Transition Summary:") : text.index("Executing Cluster Transition")]
    return summary + text[text.index("Revised Cluster Status:") :]


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_cib_as_pacemakers_tools(case: str, tmp_path: Path) -> None:
    _need_tools()
    commands, operations = CASES[case]
    theirs = tmp_path / "theirs.xml"
    theirs.write_bytes(CIB)
    _run_theirs(theirs, commands)
    ours = tmp_path / "ours.xml"
    ours.write_bytes(_run_ours(CIB, operations))
    their_versions, their_body, their_ends = canonical(theirs.read_bytes())
    our_versions, our_body, our_ends = canonical(ours.read_bytes())
    assert our_body == their_body
    if case in SEVERAL_COMMITS:
        assert our_versions == ("0", str(5 + len(operations)), "0")
    else:
        assert our_versions == their_versions
    assert len(our_ends) == len(their_ends)
    for mine, pacemakers in zip(our_ends, their_ends, strict=True):
        assert abs((mine - pacemakers).total_seconds()) <= 5
    assert transition(ours) == transition(theirs)


@pytest.mark.parametrize(
    ("command", "operation"),
    [
        (
            ["crm_resource", "--move", "-r", "db", "-N", "node3"],
            {"op": "resource-move", "resource": "db", "node": "node3", "until_moved": True},
        ),
        (
            ["crm_resource", "--ban", "-r", "g", "-N", "node1"],
            {"op": "resource-ban", "resource": "g", "node": "node1", "until_moved": True},
        ),
        (
            ["crm_resource", "--move", "-r", "db", "-N", "node2", "-u", "PT30M"],
            {
                "op": "resource-move",
                "resource": "db",
                "node": "node2",
                "lifetime": "PT30M",
                "until_moved": True,
            },
        ),
    ],
)
def test_until_moved_places_as_the_plain_pin(
    command: list[str], operation: dict[str, Any], tmp_path: Path
) -> None:
    _need_tools()
    theirs = tmp_path / "theirs.xml"
    theirs.write_bytes(CIB)
    _run_theirs(theirs, [command])
    ours = tmp_path / "ours.xml"
    ours.write_bytes(_run_ours(CIB, [operation]))
    assert b"#hastack-until-moved" in ours.read_bytes()
    assert transition(ours) == transition(theirs)
    assert "Move" in transition(theirs)  # the case moves something: the comparison means it


def test_r1_standby_moves_as_a_ban_would(tmp_path: Path) -> None:
    _need_tools()
    theirs = tmp_path / "theirs.xml"
    theirs.write_bytes(CIB)
    _run_theirs(
        theirs,
        [["crm_resource", "--ban", "-r", r, "-N", "node1"] for r in ("db", "g")],
    )
    ours = tmp_path / "ours.xml"
    ours.write_bytes(_run_ours(CIB, [{"op": "standby", "node": "node1", "which": "all"}]))
    assert transition(ours) == transition(theirs)
