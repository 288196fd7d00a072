"""Reliable, ordered cluster messaging between node daemons over the heartbeat links.

`MessagingCore` (sans-IO) is the protocol; `hastack.transport.message_link` carries its
datagrams on UDP media (port + 1); serial lines carry them beside the heartbeat.
"""

from hastack.messaging.core import (
    Deliver,
    Effect,
    MessagingCore,
    MessagingParams,
    StreamReset,
    Transmit,
)

__all__ = [
    "Deliver",
    "Effect",
    "MessagingCore",
    "MessagingParams",
    "StreamReset",
    "Transmit",
]
