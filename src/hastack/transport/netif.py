"""Facts about local network interfaces, read over netlink with pyroute2 (never by parsing `ip`)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute


@dataclass(frozen=True)
class InterfaceAddress:
    address: str
    prefixlen: int
    broadcast: str | None


def interface_index(ifname: str) -> int | None:
    """The kernel's index of `ifname`, or None when there is no such interface."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return None


def ipv4_addresses(ifname: str) -> list[InterfaceAddress]:
    """Every IPv4 address on `ifname` (empty when the interface does not exist)."""
    index = interface_index(ifname)
    if index is None:
        return []
    result = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr(index=index, family=socket.AF_INET):
            address = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
            if address is None:
                continue
            result.append(
                InterfaceAddress(address, int(msg["prefixlen"]), msg.get_attr("IFA_BROADCAST"))
            )
    return result


def broadcast_address(ifname: str) -> str:
    """The IPv4 broadcast address of `ifname`.

    Taken from the address's IFA_BROADCAST when the kernel has one, else computed from the
    first address and its prefix (the kernel leaves it unset when `ip addr add` had no `brd`).
    Raises OSError when the interface has no IPv4 address.
    """
    addresses = ipv4_addresses(ifname)
    if not addresses:
        raise OSError(f"interface {ifname!r} does not exist or has no IPv4 address")
    first = addresses[0]
    if first.broadcast:
        return first.broadcast
    network = ipaddress.IPv4Network(f"{first.address}/{first.prefixlen}", strict=False)
    return str(network.broadcast_address)
