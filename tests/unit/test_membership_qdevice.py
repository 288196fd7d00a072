"""The quorum server's vote and the operator's forced quorum in the membership core."""

from __future__ import annotations

from dataclasses import replace

from membership_net import Net, params

from hastack.membership.params import CoreParams


def qparams(n: int = 2) -> CoreParams:
    return replace(params(n), quorum_device=True)


def test_a_quorum_device_adds_one_expected_vote() -> None:
    assert qparams(2).total_votes == 3
    assert params(2).total_votes == 2


def test_both_sites_up_need_no_quorum_server() -> None:
    net = Net(qparams(2))
    net.start("n1", "n2")
    net.run_until(3.0)
    assert len(net.dc()) == 1
    assert all(c.quorate(net.now) for c in net.cores.values())


def test_a_lone_site_has_quorum_only_while_it_holds_the_servers_vote() -> None:
    net = Net(qparams(2))
    net.start("n2")
    net.run_until(2.0)
    core = net.cores["n2"]
    assert not core.quorate(net.now) and net.dc() == []
    net.deliver("n2", core.quorum_device(net.now + 1.5, net.now))
    assert core.quorate(net.now)
    net.run_until(net.now + 1.0)
    assert net.dc() == ["n2"]
    # the DC's lease lasts no longer than the vote it needed
    assert core.leader is not None and core.leader.lease_end <= core.q_until
    net.run_until(net.now + 1.0)  # the vote is not renewed: quorum and the DC are gone
    assert not core.quorate(net.now)
    assert not core.is_dc(net.now)


def test_a_withdrawn_vote_ends_quorum_at_once() -> None:
    net = Net(qparams(2))
    net.start("n2")
    net.run_until(2.0)
    core = net.cores["n2"]
    net.deliver("n2", core.quorum_device(net.now + 30.0, net.now))
    assert core.quorate(net.now)
    net.deliver("n2", core.quorum_device(None, net.now))
    assert not core.quorate(net.now)


def test_forced_quorum_counts_the_nodes_heard_and_is_undone() -> None:
    net = Net(params(3))
    net.start("n3")
    net.run_until(2.0)
    core = net.cores["n3"]
    assert not core.quorate(net.now)
    net.deliver("n3", core.force_quorum(True, net.now))
    assert core.quorate(net.now) and core.status(net.now).forced_expected_votes == 1
    net.run_until(net.now + 1.0)
    assert net.dc() == ["n3"]
    net.deliver("n3", core.force_quorum(False, net.now))
    assert not core.quorate(net.now)
    assert core.status(net.now).forced_expected_votes is None
    assert net.events("n3", "quorum-forced")


def test_a_dc_proves_a_fresh_quorum_before_it_fences_and_a_cut_off_dc_cannot() -> None:
    net = Net(params(3))
    net.start()
    net.run_until(3.0)
    (dc,) = net.dc()
    core = net.cores[dc]
    decided = net.now
    assert core.quorum_acked_since(decided, net.now) is False  # no round acked yet
    net.run_until(net.now + 0.3)  # a heartbeat round and its acknowledgements
    assert core.quorum_acked_since(decided, net.now) is True
    other = next(n for n in net.cores if n != dc)
    assert net.cores[other].quorum_acked_since(decided, net.now) is None  # not the DC
    # the DC is cut off from both others: it keeps its lease a while, never the proof
    net.allow = lambda src, dst, link: dc not in (src, dst)
    cut_at = net.now
    proofs = []
    while core.is_dc(net.now):
        proofs.append(core.quorum_acked_since(cut_at + 0.15, net.now))
        net.run_until(net.now + 0.05)
    assert proofs and not any(proofs)
    assert core.quorum_acked_since(cut_at, net.now) is None


def test_a_grant_for_both_sites_counts_for_neither_half_after_a_cut() -> None:
    """The server granted its vote to the partition {n1,n2}: both nodes hold the grant. Cut
    in two, neither site may count it with its own vote alone (until the server grants it
    again, for that site): both would lead while the grants last (found by the simulator)."""
    net = Net(qparams(2))
    net.start()
    net.run_until(3.0)
    for name, core in net.cores.items():
        net.deliver(name, core.quorum_device(net.now + 2.0, net.now))
    net.run_until(3.5)
    assert len(net.dc()) == 1
    net.allow = lambda src, dst, link: False  # n1 | n2, and the grants are not renewed
    net.run_until(6.0)  # Net checks after every step that there are never two DCs
    assert net.dc() == []
    assert not any(core.quorate(net.now) for core in net.cores.values())
