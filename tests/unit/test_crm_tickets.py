"""hastack.crm.tickets: what an rsc_ticket does when its ticket is not granted or in standby."""

from __future__ import annotations

import pytest

from hastack.crm.cib.model import Cib
from hastack.crm.cib.xml import read_cib
from hastack.crm.state import resource_states
from hastack.crm.tickets import FENCE_REASON, TicketLoss, ticket_fencing, ticket_losses

BASE = """<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="1" num_updates="0">
  <configuration>
    <crm_config><cluster_property_set id="o">
      <nvpair id="o-s" name="stonith-enabled" value="{stonith}"/>
    </cluster_property_set></crm_config>
    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
    <resources>
      <primitive id="fence" class="stonith" type="null"/>
      <primitive id="rsc1" class="ocf" provider="pacemaker" type="Dummy"/>
      <group id="grp">
        <primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/>
        <primitive id="b" class="ocf" provider="pacemaker" type="Dummy"/>
      </group>
    </resources>
    <constraints>{constraints}</constraints>
    <tags><tag id="both"><obj_ref id="rsc1"/><obj_ref id="grp"/></tag></tags>
  </configuration>
  <status>
    {tickets}
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member"
        expected="member">
      <lrm id="2"><lrm_resources>
        <lrm_resource id="rsc1" class="ocf" provider="pacemaker" type="Dummy">
          <lrm_rsc_op id="rsc1_last_0" operation_key="rsc1_start_0" operation="start"
            call-id="3" rc-code="0" op-status="0" interval="0" crm_feature_set="3.0.14"
            transition-key="1:1:0:x" transition-magic="0:0;1:1:0:x" op-digest="x"/>
        </lrm_resource>
      </lrm_resources></lrm>
    </node_state>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
        expected="member"/>
  </status>
</cib>"""


def cib(constraints: str, tickets: str = "", stonith: str = "true") -> Cib:
    text = BASE.format(constraints=constraints, tickets=tickets, stonith=stonith)
    return read_cib(text.encode())


def dep(policy: str | None = None, rsc: str = "rsc1", role: str | None = None) -> str:
    extra = f' loss-policy="{policy}"' if policy else ""
    extra += f' rsc-role="{role}"' if role else ""
    return f'<rsc_ticket id="t-{rsc}" rsc="{rsc}" ticket="tA"{extra}/>'


def state(granted: str | None = None, standby: str | None = None) -> str:
    if granted is None and standby is None:
        return ""
    attrs = f' granted="{granted}"' if granted is not None else ""
    attrs += f' standby="{standby}"' if standby is not None else ""
    return f'<tickets><ticket_state id="tA"{attrs}/></tickets>'


def actions(c: Cib) -> list[tuple[str, str]]:
    return [(loss.rsc, loss.action) for loss in ticket_losses(c)]


def test_a_granted_ticket_holds_nothing_back() -> None:
    assert ticket_losses(cib(dep("fence"), state("true"))) == []


@pytest.mark.parametrize("policy", ["stop", "fence", "freeze"])
def test_a_ticket_never_granted_applies_the_loss_policy(policy: str) -> None:
    assert actions(cib(dep(policy))) == [("rsc1", policy)]
    assert actions(cib(dep(policy), state("false"))) == [("rsc1", policy)]


def test_the_default_loss_policy_is_stop_and_an_unknown_one_stops() -> None:
    assert actions(cib(dep())) == [("rsc1", "stop")]
    assert actions(cib(dep("explode"))) == [("rsc1", "stop")]


def test_demote_stops_what_is_not_promoted_and_demotes_what_is() -> None:
    assert actions(cib(dep("demote"))) == [("rsc1", "stop")]
    assert actions(cib(dep("demote", role="Master"))) == [("rsc1", "demote")]


@pytest.mark.parametrize("policy", ["stop", "demote", "fence", "freeze"])
def test_standby_stops_gracefully_whatever_the_policy(policy: str) -> None:
    losses = ticket_losses(cib(dep(policy), state("true", "true")))
    assert [(loss.action, loss.standby) for loss in losses] == [("stop", True)]
    assert "standby" in losses[0].why


def test_standby_demotes_a_promoted_role_unless_the_policy_is_stop() -> None:
    standby = state("true", "true")
    assert actions(cib(dep("fence", role="Promoted"), standby)) == [("rsc1", "demote")]
    assert actions(cib(dep("freeze", role="Promoted"), standby)) == [("rsc1", "demote")]
    assert actions(cib(dep("stop", role="Promoted"), standby)) == [("rsc1", "stop")]


def test_standby_of_a_revoked_ticket_still_applies_the_policy() -> None:
    assert actions(cib(dep("fence"), state("false", "true"))) == [("rsc1", "fence")]


def test_sets_tags_and_missing_resources() -> None:
    sets = (
        '<rsc_ticket id="ts" ticket="tA"><resource_set id="ts-1" role="Promoted">'
        '<resource_ref id="rsc1"/><resource_ref id="nope"/></resource_set>'
        '<resource_set id="ts-2"><resource_ref id="grp"/></resource_set></rsc_ticket>'
    )
    losses = ticket_losses(cib(sets))
    assert [(x.rsc, x.role) for x in losses] == [("rsc1", "Promoted"), ("grp", None)]
    tagged = ticket_losses(cib('<rsc_ticket id="tt" rsc="both" ticket="tA"/>'))
    assert [x.rsc for x in tagged] == ["rsc1", "grp"]


def test_fencing_the_nodes_where_the_resource_is_active() -> None:
    c = cib(dep("fence"), state("false"))
    assert ticket_fencing(c, resource_states(c)) == {"node2": FENCE_REASON}
    # the group is active nowhere: nothing to fence for it
    g = cib(dep("fence", rsc="grp"), state("false"))
    assert ticket_fencing(g, resource_states(g)) == {}


def test_no_fencing_without_stonith_enabled() -> None:
    c = cib(dep("fence"), state("false"), stonith="false")
    assert ticket_fencing(c, resource_states(c)) == {}


def test_a_promoted_role_dependency_fences_only_where_it_is_promoted() -> None:
    c = cib(dep("fence", role="Promoted"), state("false"))
    assert ticket_fencing(c, resource_states(c)) == {}  # rsc1 runs, but is not promoted


def test_the_reason_names_the_ticket_and_the_constraint() -> None:
    loss = TicketLoss("rsc1", "tA", "t-rsc1", "freeze")
    assert loss.why == "ticket tA is not granted (t-rsc1, loss-policy freeze)"
