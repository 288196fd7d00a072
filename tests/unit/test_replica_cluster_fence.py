"""hastack's crm-fence-peer / crm-unfence-peer: the sans-IO decision (CIB + cluster view in,
constraint and exit code out), the CIB operation it uses, and the `hastack replica fence-peer`
/ `unfence-peer` commands on a CIB file, as a drbd.conf handler runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from hastack.crm.operations import OperationError, apply_operation
from hastack.replica.cluster_fence import (
    ClusterView,
    FenceDecision,
    FenceEvent,
    constraint_id,
    decide_fence_peer,
    decide_unfence_peer,
    fenced_for,
    promotable_clones,
)

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
ALICE, BOB = "alice", "bob"


def cib_text(
    *,
    agent: tuple[str, str, str] = ("ocf", "hastack", "replica"),
    drbd_resource: str = "r0",
    promotable: str = "true",
    online: tuple[str, ...] = (ALICE, BOB),
    constraints: str = "",
) -> str:
    klass, provider, kind = agent
    states = "".join(
        f'<node_state id="{i}" uname="{n}" in_ccm="{str(n in online).lower()}" '
        f'crmd="{"online" if n in online else "offline"}" join="member" expected="member"/>'
        for i, n in ((1, ALICE), (2, BOB))
    )
    return f"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="5" num_updates="0"
    have-quorum="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opts-st" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes><node id="1" uname="{ALICE}"/><node id="2" uname="{BOB}"/></nodes>
    <resources>
      <clone id="r0-clone">
        <meta_attributes id="r0-clone-meta">
          <nvpair id="r0-clone-promotable" name="promotable" value="{promotable}"/>
        </meta_attributes>
        <primitive id="r0" class="{klass}" provider="{provider}" type="{kind}">
          <instance_attributes id="r0-params">
            <nvpair id="r0-res" name="drbd_resource" value="{drbd_resource}"/>
          </instance_attributes>
        </primitive>
      </clone>
      <primitive id="web" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints>{constraints}</constraints>
  </configuration>
  <status>{states}</status>
</cib>"""


def root_of(text: str) -> etree._Element:
    return etree.fromstring(text.encode())


def view(members: tuple[str, ...] = (ALICE, BOB), **kw: object) -> ClusterView:
    return ClusterView(members=frozenset(members), nodes=frozenset((ALICE, BOB)), **kw)  # type: ignore[arg-type]


def decide(root: etree._Element, cluster: ClusterView, **kw: object) -> FenceDecision:
    args: dict[str, object] = {
        "resource": "r0",
        "this_node": ALICE,
        "peer": BOB,
        "fencing": "resource-only",
        "waited": 0.0,
        "stonith_wait": 30.0,
    }
    args.update(kw)
    return decide_fence_peer(root, cluster, **args)  # type: ignore[arg-type]


def applied(root: etree._Element, decision: FenceDecision) -> etree._Element:
    for operation in decision.operations:
        apply_operation(root, operation, NOW)
    return root


# --- the decision -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "promotable", "found"),
    [
        (("ocf", "hastack", "replica"), "true", ["r0-clone"]),
        (("ocf", "linbit", "drbd"), "true", ["r0-clone"]),
        (("ocf", "hastack", "replica"), "false", []),  # a plain clone is not promotable
        (("ocf", "heartbeat", "Dummy"), "true", []),
    ],
)
def test_the_promotable_clone_of_the_resource_is_found_by_agent_and_drbd_resource(
    agent: tuple[str, str, str], promotable: str, found: list[str]
) -> None:
    root = root_of(cib_text(agent=agent, promotable=promotable))
    assert promotable_clones(root, "r0") == found
    assert promotable_clones(root, "r1") == []


def test_a_peer_still_in_the_cluster_is_outdated_by_the_constraint_exit_4() -> None:
    root = root_of(cib_text())
    decision = decide(root, view())
    assert decision.exit_code == 4
    (operation,) = decision.operations
    assert operation["id"] == "drbd-fence-by-handler-r0-r0-clone" == constraint_id("r0", "r0-clone")
    applied(root, decision)
    (location,) = root.iterfind("configuration/constraints/rsc_location")
    assert location.get("rsc") == "r0-clone"
    (rule,) = location.findall("rule")
    assert (rule.get("role"), rule.get("score")) == ("Promoted", "-INFINITY")
    (expr,) = rule.findall("expression")
    assert (expr.get("attribute"), expr.get("operation"), expr.get("value")) == (
        "#uname",
        "ne",
        ALICE,
    )
    assert fenced_for(root, operation["id"]) == ALICE
    # asked again (a second volume, a retry): the constraint is there, nothing more to add
    again = decide(root, view())
    assert again.exit_code == 4 and again.operations == ()


def test_a_peer_that_left_is_unreachable_exit_5_with_resource_only() -> None:
    decision = decide(root_of(cib_text()), view(members=(ALICE,)))
    assert decision.exit_code == 5 and len(decision.operations) == 1
    assert "left the cluster" in decision.message


def test_stonith_waits_for_the_cluster_to_fence_a_peer_that_left_then_exit_7() -> None:
    root = root_of(cib_text())
    gone = view(members=(ALICE,), peer_last_seen=1000.0)
    waiting = decide(root, gone, fencing="resource-and-stonith", waited=3.0)
    assert waiting.exit_code is None and len(waiting.operations) == 1
    assert "waiting for it to be fenced" in waiting.message
    # an old fencing (before the peer was last seen) proves nothing; a failed one neither
    stale = view(
        members=(ALICE,),
        peer_last_seen=1000.0,
        fence_history=(
            FenceEvent(BOB, "done", 900.0),
            FenceEvent(BOB, "failed", 1005.0),
            FenceEvent(ALICE, "done", 1010.0),
        ),
    )
    assert decide(root, stale, fencing="resource-and-stonith", waited=3.0).exit_code is None
    fenced = view(
        members=(ALICE,), peer_last_seen=1000.0, fence_history=(FenceEvent(BOB, "done", 1002.0),)
    )
    assert decide(root, fenced, fencing="resource-and-stonith", waited=4.0).exit_code == 7
    # ... and without a fencing in time: unreachable
    late = decide(root, stale, fencing="resource-and-stonith", waited=30.0)
    assert late.exit_code == 5 and "not fenced within 30 s" in late.message


def test_no_clone_unknown_peer_or_a_constraint_for_the_peer_are_errors() -> None:
    assert decide(root_of(cib_text(drbd_resource="r9")), view()).exit_code == 1
    unknown = decide(root_of(cib_text()), view(), peer="carol")
    assert unknown.exit_code == 1 and "not a node of the cluster" in unknown.message
    # bob fenced alice earlier: alice must not turn that around
    root = root_of(cib_text())
    applied(root, decide(root, view(), this_node=BOB, peer=ALICE))
    refused = decide(root, view())
    assert refused.exit_code == 1 and refused.operations == ()
    assert "to bob only: bob fenced this node (alice)" in refused.message


def test_unfence_removes_every_constraint_of_the_resource_and_nothing_else() -> None:
    other = (
        '<rsc_location id="drbd-fence-by-handler-r1-x" rsc="web" node="bob" score="1"/>'
        '<rsc_location id="keep-me" rsc="web" node="alice" score="100"/>'
    )
    root = root_of(cib_text(constraints=other))
    applied(root, decide(root, view()))
    decision = decide_unfence_peer(root, resource="r0")
    assert decision.exit_code == 0
    applied(root, decision)
    ids = [c.get("id") for c in root.iterfind("configuration/constraints/rsc_location")]
    assert ids == ["drbd-fence-by-handler-r1-x", "keep-me"]
    nothing = decide_unfence_peer(root, resource="r0")
    assert nothing.exit_code == 0 and nothing.operations == ()


def test_the_location_rule_operation_checks_its_fields_and_replaces_only_when_asked() -> None:
    root = root_of(cib_text())
    op = {
        "op": "constraint-location-rule",
        "id": "x",
        "resource": "r0-clone",
        "role": "Master",
        "attribute": "#uname",
        "operation": "ne",
        "value": ALICE,
    }
    apply_operation(root, op, NOW)
    (rule,) = root.iterfind("configuration/constraints/rsc_location/rule")
    assert rule.get("role") == "Promoted"  # the role's name as this CIB's schema spells it
    with pytest.raises(OperationError, match="already used"):
        apply_operation(root, op, NOW)
    apply_operation(root, {**op, "value": BOB, "replace": True}, NOW)
    assert fenced_for(root, "x") == BOB
    with pytest.raises(OperationError, match="not one of"):
        apply_operation(root, {**op, "id": "y", "operation": "like"}, NOW)
    with pytest.raises(OperationError, match="no resource"):
        apply_operation(root, {**op, "id": "z", "resource": "nope"}, NOW)


def _running_on_both(text: str, scores: dict[str, int]) -> str:
    """The CIB with r0 started (Unpromoted) on both nodes, web on alice, and the promotion
    scores the agent would have set (master-r0)."""
    from tests.unit.test_crm_operations import OP_START, UUID

    for node_id, name in ((1, ALICE), (2, BOB)):
        ops = ""
        for call, (rsc, provider, kind) in enumerate(
            (("r0", "hastack", "replica"), ("web", "heartbeat", "Dummy"))
        ):
            op = OP_START.format(r=rsc, u=UUID, c=3 + call)
            if rsc == "web" and name == BOB:  # probed: not running there
                op = (
                    op.replace('rc-code="0"', 'rc-code="7"')
                    .replace('operation="start"', 'operation="monitor"')
                    .replace("_start_0", "_monitor_0")
                    .replace('"0:0;', '"0:7;')
                )
            ops += (
                f'<lrm_resource id="{rsc}" class="ocf" provider="{provider}" type="{kind}">'
                f'<lrm_rsc_op id="{rsc}_last_0" {op} on_node="{name}"/></lrm_resource>'
            )
        text = text.replace(
            f'<node_state id="{node_id}" uname="{name}" in_ccm="true" '
            'crmd="online" join="member" expected="member"/>',
            f'<node_state id="{node_id}" uname="{name}" in_ccm="true" crmd="online" '
            f'join="member" expected="member"><transient_attributes id="{node_id}">'
            f'<instance_attributes id="ta-{node_id}"><nvpair id="ta-{node_id}-m" '
            f'name="master-r0" value="{scores[name]}"/></instance_attributes>'
            f'</transient_attributes><lrm id="{node_id}"><lrm_resources>{ops}</lrm_resources>'
            "</lrm></node_state>",
        )
    return text


def test_the_scheduler_never_promotes_the_fenced_peer() -> None:
    from hastack.cli.crm_cmds import transition_actions

    # bob has the higher promotion score: without the constraint it is promoted ...
    text = _running_on_both(cib_text(), {ALICE: 1000, BOB: 10000})
    promotions = [a for a in transition_actions(text.encode(), NOW) if "promote" in a]
    assert promotions == ["r0_promote_0 bob: r0 is promoted on bob"]
    # ... with it, alice is, whatever the scores
    root = root_of(text)
    applied(root, decide(root, view()))
    promotions = [a for a in transition_actions(etree.tostring(root), NOW) if "promote" in a]
    assert promotions == ["r0_promote_0 alice: r0 is promoted on alice"]


# --- the commands, as a drbd.conf handler runs them ---------------------------------------


def _hastack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hastack", "replica", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )


def _drbd_conf(tmp_path: Path, fencing: str) -> Path:
    conf = tmp_path / "drbd.conf"
    conf.write_text(
        f"""resource r0 {{
  disk {{ fencing {fencing}; }}
  on alice {{ device /dev/drbd0; disk /dev/null; meta-disk internal; address 127.0.0.1:7789; }}
  on bob {{ device /dev/drbd0; disk /dev/null; meta-disk internal; address 127.0.0.1:7790; }}
}}
"""
    )
    return conf


def test_fence_and_unfence_commands_edit_a_cib_file_with_drbds_environment(
    tmp_path: Path,
) -> None:
    cib = tmp_path / "cib.xml"
    cib.write_text(cib_text(online=(ALICE,)))
    env = {
        "CIB_file": str(cib),
        "DRBD_RESOURCE": "r0",
        "DRBD_PEER": BOB,
        "DRBD_CONF": str(_drbd_conf(tmp_path, "resource-and-stonith")),
    }
    # bob is not online in the file and a file has no fence history: not fenced in time
    fenced = _hastack(env, "fence-peer", "--cluster-node", ALICE, "--stonith-wait", "0.5")
    assert fenced.returncode == 5, fenced.stderr
    assert "not fenced within" in fenced.stderr
    root = root_of(cib.read_text())
    assert fenced_for(root, "drbd-fence-by-handler-r0-r0-clone") == ALICE

    cib.write_text(
        etree.tostring(root)
        .decode()
        .replace('in_ccm="false"', 'in_ccm="true"')
        .replace('crmd="offline"', 'crmd="online"')
    )
    again = _hastack(env, "fence-peer", "--cluster-node", ALICE)
    assert again.returncode == 4, again.stderr  # bob is a member now; constraint kept

    unfenced = _hastack(env, "unfence-peer")
    assert unfenced.returncode == 0, unfenced.stderr
    assert fenced_for(root_of(cib.read_text()), "drbd-fence-by-handler-r0-r0-clone") is None


def test_fence_peer_without_a_cluster_or_resource_fails_clearly(tmp_path: Path) -> None:
    env = {"DRBD_RESOURCE": "r0", "DRBD_PEER": BOB, "CIB_file": ""}
    nowhere = _hastack(env, "fence-peer", "--cluster-config", str(tmp_path))
    assert nowhere.returncode == 1
    assert "no cluster to fence through" in nowhere.stderr
    cib = tmp_path / "cib.xml"
    cib.write_text(cib_text(drbd_resource="other"))
    missing = _hastack({**env, "CIB_file": str(cib)}, "fence-peer", "--cluster-node", ALICE)
    assert missing.returncode == 1
    assert "no promotable clone" in missing.stderr
    no_env = _hastack({"DRBD_RESOURCE": "", "DRBD_PEER": ""}, "fence-peer")
    assert no_env.returncode == 1 and "DRBD_RESOURCE" in no_env.stderr
