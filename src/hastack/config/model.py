"""The typed, frozen result of reading a configuration directory.

Every parser in `hastack.config` produces these objects; nothing else in hastack reads
configuration files. Durations are float seconds; every field carries the value heartbeat
would use when the directive is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LinkKind = Literal["ucast", "mcast", "bcast", "serial"]
AuthMethod = Literal["crc", "md5", "sha1", "sha256"]


@dataclass(frozen=True)
class Source:
    """Where a value came from, for error messages: file and 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Link:
    """One heartbeat medium line of ha.cf.

    `name` identifies the link in status output and in the membership core: for UDP links it
    is "<kind> <interface>" (for example "ucast eth1"), for serial links the device path.
    A ucast directive lists one peer address; all ucast lines on one interface form one link.
    """

    kind: LinkKind
    name: str
    interface: str | None = None  # ucast/mcast/bcast
    addresses: tuple[str, ...] = ()  # ucast peers, or the mcast group (one element)
    port: int = 694
    ttl: int = 1  # mcast
    loop: bool = False  # mcast
    device: str | None = None  # serial
    baud: int = 19200  # serial
    bind: str | None = None  # hastack addition: local address to receive on
    source: Source | None = None


@dataclass(frozen=True)
class NodeSpec:
    name: str
    node_id: int
    votes: int = 1
    source: Source | None = None


@dataclass(frozen=True)
class PingGroup:
    name: str
    addresses: tuple[str, ...]
    source: Source | None = None


@dataclass(frozen=True)
class StonithHost:
    from_host: str  # a node name or "*"
    device_type: str
    params: tuple[str, ...]
    source: Source | None = None


@dataclass(frozen=True)
class Timing:
    """The one timing model of the stack (see hastack.config.timing).

    keepalive/warntime/deadtime/initdead/deadping are heartbeat's; the rest are derived:
    `lease` is how long a vote for a DC binds the voter (measured on the voter's clock from the
    last renewal it received), `dc_lease` is how long the DC may act after sending a renewal
    (shorter than `lease` by the clock-drift bound), `quiet` is how long a restarted node refuses
    to vote, `election_timeout` is how long a candidate waits for votes, `read_interval` how
    often a node reads what its UDP links received.
    """

    keepalive: float
    warntime: float
    deadtime: float
    initdead: float
    deadping: float
    max_drift: float  # fractional clock-rate error bound, e.g. 0.01
    lease: float
    dc_lease: float
    quiet: float
    election_timeout: float
    stall_threshold: float  # a loop iteration later than this is reported as a stall
    read_interval: float  # received datagrams wait at most this long to be read


@dataclass(frozen=True)
class AuthKey:
    index: int
    method: AuthMethod
    key: bytes  # empty for crc
    source: Source | None = None


@dataclass(frozen=True)
class AuthKeys:
    active: int  # the `auth N` index used to sign
    keys: dict[int, AuthKey]  # every key, all accepted on receive
    source_file: str = ""
    warnings: tuple[ConfigWarning, ...] = ()  # added by the config helper (crc, short keys)

    @property
    def signing(self) -> AuthKey:
        return self.keys[self.active]


@dataclass(frozen=True)
class ConfigWarning:
    source: Source | None
    message: str

    def __str__(self) -> str:
        return f"{self.source}: warning: {self.message}" if self.source else self.message


@dataclass(frozen=True)
class HaCf:
    """ha.cf as heartbeat 3 reads it, plus hastack's own directives."""

    file: str
    nodes: tuple[NodeSpec, ...]
    links: tuple[Link, ...]
    udpport: int = 694
    timing: Timing | None = None
    auto_failback: Literal["on", "off", "legacy"] = "legacy"
    watchdog: str | None = None
    ping: tuple[str, ...] = ()
    ping_groups: tuple[PingGroup, ...] = ()
    stonith: tuple[str, str] | None = None  # (device_type, config_file)
    stonith_hosts: tuple[StonithHost, ...] = ()
    crm: Literal["on", "off", "respawn"] = "off"
    autojoin: Literal["none", "other", "any"] = "none"
    logfacility: str | None = "daemon"
    logfile: str | None = None
    debugfile: str | None = None
    use_logd: bool = False
    compression: str = "zlib"
    traditional_compression: bool = False
    realtime: bool = True
    debug: int = 0
    # hastack's own additions (see docs/compat.md)
    cluster_name: str = "hastack"
    two_node: bool = False
    wait_for_all: bool = False
    expected_votes: int | None = None  # None: the sum of the nodes' votes
    quorum_server: str | None = None  # host[:port] of `hastack qserver serve`
    # TLS to the quorum server: this node's certificate, its key, the server's CA
    quorum_server_tls: tuple[str, str, str] | None = None
    run_dir: str = "/run/hastack"
    warnings: tuple[ConfigWarning, ...] = field(default=())

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def total_votes(self) -> int:
        if self.expected_votes is not None:
            return self.expected_votes
        return sum(spec.votes for spec in self.nodes)


@dataclass(frozen=True)
class ClusterConfig:
    """A whole configuration directory: ha.cf + authkeys (+ later files)."""

    directory: str
    hacf: HaCf
    authkeys: AuthKeys
    warnings: tuple[ConfigWarning, ...] = ()
