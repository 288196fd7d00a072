"""Open one endpoint per configured link."""

from __future__ import annotations

from hastack.config.model import Link
from hastack.transport.base import LinkEndpoint, ReceiveCallback
from hastack.transport.serial_link import SerialEndpoint
from hastack.transport.udp import BcastEndpoint, McastEndpoint, UcastEndpoint

ENDPOINTS: dict[str, type[LinkEndpoint]] = {
    "ucast": UcastEndpoint,
    "mcast": McastEndpoint,
    "bcast": BcastEndpoint,
    "serial": SerialEndpoint,
}


def endpoint_for(link: Link, on_receive: ReceiveCallback) -> LinkEndpoint:
    """The (not yet opened) endpoint for `link`; call `await endpoint.open()` next."""
    try:
        cls = ENDPOINTS[link.kind]
    except KeyError:
        raise ValueError(f"unknown link kind {link.kind!r}") from None
    return cls(link, on_receive)
