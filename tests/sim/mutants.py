"""Deliberately broken membership cores: each must make one invariant checker fail.

They change only the public API (is_dc, and crm_view, the view the resource manager acts on
and the simulator checks; status() reports the same values), so they stay valid whatever
the core's internals become. A checker that cannot catch these proves nothing when it reports none.
"""

from __future__ import annotations

from hastack.membership.core import MembershipCore

View = tuple[str | None, int, bool, tuple[str, ...], bool]


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

    def crm_view(self, now: float) -> View:
        dc, term, is_dc, members, _ = super().crm_view(now)
        return dc, term, is_dc, members, True


class LonerMembersCore(MembershipCore):
    """Reports only itself as a member: the members never converge."""

    def crm_view(self, now: float) -> View:
        dc, term, is_dc, _, quorate = super().crm_view(now)
        return dc, term, is_dc, (self.name,), quorate
