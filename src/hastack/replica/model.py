"""drbd.conf as typed, frozen objects: what hastack's replication engine reads.

Values are in DRBD's own units, named in each field's comment (drbd.conf(5) and drbdsetup(8) for
8.4): rates in KiB/s, sizes in 512-byte sectors, most timeouts in tenths of a second. A resource's
sections are *effective*: the `common` section's options with the resource's own on top, every
option not given at its DRBD default. Options hastack does not act on are kept by name in each
section's `other`, sorted by name.

Where a value came from (`source`) is kept for messages but is not part of equality: a model read
back from its own dump() equals the model that was dumped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hastack.config.model import ConfigWarning, Source

AddressFamily = Literal["ipv4", "ipv6", "ssocks", "sdp"]
NBD_BASE_PORT = 10809  # NBD's IANA port; volume exports listen on this + the device minor


@dataclass(frozen=True)
class Position(Source):
    """A Source with the column: shown as file:line:column."""

    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}" if self.column else super().__str__()


@dataclass(frozen=True)
class Address:
    family: AddressFamily
    host: str  # a literal address; IPv6 without brackets (may carry a %scope)
    port: int

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if self.family == "ipv6" else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.family} {self.host_port}"


@dataclass(frozen=True)
class MetaDisk:
    """`meta-disk internal`, `meta-disk DEV` (flexible size) or `meta-disk DEV [INDEX]`."""

    device: str | None = None  # None: internal, at the end of the backing disk
    index: int | None = None  # a fixed 128 MiB slot of DEV

    @property
    def internal(self) -> bool:
        return self.device is None

    @property
    def flexible(self) -> bool:
        return self.device is not None and self.index is None

    def __str__(self) -> str:
        if self.device is None:
            return "internal"
        return self.device if self.index is None else f"{self.device} [{self.index}]"


@dataclass(frozen=True)
class Option:
    """An option hastack reads but does not act on, kept with its value."""

    name: str
    value: bool | int | str | tuple[str, ...]
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Disk:
    size: int = 0  # sectors; 0: all of the backing device
    # DRBD 8.4's default (8.3 had pass_on): a failing disk is let go of, the volume goes on
    # Diskless through the peer.
    on_io_error: Literal["pass_on", "call-local-io-error", "detach"] = "detach"
    fencing: Literal["dont-care", "resource-only", "resource-and-stonith"] = "dont-care"
    disk_barrier: bool = False
    disk_flushes: bool = True
    md_flushes: bool = True
    resync_rate: int = 250  # KiB/s
    al_extents: int = 1237  # 4 MiB extents
    c_plan_ahead: int = 20  # 0.1 s; 0 turns the dynamic resync controller off
    c_delay_target: int = 10  # 0.1 s
    c_fill_target: int = 100  # sectors
    c_max_rate: int = 102400  # KiB/s
    c_min_rate: int = 250  # KiB/s
    other: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Net:
    protocol: Literal["A", "B", "C"] = "C"
    timeout: int = 60  # 0.1 s
    max_buffers: int = 2048  # 4 KiB pages
    connect_int: int = 10  # s
    ping_int: int = 10  # s
    sndbuf_size: int = 0  # bytes; 0: the kernel tunes it
    rcvbuf_size: int = 0  # bytes; 0: the kernel tunes it
    ko_count: int = 7
    allow_two_primaries: bool = False
    cram_hmac_alg: str | None = None  # None: peers are not authenticated
    shared_secret: str | None = None
    # disconnect, discard-younger-primary, discard-older-primary, discard-zero-changes,
    # discard-least-changes, discard-local, discard-remote or discard-node-NAME
    after_sb_0pri: str = "disconnect"
    after_sb_1pri: Literal[
        "disconnect", "consensus", "discard-secondary", "call-pri-lost-after-sb", "violently-as0p"
    ] = "disconnect"
    after_sb_2pri: Literal["disconnect", "call-pri-lost-after-sb", "violently-as0p"] = "disconnect"
    ping_timeout: int = 5  # 0.1 s
    data_integrity_alg: str | None = None
    csums_alg: str | None = None
    verify_alg: str | None = None
    other: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Startup:
    wfc_timeout: int = 0  # s; 0: wait forever
    degr_wfc_timeout: int = 0  # s
    outdated_wfc_timeout: int = 0  # s
    become_primary_on: tuple[str, ...] = ()  # host names, or ("both",)
    other: tuple[Option, ...] = ()


@dataclass(frozen=True)
class ResourceOptions:
    """The `options` section: hastack acts on none of its options."""

    other: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Handlers:
    """Commands run by `sh -c` on DRBD's events; None: no handler."""

    pri_on_incon_degr: str | None = None
    pri_lost_after_sb: str | None = None
    pri_lost: str | None = None
    fence_peer: str | None = None
    unfence_peer: str | None = None
    local_io_error: str | None = None
    initial_split_brain: str | None = None
    split_brain: str | None = None
    before_resync_target: str | None = None
    after_resync_target: str | None = None
    before_resync_source: str | None = None
    out_of_sync: str | None = None
    other: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Settings:
    """The option sections of `common` or of one resource."""

    disk: Disk = Disk()
    net: Net = Net()
    startup: Startup = Startup()
    options: ResourceOptions = ResourceOptions()
    handlers: Handlers = Handlers()


@dataclass(frozen=True)
class Volume:
    number: int  # the volume number (vnr): what pairs a volume with its peer's
    device: str  # /dev/drbdMINOR or /dev/drbd_NAME
    minor: int
    disk: str | None  # the backing device; None: `disk none`, a diskless volume
    meta_disk: MetaDisk
    implicit: bool = False  # written in the host or resource section, not in `volume N {}`
    nbd_address: Address | None = None  # hastack's `nbd-address`; None: the default
    disk_options: Disk | None = None  # this volume's own `disk {}`; None: the resource's
    source: Source | None = field(default=None, compare=False)

    @property
    def nbd_export(self) -> Address:
        """Where hastack serves this volume over NBD: `nbd-address`, else 127.0.0.1 on port
        10809 + the device minor."""
        if self.nbd_address is not None:
            return self.nbd_address
        return Address("ipv4", "127.0.0.1", NBD_BASE_PORT + self.minor)


@dataclass(frozen=True)
class Host:
    """One host section of a resource: `on NAME...`, `floating ADDR` or `stacked-on-top-of`."""

    names: tuple[str, ...]  # `on a b`: ("a", "b"); () for floating and stacked sections
    address: Address
    volumes: tuple[Volume, ...]  # sorted by number
    floating: bool = False  # matched to a node by address, not by name
    stacked_on: str | None = None  # the lower resource of a stacked-on-top-of section
    source: Source | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How messages name the section."""
        if self.floating:
            return f"floating {self.address.host_port}"
        if self.stacked_on is not None:
            return f"stacked-on-top-of {self.stacked_on}"
        return "on " + " ".join(self.names)

    def volume(self, number: int) -> Volume:
        for volume in self.volumes:
            if volume.number == number:
                return volume
        raise KeyError(number)


@dataclass(frozen=True)
class Resource:
    name: str
    hosts: tuple[Host, ...]  # exactly two
    settings: Settings = Settings()
    source: Source | None = field(default=None, compare=False)

    @property
    def disk(self) -> Disk:
        return self.settings.disk

    @property
    def net(self) -> Net:
        return self.settings.net

    @property
    def startup(self) -> Startup:
        return self.settings.startup

    @property
    def options(self) -> ResourceOptions:
        return self.settings.options

    @property
    def handlers(self) -> Handlers:
        return self.settings.handlers

    def volume_disk(self, volume: Volume) -> Disk:
        """The disk options in force for one volume."""
        return volume.disk_options if volume.disk_options is not None else self.settings.disk


@dataclass(frozen=True)
class Global:
    """The `global` section. hastack acts on none of it (see docs/compat.md)."""

    usage_count: Literal["yes", "no", "ask"] = "ask"
    minor_count: int = 32
    dialog_refresh: int = 1  # s
    disable_ip_verification: bool = False
    udev_always_use_vnr: bool = False
    cmd_timeout_short: int = 5  # s
    cmd_timeout_medium: int = 121  # s
    cmd_timeout_long: int = 600  # s


@dataclass(frozen=True)
class DrbdConf:
    file: str = field(default="", compare=False)  # the file read first (drbd.conf)
    global_: Global = Global()
    common: Settings = Settings()  # as written: what every resource inherits
    resources: tuple[Resource, ...] = ()  # in the order the files define them
    files: tuple[str, ...] = field(default=(), compare=False)  # every file read, in order
    warnings: tuple[ConfigWarning, ...] = field(default=(), compare=False)

    def resource(self, name: str) -> Resource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(name)
