"""Time bounds of the liveness invariants, derived from the timing model.

All timers run on the nodes' local clocks; a local interval x lasts at most x / (1 - d) real
seconds for the drift bound d, so every term below is divided by (1 - d). `max_delay` is the
clean network's worst one-way delay (base + jitter); faults add their own delays, but a period
only counts as stable once every datagram sent under a fault has been delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from hastack.config.model import Timing

ELECTION_ATTEMPTS = 2  # a clean quorate partition may lose one election to a vote split


@dataclass(frozen=True)
class Bounds:
    settle: float  # (b) a stable symmetric partition has quorum on at most one side after this
    elect: float  # (c) a stable quorate partition has a DC after this
    converge: float  # (d) a clean network has one member list and one DC after this
    sample: float  # how often (b), (c) and (d) are evaluated


def derive_bounds(timing: Timing, nodes: int, max_delay: float) -> Bounds:
    t = timing
    slow = 1.0 / (1.0 - t.max_drift)  # local seconds -> worst-case real seconds
    hop = t.keepalive + max_delay  # one heartbeat interval plus its flight
    # (b) The far side's heartbeats stop at the cut. A node stops counting a peer after
    # deadtime; a member list relayed by a neighbour stays fresh for one more deadtime (the
    # neighbour relays the DC until it too has not heard it for deadtime), and the next tick
    # that re-evaluates quorum comes within a keepalive.
    settle = slow * (2 * t.deadtime + 2 * t.keepalive) + 2 * max_delay
    # (c) Everything that may hold an election back is started before the period starts and
    # runs in parallel: a vote given to a DC now cut off binds for `lease`; a DC heard (directly
    # or relayed) stays "fresh" for up to 2 x deadtime; a restarted node waits `initdead` for
    # its peers and `quiet` before it votes. Then the candidates need a heartbeat round to see
    # each other (the rank order needs to know who hears whom), and each election attempt costs
    # at most election_timeout (waiting for votes) + election_timeout x (1 + rank) (back-off)
    # + 2 x election_timeout x rank (the rank stagger), rank <= nodes - 1.
    clear = max(t.lease, 2 * t.deadtime, t.initdead, t.quiet)
    rank = nodes - 1
    attempt = t.election_timeout * (1 + (1 + rank) + 2 * rank)
    elect = slow * (clear + 2 * hop + ELECTION_ATTEMPTS * attempt) + 4 * max_delay
    # (d) After (c) the DC exists; members that were cut off hear it within a heartbeat, vote
    # for it on its next lease round, the DC folds their votes into a new member list on its
    # next round, and everyone adopts that list from the round after: three more heartbeats.
    converge = elect + slow * 3 * hop
    return Bounds(settle=settle, elect=elect, converge=converge, sample=t.keepalive / 2)
