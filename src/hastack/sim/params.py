"""CoreParams for a simulated cluster, built directly (no configuration files)."""

from __future__ import annotations

from dataclasses import replace

from hastack.config.model import AuthKey, AuthKeys, NodeSpec, Timing
from hastack.membership.params import CoreParams

SIM_LINKS: tuple[str, ...] = ("ucast eth0", "ucast eth1")
SIM_PING: tuple[str, ...] = ("192.0.2.254",)  # TEST-NET-1: only ever simulated, never sent
SIM_KEYS = AuthKeys(active=1, keys={1: AuthKey(1, "sha256", b"simkey")})


def node_name(index: int) -> str:
    return f"n{index + 1}"


def sim_timing(keepalive: float, deadtime: float) -> Timing:
    """The stack's timing model for these two knobs (hastack.config.timing when it exists)."""
    try:
        from hastack.config.timing import derive_timing
    except ImportError:
        return _fallback_timing(keepalive, deadtime)
    return derive_timing(keepalive=keepalive, deadtime=deadtime)


def _fallback_timing(keepalive: float, deadtime: float) -> Timing:
    # Used only until hastack.config.timing lands; same shape, conservative relations:
    # a voter's lease outlasts the DC's by the drift bound in both directions.
    drift = 0.01
    lease = deadtime
    return Timing(
        keepalive=keepalive,
        warntime=(keepalive + deadtime) / 2,
        deadtime=deadtime,
        initdead=2 * deadtime,
        deadping=deadtime,
        max_drift=drift,
        lease=lease,
        dc_lease=lease * (1 - drift) / (1 + drift) - keepalive / 10,
        quiet=lease,
        election_timeout=2 * keepalive,
        stall_threshold=keepalive,
        read_interval=keepalive / 4,
    )


def sim_params(
    nodes: int,
    keepalive: float = 0.1,
    deadtime: float = 0.5,
    links: tuple[str, ...] = SIM_LINKS,
    ping: tuple[str, ...] = SIM_PING,
    timing: Timing | None = None,
) -> CoreParams:
    """A cluster of `nodes` one-vote nodes n1..nN on `links` (two nodes: `two_node`)."""
    return CoreParams(
        cluster_name="sim",
        nodes=tuple(NodeSpec(node_name(i), i + 1, 1) for i in range(nodes)),
        links=links,
        timing=timing or sim_timing(keepalive, deadtime),
        authkeys=SIM_KEYS,
        # two nodes: votequorum's two_node + wait_for_all (a lone node keeps quorum, after
        # fencing its peer; a restarted one waits until it has seen its peer)
        two_node=nodes == 2,
        wait_for_all=nodes == 2,
        ping=ping,
    )


def with_quorum_server(params: CoreParams) -> CoreParams:
    """The same cluster with ha.cf's `quorum_server` (CoreParams.from_config): one more
    expected vote, and two_node off (as votequorum with a quorum device). wait_for_all stays
    as it was: ha.cf's default for it is two_node's setting, whatever the server."""
    return replace(params, quorum_device=True, two_node=False)
