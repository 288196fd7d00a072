"""Heartbeat media for the daemon: UDP ucast/mcast/bcast, serial lines, and ICMP echo.

Each configured `Link` becomes one `LinkEndpoint` (see `endpoint_for`); every datagram that
arrives is handed to a callback with the link's name, and `send` delivers one datagram to every
peer of the link. Send errors are counted and logged at a limited rate, never raised.
"""

from hastack.transport.base import LinkEndpoint, LinkStats, ReceiveCallback
from hastack.transport.icmp import IcmpPinger
from hastack.transport.links import endpoint_for

__all__ = ["IcmpPinger", "LinkEndpoint", "LinkStats", "ReceiveCallback", "endpoint_for"]
