"""IPaddr2: a floating IP address. Added and removed through netlink (pyroute2); after adding,
gratuitous ARP tells the neighbours which MAC now owns the address; monitor = the address is
on the interface.

The interface and prefix length, when not given, come from the routing table: the most
specific directly connected (scope link) route of the main table that covers the address, as
resource-agents' findif does. Heartbeat R1's one-argument form also works:
`IPaddr2 ADDR[/BITS[/IF[:LABEL]][/BROADCAST]] start|stop|status`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hastack.agents.builtin.ocf import (
    IN_PROCESS,
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    log,
    run_agent,
)

INFO = AgentInfo(
    name="IPaddr2",
    shortdesc="Manages a floating IP address (hastack, netlink)",
    longdesc="Adds an IP address to an interface on start, removes it on stop, and reports it "
    "running while the interface carries it. After adding an IPv4 address it sends gratuitous "
    "ARP (arp_count packets, arp_interval ms apart) so that neighbours update their caches. "
    "nic and cidr_netmask default to the directly connected route covering the address.",
    params=(
        Param(
            "ip",
            "IP address",
            "The IPv4 or IPv6 address, e.g. 192.168.1.10.",
            required=True,
            unique=True,
        ),
        Param(
            "nic", "Interface", "Interface to add the address to (default: from the routing table)."
        ),
        Param(
            "cidr_netmask",
            "Prefix length",
            "Prefix length (24) or dotted netmask (255.255.255.0); default: the connected route's.",
        ),
        Param(
            "broadcast",
            "Broadcast address",
            "IPv4 broadcast address; empty or + = computed from the prefix, - = none.",
        ),
        Param(
            "iflabel",
            "Interface label",
            "Label, shown as NIC:LABEL by `ip addr` (NIC:LABEL at most 15 characters).",
        ),
        Param(
            "arp_count",
            "ARP packet count",
            "Gratuitous ARP packets sent after start.",
            "integer",
            default="5",
        ),
        Param(
            "arp_interval",
            "ARP interval (ms)",
            "Milliseconds between the ARP packets.",
            "integer",
            default="200",
        ),
        Param(
            "arp_bg",
            "ARP in background",
            "Send the ARP packets in the background so start returns at once.",
            "boolean",
            default="true",
        ),
    ),
    actions=(
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("meta-data", 5),
        Action("validate-all", 20),
    ),
)

IFLABEL_MAX = 15  # IFNAMSIZ - 1: the kernel refuses longer address labels
RT_TABLE_MAIN = 254
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
ARPHRD_ETHER = 1
ETH_P_ARP = 0x0806


@dataclass(frozen=True)
class Placement:
    """Where and how the address goes."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    index: int
    nic: str
    prefixlen: int
    broadcast: str | None
    label: str | None


def _iproute() -> Any:
    try:
        from pyroute2 import IPRoute
    except ImportError:
        raise OcfError(
            OcfRc.ERR_INSTALLED, "pyroute2 is not installed (pip install pyroute2)"
        ) from None
    return IPRoute()


@contextlib.contextmanager
def netlink() -> Iterator[Any]:
    ipr = _iproute()
    try:
        yield ipr
    finally:
        ipr.close()


def _netlink_error(what: str, err: Exception) -> OcfError:
    code = getattr(err, "code", None)
    rc = OcfRc.ERR_PERM if code in (1, 13) else OcfRc.ERR_GENERIC  # EPERM, EACCES
    return OcfError(rc, f"{what}: {err}")


def parse_ip(ctx: Context) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = ctx.param("ip").strip()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"ip={text!r} is not an IPv4 or IPv6 address"
        ) from None


def _nic_and_label(ctx: Context) -> tuple[str, str]:
    """The nic parameter may carry the label the old way: eth0:web."""
    nic, _, label = ctx.param("nic").strip().partition(":")
    return nic, ctx.param("iflabel").strip() or label


def parse_prefix(ctx: Context, version: int) -> int | None:
    text = ctx.param("cidr_netmask").strip()
    if not text:
        return None
    bits = 32 if version == 4 else 128
    if text.isdigit() and int(text) <= bits:
        return int(text)
    if version == 4:
        with contextlib.suppress(ValueError):
            return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    raise OcfError(
        OcfRc.ERR_CONFIGURED,
        f"cidr_netmask={text!r}: give a prefix length 0..{bits}"
        + (" or a dotted netmask" if version == 4 else ""),
    )


def _link_index(ipr: Any, nic: str) -> int | None:
    found = ipr.link_lookup(ifname=nic)
    return found[0] if found else None


def _link_name(ipr: Any, index: int) -> str:
    return str(ipr.get_links(index)[0].get("ifname"))


def find_route(ipr: Any, ip: Any, index: int | None) -> tuple[int, int] | None:
    """(interface index, prefix length) of the most specific connected route covering ip."""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    best: tuple[int, int] | None = None
    for route in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
        if route["type"] != RTN_UNICAST or route.get("gateway") or route.get("multipath"):
            continue
        if ip.version == 4 and route["scope"] != RT_SCOPE_LINK:
            continue
        oif = route.get("oif")
        if oif is None or (index is not None and oif != index):
            continue
        dst = route.get("dst") or ("0.0.0.0" if ip.version == 4 else "::")
        net = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
        if ip in net and (best is None or route["dst_len"] > best[1]):
            best = (oif, route["dst_len"])
    return best


def _broadcast(ctx: Context, ip: Any, prefixlen: int) -> str | None:
    text = ctx.param("broadcast").strip()
    if ip.version != 4 or text == "-":
        return None
    if text in ("", "+"):
        if prefixlen >= 31:  # point-to-point and host addresses have no broadcast
            return None
        return str(ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False).broadcast_address)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"broadcast={text!r}: an IPv4 address, + (computed) or - (none)"
        ) from None


def placement(ctx: Context, ipr: Any) -> Placement:
    """Where the address goes; ERR_ARGS when this node cannot carry it (no such interface,
    no connected route), ERR_CONFIGURED when the parameters are malformed."""
    ip = parse_ip(ctx)
    prefix = parse_prefix(ctx, ip.version)
    nic, label = _nic_and_label(ctx)
    index: int | None = None
    if nic:
        index = _link_index(ipr, nic)
        if index is None:
            raise OcfError(OcfRc.ERR_ARGS, f"nic {nic!r} does not exist on this node")
    if index is None or prefix is None:
        route = find_route(ipr, ip, index)
        if route is None:
            where = f" on {nic}" if nic else ""
            raise OcfError(
                OcfRc.ERR_ARGS,
                f"no connected route{where} covers {ip}: give nic and cidr_netmask",
            )
        index = index if index is not None else route[0]
        prefix = prefix if prefix is not None else route[1]
    nic = nic or _link_name(ipr, index)
    full_label = None
    if label:
        full_label = f"{nic}:{label}"
        if len(full_label) > IFLABEL_MAX:
            raise OcfError(
                OcfRc.ERR_CONFIGURED,
                f"iflabel: {full_label!r} is longer than {IFLABEL_MAX} characters",
            )
    return Placement(ip, index, nic, prefix, _broadcast(ctx, ip, prefix), full_label)


def holders(ipr: Any, ip: Any, index: int | None = None) -> list[tuple[int, int]]:
    """(interface index, prefix length) of every interface that carries ip."""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    found = []
    for addr in ipr.get_addr(family=family):
        local = addr.get("local") if ip.version == 4 else None
        value = local or addr.get("address")
        here = index is None or addr["index"] == index
        if value and here and ipaddress.ip_address(value) == ip:
            found.append((addr["index"], addr["prefixlen"]))
    return found


def _arp_frame(mac: bytes, ip: bytes, reply: bool) -> bytes:
    """A gratuitous ARP: sender and target address both the new one, to broadcast. A request
    (RFC 5227 announcement) and a reply are both sent: some stacks only honour one kind."""
    broadcast = b"\xff" * 6
    ether = broadcast + mac + struct.pack("!H", ETH_P_ARP)
    target_mac = broadcast if reply else b"\x00" * 6
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2 if reply else 1) + mac + ip + target_mac + ip
    frame = ether + arp
    return frame + b"\x00" * (60 - len(frame))  # minimum Ethernet frame (without FCS)


_packet_socket: socket.socket | None = None
_packet_socket_lock = threading.Lock()


def _arp_sender() -> socket.socket:
    """One packet socket for the life of the process, to send frames only.

    Protocol 0 registers no receive hook, and the socket is never bound (sendto names the
    interface): binding or closing a packet socket that has a hook waits for the kernel's
    network RCU grace period (synchronize_net), 8 to 35 ms here, on the failover's path.
    """
    global _packet_socket
    with _packet_socket_lock:
        if _packet_socket is None:
            _packet_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        return _packet_socket


def send_gratuitous_arp(
    nic: str, mac: bytes, ip: ipaddress.IPv4Address, count: int, interval: float
) -> None:
    frames = [_arp_frame(mac, ip.packed, reply=False), _arp_frame(mac, ip.packed, reply=True)]
    sock = _arp_sender()
    for i in range(count):
        for frame in frames:
            sock.sendto(frame, (nic, ETH_P_ARP))
        if i + 1 < count:
            time.sleep(interval)


def _announce(ctx: Context, place: Placement, mac: bytes | None) -> None:
    if place.ip.version != 4:
        log(
            f"{place.ip}: IPv6, no gratuitous ARP (unsolicited neighbour advertisements are "
            "not sent by this agent)"
        )
        return
    if mac is None:
        log(f"{place.nic} has no Ethernet address: no gratuitous ARP")
        return
    count = ctx.int_param("arp_count", minimum=0)
    interval = ctx.int_param("arp_interval", minimum=0) / 1000
    if count == 0:
        return
    assert isinstance(place.ip, ipaddress.IPv4Address)
    if ctx.bool_param("arp_bg") and IN_PROCESS.get():
        # Inside the node daemon: the first announcement goes out now (the clients' next
        # packet depends on it; a thread would start it a scheduler slice later), the rest
        # from a thread, so that start returns without waiting for them. Never forked.
        try:
            send_gratuitous_arp(place.nic, mac, place.ip, 1, 0.0)
        except OSError as err:
            log(f"gratuitous ARP on {place.nic} failed: {err}")
        if count > 1:
            threading.Thread(
                target=_send_quietly,
                args=(place.nic, mac, place.ip, count - 1, interval),
                kwargs={"delay": interval},
                daemon=True,
            ).start()
        return
    if ctx.bool_param("arp_bg"):
        if _fork_to_background():
            return  # the parent: start is done, the child sends
        try:
            send_gratuitous_arp(place.nic, mac, place.ip, count, interval)
        finally:
            os._exit(0)
    try:
        send_gratuitous_arp(place.nic, mac, place.ip, count, interval)
    except OSError as err:
        log(f"gratuitous ARP on {place.nic} failed: {err}")  # the address is up regardless


def _send_quietly(
    nic: str, mac: bytes, ip: ipaddress.IPv4Address, count: int, interval: float, delay: float
) -> None:
    time.sleep(delay)
    with contextlib.suppress(OSError):
        send_gratuitous_arp(nic, mac, ip, count, interval)


def _fork_to_background() -> bool:
    """True in the parent. The child detaches (own session, no inherited pipes, so the
    executor does not wait for it), sends and exits."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return True
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return False


def _link_mac(ipr: Any, index: int) -> bytes | None:
    link = ipr.get_links(index)[0]
    if link["ifi_type"] != ARPHRD_ETHER:
        return None
    mac = link.get("address")
    return bytes.fromhex(mac.replace(":", "")) if mac else None


def validate(ctx: Context) -> int:
    ctx.int_param("arp_count", minimum=0)
    ctx.int_param("arp_interval", minimum=0)
    ctx.bool_param("arp_bg")
    with netlink() as ipr:
        placement(ctx, ipr)
    return OcfRc.SUCCESS


def start(ctx: Context) -> int:
    ctx.int_param("arp_count", minimum=0)
    ctx.int_param("arp_interval", minimum=0)
    ctx.bool_param("arp_bg")
    with netlink() as ipr:
        place = placement(ctx, ipr)
        if holders(ipr, place.ip, place.index):
            return OcfRc.SUCCESS  # already here: starting again changes nothing
        extra: dict[str, Any] = {}
        if place.broadcast:
            extra["broadcast"] = place.broadcast
        if place.label:
            extra["label"] = place.label
        try:
            ipr.addr(
                "add", index=place.index, address=str(place.ip), prefixlen=place.prefixlen, **extra
            )
            ipr.link("set", index=place.index, state="up")
        except Exception as err:
            raise _netlink_error(
                f"adding {place.ip}/{place.prefixlen} to {place.nic}", err
            ) from None
        mac = _link_mac(ipr, place.index)
    log(f"added {place.ip}/{place.prefixlen} to {place.nic}")
    _announce(ctx, place, mac)
    return OcfRc.SUCCESS


def stop(ctx: Context) -> int:
    ip = parse_ip(ctx)
    nic, _ = _nic_and_label(ctx)
    with netlink() as ipr:
        index = _link_index(ipr, nic) if nic else None
        if nic and index is None:
            return OcfRc.SUCCESS  # no such interface here: the address is not here either
        for where, prefixlen in holders(ipr, ip, index):
            try:
                ipr.addr("del", index=where, address=str(ip), prefixlen=prefixlen)
            except Exception as err:
                raise _netlink_error(f"removing {ip} from interface {where}", err) from None
            log(f"removed {ip}/{prefixlen} from {_link_name(ipr, where)}")
    return OcfRc.SUCCESS


def monitor(ctx: Context) -> int:
    ip = parse_ip(ctx)
    parse_prefix(ctx, ip.version)
    nic, _ = _nic_and_label(ctx)
    with netlink() as ipr:
        index = _link_index(ipr, nic) if nic else None
        if nic and index is None:
            if ctx.is_probe:
                return OcfRc.NOT_RUNNING
            raise OcfError(OcfRc.ERR_GENERIC, f"nic {nic!r} has disappeared")
        return OcfRc.SUCCESS if holders(ipr, ip, index) else OcfRc.NOT_RUNNING


HANDLERS = {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}


def r1_environment(arg: str, env: Mapping[str, str]) -> dict[str, str]:
    """Heartbeat R1's `ADDR[/BITS[/IF[:LABEL]][/BROADCAST]]` as OCF parameters, the way
    heartbeat's IPaddr2 wrapper maps it (a third field starting with a digit is the
    broadcast address, not an interface)."""
    fields = arg.split("/")
    out = dict(env)
    for key in ("nic", "cidr_netmask", "broadcast", "iflabel"):
        out.pop(f"OCF_RESKEY_{key}", None)
    out["OCF_RESKEY_ip"] = fields[0]
    out["OCF_RESOURCE_INSTANCE"] = f"IPaddr2_{fields[0]}"
    if len(fields) > 1 and fields[1]:
        out["OCF_RESKEY_cidr_netmask"] = fields[1]
    if len(fields) > 2 and fields[2]:
        if fields[2][0].isdigit():
            out["OCF_RESKEY_broadcast"] = fields[2]
        else:
            nic, _, label = fields[2].partition(":")
            out["OCF_RESKEY_nic"] = nic
            if label:
                out["OCF_RESKEY_iflabel"] = label
            if len(fields) > 3 and fields[3]:
                out["OCF_RESKEY_broadcast"] = fields[3]
    return out


_R1_ACTIONS = {"start": "start", "stop": "stop", "status": "monitor", "monitor": "monitor"}


def run_r1(arg: str, action: str, env: Mapping[str, str]) -> int:
    """Called as a heartbeat R1 resource script: rc as OCF, and the one status line heartbeat's
    ResourceManager looks for ("running" / "stopped")."""
    if action not in _R1_ACTIONS:
        print(
            f"usage: IPaddr2 ip-address[/netmaskbits[/interface[:label][/broadcast]]] "
            f"{{{'|'.join(_R1_ACTIONS)}}}",
            file=sys.stderr,
        )
        return OcfRc.ERR_UNIMPLEMENTED
    r1_env = r1_environment(arg, env)
    rc = run_agent(INFO, HANDLERS, [_R1_ACTIONS[action]], r1_env)
    if action in ("status", "monitor"):
        print(
            "INFO: IPaddr2 Running OK"
            if rc == 0
            else "INFO: IPaddr2 Resource is stopped"
            if rc == OcfRc.NOT_RUNNING
            else f"ERROR: IPaddr2 rc {rc}"
        )
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2:  # heartbeat R1: IPaddr2 ADDR/BITS/IF ACTION
        return run_r1(args[0], args[1], os.environ)
    return run_agent(INFO, HANDLERS, args)


if __name__ == "__main__":
    sys.exit(main())
