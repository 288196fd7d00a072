"""Everything a membership core needs to know, taken from a ClusterConfig or built directly
(the simulator builds them without files)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from hastack.config.model import AuthKeys, ClusterConfig, NodeSpec, PingGroup, Timing


@dataclass(frozen=True)
class CoreParams:
    cluster_name: str
    nodes: tuple[NodeSpec, ...]
    links: tuple[str, ...]  # link names, as Link.name
    timing: Timing
    authkeys: AuthKeys
    two_node: bool = False
    wait_for_all: bool = False
    expected_votes: int | None = None  # None: sum of the nodes' votes
    ping: tuple[str, ...] = ()
    ping_groups: tuple[PingGroup, ...] = ()
    quorum_device: bool = False  # a quorum server adds one vote (ha.cf quorum_server)

    @cached_property  # asked on every DC acknowledgement; the parameters never change
    def total_votes(self) -> int:
        if self.expected_votes is not None:
            return self.expected_votes
        return sum(n.votes for n in self.nodes) + (1 if self.quorum_device else 0)

    def spec(self, name: str) -> NodeSpec | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    @classmethod
    def from_config(cls, config: ClusterConfig) -> CoreParams:
        hacf = config.hacf
        assert hacf.timing is not None
        return cls(
            cluster_name=hacf.cluster_name,
            nodes=hacf.nodes,
            links=tuple(link.name for link in hacf.links),
            timing=hacf.timing,
            authkeys=config.authkeys,
            # as votequorum: a quorum device replaces the two-node special case
            two_node=hacf.two_node and hacf.quorum_server is None,
            wait_for_all=hacf.wait_for_all,
            expected_votes=hacf.expected_votes,
            ping=hacf.ping,
            ping_groups=hacf.ping_groups,
            quorum_device=hacf.quorum_server is not None,
        )
