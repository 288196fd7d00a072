"""`adjust` (drbdadm adjust, DRBD 8.4): what to change so that the running daemon matches
drbd.conf. A pure function of the new configuration and what runs: `plan_adjust` returns the
steps; the daemon carries them out (reconfigure.py), `--dry-run` prints them.

What adjust does, resource by resource (as drbdadm adjust compares the kernel's state with the
file and issues only the drbdsetup commands that differ):

* configured for this node, not known to the daemon (added to drbd.conf since it started):
  taken on and brought up (attach + connect);
* known but down: attach, then connect;
* attached but StandAlone (after `disconnect`, or refused by the peer: drbdadm adjust connects
  a StandAlone resource too): connect;
* options changed: those the running connection can take are changed on the fly (DRBD's
  `net-options` / `disk-options`: resync rate and controller, timeouts, ko-count, max-buffers,
  after-sb policies, csums/verify algorithms, on-io-error, fencing, flushes; handlers and
  startup options are simply the ones used from then on); those a connection is built with --
  protocol, cram-hmac-alg, shared-secret, data-integrity-alg, either side's address -- by
  disconnect + connect, as drbdadm does;
* a resource no longer in drbd.conf (or no longer with a section for this node) is left as
  it runs, and the plan says so (drbdadm adjust leaves it too).

Not applied, and said so in the plan: a changed volume (backing disk, meta-disk, device,
nbd-address) of an attached resource (down + up applies it), al-extents (hastack keeps it in
the meta-data, written by create-md; DRBD resizes its log on the fly), a changed `size` (run
`resize`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal

from hastack.replica.config import ConfigError, select_host
from hastack.replica.model import Disk, DrbdConf, Host, Resource

Action = Literal["new", "attach", "connect", "reconnect", "net-options", "disk-options", "adopt"]

# Net options a connection is built with: a change needs disconnect + connect.
RECONNECT_NET = frozenset({"protocol", "cram_hmac_alg", "shared_secret", "data_integrity_alg"})
# Disk options hastack keeps in the meta-data (written by create-md): adjust cannot change them.
METADATA_DISK = frozenset({"al_extents"})


@dataclass(frozen=True)
class Running:
    """What the daemon runs for one resource."""

    config: Resource
    attached: bool
    standalone: bool  # attached and neither connected nor trying to connect


@dataclass(frozen=True)
class Step:
    resource: str
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        verb = {
            "new": "take on",
            "attach": "attach",
            "connect": "connect",
            "reconnect": "disconnect + connect",
            "net-options": "net-options",
            "disk-options": "disk-options",
            "adopt": "use",
        }[self.action]
        return f"{verb} {self.resource}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # what adjust leaves alone, and why

    def lines(self, *, dry_run: bool) -> list[str]:
        head = "would " if dry_run else ""
        out = [f"{head}{step}" for step in self.steps]
        out += [f"note: {note}" for note in self.notes]
        if not self.steps:
            out.insert(0, "nothing to adjust: the running state matches drbd.conf")
        return out


def _show(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(getattr(v, "name", v)) for v in value) + ")"
    return str(value)


def changed(old: object, new: object, *, secret: frozenset[str] = frozenset()) -> list[str]:
    """`name old -> new` for every field of two option dataclasses that differs (drbd.conf's
    spelling; values of `secret` fields are not shown)."""
    out: list[str] = []
    for f in fields(old):  # type: ignore[arg-type]
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a != b:
            name = f.name.replace("_", "-")
            out.append(name if f.name in secret else f"{name} {_show(a)} -> {_show(b)}")
    return out


def _names(diff: list[str]) -> set[str]:
    return {d.split(" ", 1)[0].replace("-", "_") for d in diff}


def _hosts_differ(old: Host, new: Host) -> bool:
    return old.address != new.address or old.names != new.names


def plan_resource(
    name: str, new: Resource, host: Host, peer: Host, running: Running | None
) -> tuple[list[Step], list[str]]:
    """The steps for one resource configured for this node."""
    if running is None:
        return [
            Step(name, "new", "added to drbd.conf"),
            Step(name, "attach"),
            Step(name, "connect"),
        ], []
    old = running.config
    steps: list[Step] = []
    notes: list[str] = []
    old_host, old_peer = _host_pair(old, host, peer)
    if running.attached and old_host is not None and old_host.volumes != host.volumes:
        notes.append(
            f"{name}: volumes changed (disk, meta-disk, device or nbd-address): not applied "
            "while attached; `down` + `up` applies them"
        )
    net_diff = changed(old.net, new.net, secret=frozenset({"shared_secret"}))
    address_moved = (
        old_host is None
        or old_peer is None
        or _hosts_differ(old_host, host)
        or _hosts_differ(old_peer, peer)
    )
    reconnect = bool(_names(net_diff) & RECONNECT_NET) or address_moved
    disk_diffs = [_disk_diff(old, new, v.number, host) for v in host.volumes]
    disk_diff = sorted({d for diffs in disk_diffs for d in diffs})
    fly_net = [d for d in net_diff if d.split(" ", 1)[0].replace("-", "_") not in RECONNECT_NET]
    fly_disk = [d for d in disk_diff if d.split(" ", 1)[0].replace("-", "_") != "size"]
    if any(_names([d]) & METADATA_DISK for d in fly_disk):
        notes.append(
            f"{name}: al-extents is kept in the meta-data: not changed by adjust "
            "(create-md writes it)"
        )
        fly_disk = [d for d in fly_disk if not _names([d]) & METADATA_DISK]
    if running.attached and "size" in _names(disk_diff):
        notes.append(f"{name}: disk size changed: run `hastack replica resize {name}`")
    other = [
        section
        for section, a, b in (
            ("handlers", old.handlers, new.handlers),
            ("startup", old.startup, new.startup),
            ("options", old.options, new.options),
        )
        if a != b
    ]
    if fly_net:
        steps.append(Step(name, "net-options", ", ".join(fly_net)))
    if fly_disk:
        steps.append(Step(name, "disk-options", ", ".join(fly_disk)))
    if other:
        steps.append(Step(name, "adopt", "new " + ", ".join(other)))
    if not steps and old != new and not reconnect:
        steps.append(Step(name, "adopt", "the new configuration"))
    if not running.attached:
        steps += [Step(name, "attach"), Step(name, "connect")]
    elif running.standalone and not reconnect:
        steps.append(Step(name, "connect", "StandAlone"))
    elif reconnect:
        why = [d for d in net_diff if _names([d]) & RECONNECT_NET]
        if address_moved:
            why.append("address")
        steps.append(Step(name, "reconnect", ", ".join(why)))
    return steps, notes


def _host_pair(old: Resource, host: Host, peer: Host) -> tuple[Host | None, Host | None]:
    """The old resource's sections that correspond to the new host and peer."""

    def find(target: Host) -> Host | None:
        for h in old.hosts:
            if h.names == target.names and h.floating == target.floating:
                return h
        return None

    return find(host), find(peer)


def _disk_diff(old: Resource, new: Resource, number: int, host: Host) -> list[str]:
    new_volume = host.volume(number)
    old_disk = _old_volume_disk(old, number, host) or old.disk
    return changed(old_disk, new.volume_disk(new_volume))


def _old_volume_disk(old: Resource, number: int, host: Host) -> Disk | None:
    for h in old.hosts:
        if h.names == host.names:
            for v in h.volumes:
                if v.number == number:
                    return old.volume_disk(v)
    return None


def plan_adjust(
    conf: DrbdConf, node: str, running: Mapping[str, Running], target: str = "all"
) -> Plan:
    """Compare drbd.conf (`conf`, already read without error) with what runs; `target` is a
    resource name or "all". Raises ConfigError for a named resource that is in neither."""
    steps: list[Step] = []
    notes: list[str] = []
    mine: dict[str, tuple[Resource, Host, Host]] = {}
    for res in conf.resources:
        try:
            host, peer = select_host(conf, res, node)
        except ConfigError:
            continue
        mine[res.name] = (res, host, peer)
    if target != "all" and target not in mine and target not in running:
        known = ", ".join(sorted(mine)) or "none"
        raise ConfigError(f"no resource {target!r} for node {node} in {conf.file} (known: {known})")
    for name, (res, host, peer) in mine.items():
        if target in ("all", name):
            s, n = plan_resource(name, res, host, peer, running.get(name))
            steps += s
            notes += n
    for name in running:
        if name not in mine and target in ("all", name):
            notes.append(
                f"{name}: no longer in {conf.file} for {node}: left as it runs "
                f"(`hastack replica down {name}` stops it)"
            )
    return Plan(tuple(steps), tuple(notes))


__all__ = ["Plan", "Running", "Step", "changed", "plan_adjust", "plan_resource"]
