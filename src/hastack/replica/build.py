"""The model made of what hastack.replica.syntax read, with the checks drbdadm 8.4 applies.

A resource's options are common's with its own on top; its volumes are the resource section's
device/disk/meta-disk with each host section's own on top (volume by volume). Then: exactly two
host sections, every volume complete and on both hosts, no mixing of implicit and explicit
volumes, unique minors, devices and addresses, and the relations between options that drbdadm
or the kernel module refuse (allow-two-primaries needs protocol C, ...).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hastack.config.model import Source
from hastack.replica.model import (
    Disk,
    DrbdConf,
    Global,
    Handlers,
    Host,
    MetaDisk,
    Net,
    Option,
    Resource,
    ResourceOptions,
    Settings,
    Startup,
    Volume,
)
from hastack.replica.options import GLOBAL, SECTIONS, TABLES
from hastack.replica.syntax import Options, RawHost, RawResource, RawVolume, Reader

_SECTION_TYPES: dict[str, type] = {
    "disk": Disk,
    "net": Net,
    "startup": Startup,
    "options": ResourceOptions,
    "handlers": Handlers,
}


def _merge(*layers: dict[str, Options]) -> dict[str, Options]:
    merged: dict[str, Options] = {s: {} for s in SECTIONS}
    for layer in layers:
        for section, options in layer.items():
            merged[section].update(options)
    return merged


def _section_object(section: str, given: Options) -> Any:
    table = TABLES[section]
    values: dict[str, Any] = {}
    other: list[Option] = []
    for name, spec in table.items():  # the table's order: a canonical one
        if name not in given:
            continue
        item = given[name]
        if spec.field is not None:
            values[spec.field] = item.value
        else:
            other.append(Option(name, item.value, item.source))
    return _SECTION_TYPES[section](**values, other=tuple(other))


def _settings(given: dict[str, Options]) -> Settings:
    return Settings(**{s: _section_object(s, given[s]) for s in SECTIONS})


class Builder:
    def __init__(self, reader: Reader, file: str) -> None:
        self.r = reader
        self.file = file

    def error(self, source: Source | None, message: str) -> None:
        self.r.error(source, message)

    def build(self) -> DrbdConf | None:
        r = self.r
        global_values: dict[str, Any] = {}
        for name, given in r.global_given.items():
            field = GLOBAL[name].field
            assert field is not None  # every global option is a field of Global
            global_values[field] = given.value
        global_ = Global(**global_values)
        common = _settings(r.common.sections)
        resources: list[Resource] = []
        by_name = {raw.name: raw for raw in r.resources}
        for raw in r.resources:
            if raw.broken:
                continue  # its statements that failed would only show again as gaps
            resource = self._resource(raw, by_name)
            if resource is not None:
                resources.append(resource)
        if len(resources) == len(r.resources):
            self._across(resources)
        if r.problems:
            return None
        return DrbdConf(
            file=self.file,
            global_=global_,
            common=common,
            resources=tuple(resources),
            files=tuple(r.read_files),
            warnings=tuple(r.warnings),
        )

    # -- one resource

    def _resource(self, raw: RawResource, by_name: dict[str, RawResource]) -> Resource | None:
        where = f"resource {raw.name}"
        problems_before = len(self.r.problems)
        given = _merge(self.r.common.sections, raw.block.sections)
        settings = _settings(given)
        if len(raw.hosts) != 2:
            shown = ", ".join(h.label for h in raw.hosts) or "none"
            self.error(
                raw.source,
                f"{where}: has {len(raw.hosts)} host section(s) ({shown}); DRBD 8.4 replicates "
                "between exactly two: `on HOST { ... }` (or floating) for each node "
                "(hastack has no --peer to pick one of several)",
            )
        self._host_names(raw, where)
        explicit = bool(raw.volumes) or any(h.volumes for h in raw.hosts)
        implicit = raw.implicit is not None or any(h.implicit is not None for h in raw.hosts)
        if explicit and implicit:
            self.error(
                raw.source,
                f"{where}: mixes `volume N {{ }}` sections with device/disk/meta-disk written "
                "outside of them; drbdadm does not allow mixing explicit and implicit volumes",
            )
            return None
        hosts = [
            self._host(raw, host, settings, given, by_name, where, explicit=explicit)
            for host in raw.hosts
        ]
        if len(self.r.problems) > problems_before or len(hosts) != 2:
            return None
        built = [h for h in hosts if h is not None]
        numbers = [{v.number for v in h.volumes} for h in built]
        if len(built) == 2 and numbers[0] != numbers[1]:
            for mine, theirs, host, peer in (
                (numbers[0], numbers[1], built[0], built[1]),
                (numbers[1], numbers[0], built[1], built[0]),
            ):
                for number in sorted(mine - theirs):
                    self.error(
                        host.source,
                        f"{where}, {host.label}: volume {number} is not defined for {peer.label}",
                    )
            return None
        if len(built) != 2:
            return None
        resource = Resource(raw.name, (built[0], built[1]), settings, raw.source)
        self._check_settings(resource, given, by_name, where)
        return resource if len(self.r.problems) == problems_before else None

    def _host_names(self, raw: RawResource, where: str) -> None:
        seen: dict[str, RawHost] = {}
        for host in raw.hosts:
            for name in host.names:
                if name in seen:
                    self.error(
                        host.source,
                        f"{where}: host {name} has a second section (the first is at "
                        f"{seen[name].source})",
                    )
                seen[name] = host

    def _host(
        self,
        raw: RawResource,
        host: RawHost,
        settings: Settings,
        given: dict[str, Options],
        by_name: dict[str, RawResource],
        where: str,
        *,
        explicit: bool,
    ) -> Host | None:
        context = f"{where}, {host.label}"
        lower_device: dict[int, str] = {}
        if host.kind == "stacked-on-top-of":
            lower = by_name.get(host.stacked_on or "")
            if lower is None or lower is raw:
                self.error(
                    host.source,
                    f"{context}: names no other resource (resources: "
                    f"{', '.join(sorted(by_name)) or 'none'})",
                )
                return None
            lower_device = _lower_devices(lower)
        if host.address is None:
            self.error(host.source, f"{context}: no address (write `address IP:PORT;`)")
            return None
        if explicit:
            layers = {
                n: [raw.volumes.get(n), host.volumes.get(n)]
                for n in sorted(set(raw.volumes) | set(host.volumes))
            }
        else:  # one implicit volume 0, even when nothing of it is written (an error below)
            layers = {0: [raw.implicit, host.implicit]}
        if explicit and host.nbd is not None:
            self.error(
                host.nbd[1],
                f"{context}: with `volume N {{ }}` sections, nbd-address goes in each volume",
            )
            return None
        volumes: list[Volume] = []
        for number, (from_resource, own) in layers.items():
            volume = self._volume(
                number,
                from_resource,
                own,
                lower_device.get(number),
                settings.disk,
                given,
                f"{context}, volume {number}" if explicit else context,
                host,
                implicit=not explicit,
            )
            if volume is not None:
                volumes.append(volume)
        if len(volumes) != len(layers):
            return None
        return Host(
            names=host.names,
            address=host.address[0],
            volumes=tuple(volumes),
            floating=host.kind == "floating",
            stacked_on=host.stacked_on,
            source=host.source,
        )

    def _volume(
        self,
        number: int,
        from_resource: RawVolume | None,
        own: RawVolume | None,
        lower_device: str | None,
        resource_disk: Disk,
        given: dict[str, Options],
        context: str,
        host: RawHost,
        *,
        implicit: bool,
    ) -> Volume | None:
        layers = [v for v in (from_resource, own) if v is not None]

        def pick(attr: str) -> Any:
            for layer in reversed(layers):
                if getattr(layer, attr) is not None:
                    return getattr(layer, attr)
            return None

        device, disk, meta, nbd = pick("device"), pick("disk"), pick("meta"), pick("nbd")
        if implicit and host.nbd is not None:
            nbd = host.nbd
        source = (own or from_resource).source if layers else host.source
        if host.kind == "stacked-on-top-of":
            # A stacked device sits on the lower resource's device, with internal meta-data;
            # drbdadm ignores the resource's disk and meta-disk for it.
            if lower_device is None:
                self.error(
                    source,
                    f"{context}: resource {host.stacked_on} has no volume {number} to stack on",
                )
                return None
            disk, meta = (lower_device, host.source), (MetaDisk(), host.source)
        missing = [
            name
            for name, value in (("device", device), ("disk", disk), ("meta-disk", meta))
            if value is None
        ]
        if missing:
            self.error(
                source,
                f"{context}: no {', no '.join(missing)} (give it here or in the resource "
                "section, which every host section inherits)",
            )
            return None
        disk_given = dict(given["disk"])
        for layer in layers:
            disk_given.update(layer.options.sections["disk"])
        own_disk = _section_object("disk", disk_given)
        return Volume(
            number=number,
            device=device[0],
            minor=device[1],
            disk=disk[0],
            meta_disk=meta[0],
            implicit=implicit,
            nbd_address=nbd[0] if nbd is not None else None,
            disk_options=None if own_disk == resource_disk else own_disk,
            source=device[2],
        )

    def _check_settings(
        self,
        resource: Resource,
        given: dict[str, Options],
        by_name: dict[str, RawResource],
        where: str,
    ) -> None:
        net = resource.net
        net_given = given["net"]

        def at(name: str, section: str = "net") -> Source:
            item = given[section].get(name)
            return item.source if item is not None else resource.source  # type: ignore[return-value]

        if net.allow_two_primaries and net.protocol != "C":
            self.error(
                at("allow-two-primaries"),
                f"{where}: allow-two-primaries needs protocol C (this resource uses "
                f"protocol {net.protocol})",
            )
        congestion = next((o.value for o in net.other if o.name == "on-congestion"), "block")
        if congestion != "block" and net.protocol != "A":
            self.error(
                at("on-congestion"),
                f"{where}: on-congestion {congestion} needs protocol A (this resource uses "
                f"protocol {net.protocol})",
            )
        names = [n for h in resource.hosts for n in h.names]
        policy = net.after_sb_0pri
        if policy.startswith("discard-node-") and policy[len("discard-node-") :] not in names:
            self.error(
                at("after-sb-0pri"),
                f"{where}: after-sb-0pri {policy} names no host of this resource "
                f"(hosts: {', '.join(names) or 'none'})",
            )
        for name in resource.startup.become_primary_on:
            if name != "both" and name not in names:
                self.error(
                    at("become-primary-on", "startup"),
                    f"{where}: become-primary-on {name}: not a host of this resource "
                    f"(hosts: {', '.join(names) or 'none'}, or both)",
                )
        if net.cram_hmac_alg is not None and net.shared_secret is None:
            self.r.warn(
                at("cram-hmac-alg"),
                f"{where}: cram-hmac-alg without shared-secret: the peers authenticate with an "
                "empty secret",
            )
        if net.shared_secret is not None and net.cram_hmac_alg is None:
            self.r.warn(
                at("shared-secret"),
                f"{where}: shared-secret without cram-hmac-alg: peer authentication stays off",
            )
        if "timeout" in net_given or "ping-int" in net_given or "connect-int" in net_given:
            limit = min(net.ping_int, net.connect_int) * 10
            if net.timeout >= limit:
                self.r.warn(
                    at("timeout"),
                    f"{where}: timeout {net.timeout / 10:g} s is not lower than ping-int "
                    f"({net.ping_int} s) and connect-int ({net.connect_int} s), as drbd.conf(5) "
                    "says it must be",
                )
        after = next((o for o in resource.disk.other if o.name == "resync-after"), None)
        if after is not None and (after.value not in by_name or after.value == resource.name):
            self.error(
                after.source or resource.source,
                f"{where}: resync-after {after.value}: not another resource (resources: "
                f"{', '.join(n for n in by_name if n != resource.name) or 'none'})",
            )

    # -- across resources

    def _across(self, resources: list[Resource]) -> None:
        addresses: dict[tuple[str, int], tuple[str, Host]] = {}
        # (node, what, key) -> the volume that has it: minors, devices, disks, meta-data
        claims: dict[tuple[str, str, Any], tuple[str, Volume]] = {}
        # (node, ip, port) -> (what, where, kind): kind is "replication", "nbd" or "default"
        ports: dict[tuple[str, str, int], tuple[str, Source | None, str]] = {}
        lookup = {r.name: r for r in resources}
        for resource in resources:
            where = f"resource {resource.name}"
            for host in resource.hosts:
                key = (normal_ip(host.address.host), host.address.port)
                first = addresses.get(key)
                if first is not None:
                    self.error(
                        host.source,
                        f"{where}, {host.label}: address {host.address.host_port} is also used "
                        f"by {first[0]}, {first[1].label} at {first[1].source}",
                    )
                addresses[key] = (where, host)
                listening = [(host.address, host.source, "the replication address", "replication")]
                for volume in host.volumes:
                    kind = "nbd" if volume.nbd_address is not None else "default"
                    if kind == "default" and volume.nbd_export.port > 65535:
                        self.error(
                            volume.source,
                            f"{where}, {host.label}: minor {volume.minor} puts the default NBD "
                            "port (10809 + minor) above 65535; give nbd-address",
                        )
                        continue
                    what = f"the NBD export of volume {volume.number}"
                    listening.append((volume.nbd_export, volume.source, what, kind))
                for node in node_keys(host, lookup):
                    for volume in host.volumes:
                        for what, shown, key in _claims(volume):
                            self._unique(claims, (node, what, key), where, host, volume, shown)
                    for address, source, what, kind in listening:
                        pkey = (node, normal_ip(address.host), address.port)
                        other = ports.get(pkey)
                        # Clashing replication addresses are reported above, and default NBD
                        # ports clash only where minors do, which is reported too.
                        if other is not None and {kind, other[2]} not in (
                            {"replication"},
                            {"default"},
                        ):
                            self.error(
                                source,
                                f"{where}, {host.label}: {what} {address.host_port} is also "
                                f"{other[0]} at {other[1]} on host {node}",
                            )
                        ports[pkey] = (f"{what} of {where}", source, kind)
        self._resync_after_cycles(resources)

    def _unique(
        self,
        seen: dict[tuple[str, str, Any], tuple[str, Volume]],
        key: tuple[str, str, Any],
        where: str,
        host: Host,
        volume: Volume,
        shown: str,
    ) -> None:
        first = seen.get(key)
        if first is not None and first[1] is not volume:
            self.error(
                volume.source,
                f"{where}, {host.label}: {shown} is also used on host {key[0]} by "
                f"{first[0]} at {first[1].source}",
            )
            return
        seen[key] = (where, volume)

    def _resync_after_cycles(self, resources: list[Resource]) -> None:
        after = {
            r.name: (str(o.value), o.source)
            for r in resources
            for o in r.disk.other
            if o.name == "resync-after"
        }
        reported: set[str] = set()
        for start in after:
            chain = [start]
            while chain[-1] in after and after[chain[-1]][0] not in chain:
                chain.append(after[chain[-1]][0])
            closing = after.get(chain[-1], ("", None))[0]
            if closing != start or start in reported:
                continue  # no cycle through `start` (one further on is reported from there)
            reported.update(chain)
            shown = " -> ".join([*chain, start])
            self.error(after[start][1], f"resource {start}: resync-after forms a cycle: {shown}")


def _claims(volume: Volume) -> list[tuple[str, str, Any]]:
    """What a volume has for itself on its node, as drbdadm checks it: (kind, shown, key)."""
    claims: list[tuple[str, str, Any]] = [
        ("minor", f"minor {volume.minor}", volume.minor),
        ("device", f"device {volume.device}", volume.device),
    ]
    if volume.disk is not None:  # drbdadm also refuses two `disk none`; hastack does not
        claims.append(("disk", f"disk {volume.disk}", volume.disk))
    meta = volume.meta_disk
    if meta.device is not None:
        slot = "flexible" if meta.index is None else meta.index
        claims.append(("meta-disk", f"meta-disk {meta}", (meta.device, slot)))
    return claims


def _lower_devices(lower: RawResource) -> dict[int, str]:
    """The devices of a lower resource, by volume number, as a stacked section's disks."""
    found: dict[int, str] = {}
    for layer in [lower.implicit, *(h.implicit for h in lower.hosts)]:
        if layer is not None and layer.device is not None:
            found[0] = layer.device[0]
    for volumes in [lower.volumes, *(h.volumes for h in lower.hosts)]:
        for number, volume in volumes.items():
            if volume.device is not None:
                found[number] = volume.device[0]
    return found


def node_keys(host: Host, resources: dict[str, Resource]) -> list[str]:
    """The nodes a host section's devices live on: its names; a floating section's address;
    a stacked section's lower resource's hosts."""
    if host.floating:
        return [host.address.host]
    if host.stacked_on is not None:
        lower = resources.get(host.stacked_on)
        if lower is None:
            return []
        return sorted({n for h in lower.hosts for n in h.names})
    return list(host.names)


def normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.split("%")[0]))
    except ValueError:
        return text
