"""Operation-history entries for hand-written CIBs in the scheduler's tests."""

from __future__ import annotations

from hastack.crm.digest import digest


def lrm_op(
    rsc: str, op: str, interval: int, call: int, rc: int, expected: int | None = None
) -> str:
    """One ``lrm_rsc_op`` as the controller records it for a parameter-less Dummy: a probe
    expects 7 (not running), everything else 0, and the op-digest is that of the unchanged
    definition (a recurring operation's includes its default 20 s timeout)."""
    if expected is None:
        expected = 7 if op == "monitor" and interval == 0 else 0
    params = {"CRM_meta_timeout": "20000"} if interval else {}
    return (
        f'<lrm_rsc_op id="{rsc}_{op}_{interval}_{call}" operation_key="{rsc}_{op}_{interval}" '
        f'operation="{op}" interval="{interval}" call-id="{call}" rc-code="{rc}" op-status="0" '
        f'transition-key="1:1:{expected}:abc" last-rc-change="1000" '
        f'op-digest="{digest(params)}"/>'
    )
