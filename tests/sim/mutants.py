"""Deliberately broken membership cores: each must make one invariant checker fail.

They change only the public API (is_dc, status), so they stay valid whatever the core's
internals become. A checker that cannot catch these proves nothing when it reports none.
"""

from __future__ import annotations

from dataclasses import replace

from hastack.membership.core import MembershipCore
from hastack.membership.status import NodeStatus


class StickyLeaseCore(MembershipCore):
    """Once DC, always DC: ignores lease expiry (the classic split-brain bug)."""

    sticky = False

    def is_dc(self, now: float) -> bool:
        if not self.sticky and super().is_dc(now):
            self.sticky = True
        return self.sticky


class NeverDcCore(MembershipCore):
    """Never admits to holding a lease: a cluster of these never has a DC."""

    def is_dc(self, now: float) -> bool:
        return False


class AlwaysQuorateCore(MembershipCore):
    """Reports quorum whatever it sees: both sides of a partition claim it."""

    def status(self, now: float) -> NodeStatus:
        return replace(super().status(now), quorate=True)


class LonerMembersCore(MembershipCore):
    """Reports only itself as a member: the members never converge."""

    def status(self, now: float) -> NodeStatus:
        return replace(super().status(now), members=[self.name])
