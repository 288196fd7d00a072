"""A node's view of the cluster, as `hastack status` shows it (to_json is the --json form)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

NodeState = Literal["online", "offline", "unknown", "left"]


@dataclass(frozen=True)
class PeerStatus:
    name: str
    node_id: int
    votes: int
    state: NodeState  # unknown: not heard since start and initdead not yet over
    links: dict[str, Literal["up", "down"]]  # per link; a down link alone is not a failover
    generation: int | None
    last_heard: float | None  # seconds ago, on the local clock
    attributes: dict[str, int] = field(default_factory=dict)  # e.g. {"pingd": 2}


@dataclass(frozen=True)
class NodeStatus:
    node: str
    generation: int
    dc: str | None  # the DC this node knows of (itself included), None when there is none
    term: int  # the DC's term, or the highest term seen
    is_dc: bool  # this node holds a valid DC lease now
    quorate: bool
    votes: int  # votes of the members
    expected_votes: int
    quorum: int  # votes needed
    members: list[str]
    members_version: list[int]  # [term, counter]
    nodes: dict[str, PeerStatus]
    ping: dict[str, Literal["up", "down"]]  # ping nodes and groups, from this node
    counters: dict[str, int]  # received / dropped-by-reason / sent
    # the quorum server (ha.cf quorum_server): None when none is configured, else whether
    # this node holds its vote now; and an operator's expected-votes override (quorum force)
    quorum_device_vote: bool | None = None
    forced_expected_votes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
