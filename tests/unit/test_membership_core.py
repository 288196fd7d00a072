"""Behaviour of one membership core and of a few cores talking over a perfect network."""

from __future__ import annotations

import pytest
from membership_net import KEYS, Net, params

from hastack.config.model import PingGroup
from hastack.membership.codec import Message, decode, encode
from hastack.membership.core import MembershipCore
from hastack.membership.effects import Send, SendPing


def test_three_nodes_elect_the_lowest_id_once_and_agree_on_members() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(3.0)
    assert net.dc() == ["n1"]
    for core in net.cores.values():
        status = core.status(net.now)
        assert status.dc == "n1"
        assert status.quorate
        assert status.members == ["n1", "n2", "n3"]
        assert status.votes == 3 and status.quorum == 2
    versions = {tuple(c.status(net.now).members_version) for c in net.cores.values()}
    assert len(versions) == 1


def test_killed_node_is_declared_dead_after_deadtime_and_not_before() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    net.crash("n3")
    net.run_until(2.0 + 0.5 - 0.1 - 0.01)  # last heartbeat was at most a keepalive before
    assert net.cores["n1"].status(net.now).nodes["n3"].state == "online"
    net.run_until(2.6)
    assert net.cores["n1"].status(net.now).nodes["n3"].state == "offline"
    dead = net.events("n1", "node-dead")
    assert dead and dead[0].fields["node"] == "n3"
    assert net.events("n1", "heartbeat-late"), "warntime passes before deadtime"
    assert net.cores["n1"].status(net.now).members == ["n1", "n2"]


def test_dc_killed_new_dc_within_deadtime_plus_margin() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    assert net.dc() == ["n1"]
    net.crash("n1")
    killed = net.now
    net.run_until(killed + 0.5 + 0.2)
    assert net.dc() == ["n2"]
    elected = net.events("n2", "dc-elected")[-1]
    assert elected.fields["term"] > 1


def test_one_node_of_three_is_not_quorate_and_never_dc() -> None:
    net = Net(params(3))
    net.start("n3")
    net.run_until(5.0)
    status = net.cores["n3"].status(net.now)
    assert not status.quorate
    assert status.dc is None and net.dc() == []


def test_second_link_keeps_a_node_online_and_the_cut_link_is_reported() -> None:
    net = Net(params(2, links=("ucast eth0", "ucast eth1")))
    net.start()
    net.run_until(1.0)
    net.allow = lambda src, dst, link: link != "ucast eth0"
    net.run_until(3.0)
    peer = net.cores["n1"].status(net.now).nodes["n2"]
    assert peer.state == "online"
    assert peer.links == {"ucast eth0": "down", "ucast eth1": "up"}
    assert net.events("n1", "link-down") and not net.events("n1", "node-dead")


def test_replayed_datagram_is_dropped_and_other_link_copy_is_a_duplicate() -> None:
    p = params(2, links=("a", "b"))
    core = MembershipCore(p, "n1", 1, 0.0)
    msg = Message(cluster="unit", node="n2", generation=1, seq=1, type="hb")
    data = encode(msg, KEYS)
    core.receive(data, "a", 0.1)
    core.receive(data, "a", 0.2)
    core.receive(data, "b", 0.3)
    assert core.counters["drop_replay"] == 1
    assert core.counters["duplicate"] == 1
    assert core.status(0.3).nodes["n2"].links == {"a": "up", "b": "up"}


def test_older_generation_is_dropped_as_replay() -> None:
    core = MembershipCore(params(2), "n1", 1, 0.0)
    new = encode(Message(cluster="unit", node="n2", generation=5, seq=1, type="hb"), KEYS)
    old = encode(Message(cluster="unit", node="n2", generation=4, seq=9, type="hb"), KEYS)
    core.receive(new, "ucast eth0", 0.1)
    core.receive(old, "ucast eth0", 0.2)
    assert core.counters["drop_replay"] == 1
    assert core.status(0.2).nodes["n2"].generation == 5


def test_own_datagrams_looped_back_are_recognised() -> None:
    """Broadcast hands a node its own heartbeats: they are counted as its own, whether
    recognised byte for byte (recently sent) or by the sender name after decoding."""
    core = MembershipCore(params(2), "n1", 1, 0.0)
    sent = [e.data for e in core.start(0.0) if isinstance(e, Send)]
    assert sent
    core.receive(sent[0], "ucast eth0", 0.01)
    older = encode(Message(cluster="unit", node="n1", generation=1, seq=99, type="hb"), KEYS)
    core.receive(older, "ucast eth0", 0.02)
    assert core.counters["own"] == 2
    assert core.counters["rx"] == 0 and core.counters["drop_replay"] == 0


def test_decoded_attributes_are_read_only() -> None:
    """One parsed text part is shared by many decoded messages: nobody may change it."""
    data = encode(
        Message(cluster="unit", node="n1", generation=1, seq=1, type="hb", attributes={"p": 5}),
        KEYS,
    )
    msg = decode(data, KEYS, "unit")
    assert isinstance(msg, Message) and msg.attributes == {"p": 5}
    with pytest.raises(TypeError):
        msg.attributes["p"] = 6  # type: ignore[index]


def test_garbage_and_foreign_messages_are_counted_never_raised() -> None:
    core = MembershipCore(params(2), "n1", 1, 0.0)
    core.receive(b"\x00\xff garbage", "ucast eth0", 0.1)
    other = encode(Message(cluster="other", node="n2", generation=1, seq=1, type="hb"), KEYS)
    core.receive(other, "ucast eth0", 0.1)
    stranger = encode(Message(cluster="unit", node="n9", generation=1, seq=1, type="hb"), KEYS)
    core.receive(stranger, "ucast eth0", 0.1)
    assert core.counters["drop_malformed"] == 1
    assert core.counters["drop_cluster"] == 1
    assert core.counters["drop_unknown_node"] == 1


def vote_of(send: Send) -> Message:
    vote = decode(send.data, KEYS, "unit")
    assert isinstance(vote, Message) and vote.type == "vote", vote
    return vote


def test_voter_refuses_a_second_candidate_while_its_vote_binds() -> None:
    core = MembershipCore(params(3), "n3", 1, 0.0)
    now = 1.0  # after the quiet period
    first = encode(
        Message(cluster="unit", node="n1", generation=1, seq=1, type="vreq", term=1), KEYS
    )
    second = encode(
        Message(cluster="unit", node="n2", generation=1, seq=1, type="vreq", term=2), KEYS
    )
    (vote1,) = [e for e in core.receive(first, "ucast eth0", now) if isinstance(e, Send)]
    (vote2,) = [e for e in core.receive(second, "ucast eth0", now + 0.1) if isinstance(e, Send)]
    assert vote_of(vote1).ok and vote_of(vote1).to == "n1"
    assert not vote_of(vote2).ok and vote_of(vote2).to == "n2"
    later = encode(
        Message(cluster="unit", node="n2", generation=1, seq=2, type="vreq", term=3), KEYS
    )
    (vote3,) = [e for e in core.receive(later, "ucast eth0", now + 0.6) if isinstance(e, Send)]
    assert vote_of(vote3).ok, "the first vote expired after the lease"


def test_restarted_node_votes_for_nobody_during_its_quiet_period() -> None:
    core = MembershipCore(params(3), "n3", 2, 10.0)
    req = encode(Message(cluster="unit", node="n1", generation=1, seq=1, type="vreq", term=7), KEYS)
    (vote,) = [e for e in core.receive(req, "ucast eth0", 10.2) if isinstance(e, Send)]
    assert not vote_of(vote).ok


def test_dc_without_acknowledgements_stops_acting_before_voters_release() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    assert net.dc() == ["n1"]
    net.allow = lambda src, dst, link: src != "n1" and dst != "n1"  # isolate the DC
    cut = net.now
    timing = net.params.timing
    net.run_until(cut + timing.dc_lease + 0.01)
    assert not net.cores["n1"].is_dc(net.now)
    net.run_until(cut + 2.0)
    assert net.dc() == ["n2"]  # the majority side took over; Net asserts never two DCs
    assert not net.cores["n1"].status(net.now).quorate


def test_healed_partition_rejoins_one_member_list() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    net.allow = lambda src, dst, link: "n1" not in (src, dst)
    net.run_until(4.0)
    net.allow = lambda src, dst, link: True
    net.run_until(7.0)
    lists = {tuple(c.status(net.now).members) for c in net.cores.values()}
    dcs = {c.status(net.now).dc for c in net.cores.values()}
    assert lists == {("n1", "n2", "n3")}
    assert len(dcs) == 1 and None not in dcs


def test_clean_leave_lets_the_others_elect_without_waiting_for_deadtime() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    net.deliver("n1", net.cores["n1"].leave(net.now))
    left = net.now
    net.run_until(left + 0.3)
    assert net.dc() == ["n2"]
    assert net.cores["n2"].status(net.now).nodes["n1"].state == "left"


def test_two_node_survivor_fences_its_peer_before_it_leads() -> None:
    net = Net(params(2, two_node=True, wait_for_all=True))
    net.start()
    net.run_until(2.0)
    assert len(net.dc()) == 1
    leader = net.dc()[0]
    other = "n2" if leader == "n1" else "n1"
    net.crash(leader)
    net.run_until(3.5)
    assert (other, leader) in net.fences
    assert net.dc() == []
    net.deliver(other, net.cores[other].fence_done(leader, True, net.now))
    assert net.dc() == [other]  # at once: not at its next timer
    net.run_until(4.0)
    assert net.dc() == [other]


def test_two_node_dc_fences_its_lost_peer_and_leads_on_without_standing_again() -> None:
    net = Net(params(2, two_node=True, wait_for_all=True))
    net.start()
    net.run_until(2.0)
    (leader,) = net.dc()
    other = "n2" if leader == "n1" else "n1"
    elections = len(net.events(leader, "election"))
    net.crash(other)
    net.run_until(2.6)  # deadtime 0.5 s: the peer is dead, its acknowledgements are gone
    assert (leader, other) in net.fences
    net.deliver(leader, net.cores[leader].fence_done(other, True, net.now))
    assert net.dc() == [leader]  # the fenced vote renewed the lease at once
    net.run_until(4.0)  # well past the lease the lost peer last acknowledged, and its grace
    assert net.dc() == [leader]
    assert not net.events(leader, "dc-lost")
    assert len(net.events(leader, "election")) == elections


def test_wait_for_all_is_not_quorate_until_every_node_was_seen() -> None:
    net = Net(params(2, two_node=True, wait_for_all=True))
    net.start("n1")
    net.run_until(5.0)
    assert not net.cores["n1"].status(net.now).quorate
    assert net.fences == []


def test_stalled_loop_is_reported_and_gives_queued_heartbeats_a_chance() -> None:
    core = MembershipCore(params(2), "n1", 1, 0.0)
    hb = encode(Message(cluster="unit", node="n2", generation=1, seq=1, type="hb"), KEYS)
    core.receive(hb, "ucast eth0", 0.05)
    core.next_deadline()
    effects = core.tick(3.0)  # the process was stopped for about three seconds
    events = [e.event for e in effects if hasattr(e, "event")]
    assert "loop-stall" in events
    assert "node-dead" not in events
    assert core.counters["loop_stalls"] == 1


def test_ping_nodes_and_groups_give_the_pingd_attribute() -> None:
    group = PingGroup("routers", ("192.0.2.1", "192.0.2.2"))
    core = MembershipCore(params(2, ping=("192.0.2.9",), ping_groups=(group,)), "n1", 1, 0.0)
    effects = core.start(0.0) + core.tick(0.0)
    targets = {e.target for e in effects if isinstance(e, SendPing)}
    assert targets == {"192.0.2.9", "192.0.2.1", "192.0.2.2"}
    core.ping_reply("192.0.2.2", 0.05)
    assert core.pingd() == 1
    assert core.status(0.05).ping == {"192.0.2.9": "down", "routers": "up"}
    core.ping_reply("192.0.2.9", 0.06)
    assert core.pingd() == 2
    core.tick(0.06 + 0.5)  # deadping passed without replies
    assert core.pingd() == 0


def test_node_not_in_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the configuration"):
        MembershipCore(params(2), "stranger", 1, 0.0)


def test_survivors_agree_on_the_new_dc_and_members_within_a_round_trip() -> None:
    net = Net(params(4))
    net.start()
    net.run_until(2.0)
    net.crash("n1")
    killed = net.now
    net.run_until(killed + 0.5)  # deadtime: the old DC's votes have run out by now
    elected = net.events("n2", "dc-elected")
    assert elected, "the preferred candidate stands as soon as the votes for n1 expire"
    net.run_until(net.now + 0.02)  # a few round trips, well under one keepalive
    views = {(c.status(net.now).dc, tuple(c.status(net.now).members)) for c in net.cores.values()}
    assert views == {("n2", ("n2", "n3", "n4"))}


def test_copy_from_a_superseded_generation_is_a_replay() -> None:
    core = MembershipCore(params(2, links=("a", "b")), "n1", 1, 0.0)
    old = encode(Message(cluster="unit", node="n2", generation=1, seq=5, type="hb"), KEYS)
    new = encode(Message(cluster="unit", node="n2", generation=2, seq=1, type="hb"), KEYS)
    core.receive(old, "a", 0.1)
    core.receive(new, "a", 0.2)  # n2 restarted
    core.receive(old, "b", 0.3)  # a late copy of the old incarnation's datagram
    assert core.counters["drop_replay"] == 1
    assert core.counters["duplicate"] == 0
    assert core.status(0.3).nodes["n2"].generation == 2


def test_dc_moves_to_a_newer_term_so_a_node_that_lost_an_election_can_follow() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(2.0)
    term = net.cores["n1"].status(net.now).term
    # n2 stood in the DC's own term and lost (as when two candidates run at once): its released
    # vote for itself keeps it, by rule V.2, from ever voting for n1 in that term.
    n2 = net.cores["n2"]
    n2.voted_term, n2.voted_for, n2.grant_until = term, "n2", net.now
    net.run_until(3.0)
    moved = net.events("n1", "dc-term")
    assert moved and moved[0].fields["old_term"] == term
    status = net.cores["n1"].status(net.now)
    assert status.term > term and status.members == ["n1", "n2", "n3"]
    assert net.dc() == ["n1"], "the same DC throughout: moving terms is not a re-election"
