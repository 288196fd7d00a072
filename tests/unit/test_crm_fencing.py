"""The controller and fencing: the DC fences a lost node before its resources move, waits
for the result, retries a failed fencing, computes priority-fencing-delay, and a node
without quorum under no-quorum-policy=suicide fences itself."""

from __future__ import annotations

from hastack.crm.controller import FENCE_RETRY, TWO_NODE_PRIORITY_FENCING_DELAY, Controller
from tests.unit.crm_harness import Cluster
from tests.unit.test_crm_controller import CIB, NODES

FENCED_CIB = CIB.replace(
    b'name="stonith-enabled" value="false"', b'name="stonith-enabled" value="true"'
)


def running_on_n1() -> Cluster:
    c = Cluster(FENCED_CIB, NODES)
    c.set_membership("n1", 1, NODES)
    c.run()
    assert c.where("ip") == ["n1"] and c.where("srv") == ["n1"]
    return c


def lose_n1(c: Cluster) -> None:
    c.crash("n1")
    c.set_membership("n2", 2, ["n2", "n3"])
    c.run()


def test_the_dc_fences_a_lost_node_and_moves_its_resources_only_after_success() -> None:
    c = running_on_n1()
    lose_n1(c)
    assert [(n, r.target) for n, r in c.fence_requests] == [("n2", "n1")]
    assert c.where("ip") == [] and c.where("srv") == []  # nothing moves meanwhile
    c.tick(1.0)
    assert c.where("ip") == []
    c.handle("n2", c.ctl["n2"].fence_result("n1", True, "", c.now, c.wall))
    c.run()
    assert len(c.where("ip")) == 1 and c.where("ip") != ["n1"]
    assert ("n2", "node-fenced") in [(n, e.name) for n, e in c.events]


def test_a_failed_fencing_keeps_the_resources_where_they_were_and_is_retried() -> None:
    c = running_on_n1()
    lose_n1(c)
    c.handle("n2", c.ctl["n2"].fence_result("n1", False, "PDU unreachable", c.now, c.wall))
    c.run()
    assert c.where("ip") == []
    assert any(log.event == "crm-fencing-failed" for _, log in c.logs)
    c.tick(FENCE_RETRY + 0.1)
    assert [r.target for _, r in c.fence_requests] == ["n1", "n1"]


def test_a_node_fenced_at_another_nodes_request_is_not_fenced_again() -> None:
    c = running_on_n1()
    c.crash("n1")
    # the membership layer (or an operator) fenced n1 before the DC scheduled anything
    for n in ("n2", "n3"):
        c.handle(n, c.ctl[n].node_fenced("n1"))
    c.set_membership("n2", 2, ["n2", "n3"])
    c.run()
    assert c.fence_requests == []
    assert len(c.where("ip")) == 1


TWO_CIB = FENCED_CIB.replace(b'<node id="3" uname="n3"/>', b"")


def two_node(name: str) -> Controller:
    ids = {"n1": "1", "n2": "2"}
    return Controller(name, ids, TWO_CIB, two_node=True)


def test_priority_fencing_delay_makes_the_idle_node_wait() -> None:
    c = Cluster(TWO_CIB, ["n1", "n2"])
    c.ctl = {n: two_node(n) for n in ("n1", "n2")}
    c.set_membership("n1", 1, ["n1", "n2"])
    c.run()
    assert c.where("ip") == ["n1"]
    c.set_membership(None, 1, [])  # the link breaks: each sees itself alone
    n1, n2 = c.ctl["n1"], c.ctl["n2"]
    assert n2.fence_delay("n1") == TWO_NODE_PRIORITY_FENCING_DELAY  # n1 runs the group
    assert n1.fence_delay("n2") == 0.0


def test_priority_fencing_delay_ties_go_to_the_lower_node_id_and_zero_disables() -> None:
    idle = TWO_CIB.replace(b'<rsc_location id="prefer-n1" rsc="web" node="n1" score="100"/>', b"")
    n1, n2 = (Controller(n, {"n1": "1", "n2": "2"}, idle, two_node=True) for n in ("n1", "n2"))
    assert n2.fence_delay("n1") == TWO_NODE_PRIORITY_FENCING_DELAY  # nothing runs: n1 wins
    assert n1.fence_delay("n2") == 0.0
    off = idle.replace(
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>',
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>'
        b'<nvpair id="o2" name="priority-fencing-delay" value="0"/>',
    )
    assert Controller("n2", {"n1": "1", "n2": "2"}, off, two_node=True).fence_delay("n1") == 0.0


def test_a_majority_partition_fences_without_delay() -> None:
    c = running_on_n1()
    lose_n1(c)
    assert c.fence_requests[0][1].delay == 0.0


def test_suicide_fences_the_node_itself_when_quorum_is_lost() -> None:
    cib = FENCED_CIB.replace(
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>',
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>'
        b'<nvpair id="o3" name="no-quorum-policy" value="suicide"/>',
    )
    c = Cluster(cib, NODES)
    c.set_membership("n1", 1, NODES)
    c.run()
    c.set_membership("n2", 2, ["n2", "n3"])  # n1 is cut off: no quorum there
    c.tick(1.0)
    mine = [(n, r) for n, r in c.fence_requests if n == "n1"]
    assert [(r.target, r.allow_self) for _, r in mine] == [("n1", True)]


def test_a_node_never_seen_is_fenced_only_after_the_startup_grace() -> None:
    ids = {n: str(i + 1) for i, n in enumerate(NODES)}
    c = Cluster(FENCED_CIB, NODES)
    c.ctl = {n: Controller(n, ids, FENCED_CIB, startup_grace=5.0) for n in NODES}
    c.crash("n3")  # never started
    c.set_membership("n1", 1, ["n1", "n2"])
    c.run()
    assert c.fence_requests == []
    assert any(log.event == "crm-fence-startup-wait" for _, log in c.logs)
    c.tick(5.1)
    assert [r.target for _, r in c.fence_requests] == ["n3"]


def test_fencing_is_given_up_after_stonith_max_attempts() -> None:
    cib = FENCED_CIB.replace(
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>',
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>'
        b'<nvpair id="o4" name="stonith-max-attempts" value="2"/>',
    )
    c = Cluster(cib, NODES)
    c.set_membership("n1", 1, NODES)
    c.run()
    lose_n1(c)
    for _ in range(2):
        c.handle("n2", c.ctl["n2"].fence_result("n1", False, "no", c.now, c.wall))
        c.run()
        c.tick(FENCE_RETRY + 0.1)
    assert [r.target for _, r in c.fence_requests] == ["n1", "n1"]
    assert any(log.event == "crm-fencing-given-up" for _, log in c.logs)
    c.tick(FENCE_RETRY * 3)
    assert len(c.fence_requests) == 2  # no more attempts
    # an operator's confirmation ends it: the resources move
    c.handle("n2", c.ctl["n2"].fence_result("n1", True, "", c.now, c.wall))
    c.run()
    assert len(c.where("ip")) == 1


def with_options(*pairs: tuple[str, str]) -> bytes:
    extra = b"".join(
        f'<nvpair id="x-{name}" name="{name}" value="{value}"/>'.encode() for name, value in pairs
    )
    return FENCED_CIB.replace(
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>',
        b'<nvpair id="o1" name="stonith-enabled" value="true"/>' + extra,
    )


def test_stonith_action_off_is_asked_for() -> None:
    c = Cluster(with_options(("stonith-action", "poweroff")), NODES)
    c.set_membership("n1", 1, NODES)
    c.run()
    lose_n1(c)
    assert [r.action for _, r in c.fence_requests] == ["off"]


def test_demote_policy_stops_what_is_not_a_promotable_clone() -> None:
    c = Cluster(with_options(("no-quorum-policy", "demote")), NODES)
    c.set_membership("n1", 1, NODES)
    c.run()
    assert c.where("ip") == ["n1"]
    c.set_membership("n2", 2, ["n2", "n3"])  # n1 alone: no quorum
    c.tick(1.0)
    assert c.fake["n1"].running == {}  # a plain group is stopped, not left running


def test_a_joining_node_that_flickers_out_of_quorum_does_not_apply_suicide() -> None:
    from hastack.crm.controller import MembershipView

    ctl = Controller(
        "n3",
        {n: str(i + 1) for i, n in enumerate(NODES)},
        with_options(("no-quorum-policy", "suicide")),
    )
    wall = 1_800_000_000.0
    ctl.membership_changed(MembershipView(None, 0, False, tuple(NODES), True), 1.0, wall)
    # the new DC's first list does not hold n3 yet: no quorum for a moment
    effects = ctl.membership_changed(MembershipView("n1", 1, False, ("n1", "n2"), False), 2.0, wall)
    effects += ctl.tick(10.0, wall + 8)
    assert not [e for e in effects if type(e).__name__ == "FenceRequest"]
    # once a member, losing quorum applies the policy
    ctl.membership_changed(MembershipView("n1", 1, False, tuple(NODES), True), 11.0, wall + 9)
    later = ctl.membership_changed(MembershipView(None, 1, False, ("n3",), False), 12.0, wall)
    later += ctl.tick(20.0, wall + 18)
    assert [e.target for e in later if type(e).__name__ == "FenceRequest"] == ["n3"]


def test_a_fenced_node_that_came_back_is_fenced_again_by_any_later_dc() -> None:
    """Found by the Jepsen run: a node other than the DC of the moment kept a fenced node
    as fenced after it rejoined; once DC, with that node missing, it took the node for
    clean and down, and moved its resources without fencing it."""
    from hastack.crm.controller import MembershipView

    ids = {n: str(i + 1) for i, n in enumerate(NODES)}
    n3 = Controller("n3", ids, FENCED_CIB)
    wall = 1_800_000_000.0
    n3.membership_changed(MembershipView("n2", 1, False, tuple(NODES), True), 1.0, wall)
    n3.membership_changed(MembershipView("n2", 1, False, ("n2", "n3"), True), 2.0, wall)
    n3.fence_result("n1", True, "", 2.5, wall, fresh=False)  # n2 fenced n1
    assert "n1" in n3.fenced_nodes
    n3.membership_changed(MembershipView("n2", 1, False, tuple(NODES), True), 3.0, wall)
    assert "n1" not in n3.fenced_nodes  # n1 is back
    # later n1 is lost again and n3 becomes DC without it: n1 must be fenced again
    n3.membership_changed(MembershipView("n3", 2, True, ("n2", "n3"), True), 4.0, wall)
    states = n3.states
    assert states["n1"].expected != "down"


def test_a_node_fenced_while_listed_stays_fenced_until_it_returns() -> None:
    from hastack.crm.controller import MembershipView

    ids = {n: str(i + 1) for i, n in enumerate(NODES)}
    n2 = Controller("n2", ids, FENCED_CIB)
    wall = 1_800_000_000.0
    n2.membership_changed(MembershipView("n1", 1, False, tuple(NODES), True), 1.0, wall)
    n2.fence_result("n3", True, "", 1.5, wall)  # its stop failed: fenced while listed
    n2.membership_changed(MembershipView("n1", 1, False, tuple(NODES), True), 2.0, wall + 1)
    assert "n3" in n2.fenced_nodes
    n2.membership_changed(MembershipView("n1", 1, False, ("n1", "n2"), True), 3.0, wall)
    n2.membership_changed(MembershipView("n1", 1, False, tuple(NODES), True), 4.0, wall)
    assert "n3" not in n2.fenced_nodes
