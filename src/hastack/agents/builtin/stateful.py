"""Stateful: a promotable resource for tests and demos. Its state file holds its role.

Started it is Unpromoted (monitor 0); promoted it is Promoted (monitor 8, RUNNING_PROMOTED).
Under a cluster manager that has `crm_attribute` (Pacemaker, or hastack's node daemon, which
gives its agents one) it sets its promotion score, so a promotable clone of it gets one instance
promoted; elsewhere (ocf-tester, by hand) scores are the manager's business.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    log,
    main,
    state_path,
    write_file,
)

PROMOTED = "Promoted"
UNPROMOTED = "Unpromoted"
SCORE_UNPROMOTED = 5
SCORE_PROMOTED = 10

INFO = AgentInfo(
    name="Stateful",
    shortdesc="Example promotable resource agent (hastack)",
    longdesc="A resource with two roles, Promoted and Unpromoted, kept in a state file. "
    "Monitor returns 8 (running promoted) when promoted.",
    params=(
        Param(
            "state",
            "State file",
            "Where the resource records its role.",
            default="{HA_RSCTMP}/Stateful-{instance}.state",
            unique=True,
        ),
        Param(
            "notify_delay",
            "Notify delay",
            "Seconds the notify action sleeps before returning (a slow notify).",
            default="0",
        ),
    ),
    actions=(
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0, role="Promoted"),
        Action("monitor", 20, interval=11, depth=0, role="Unpromoted"),
        Action("promote", 10),
        Action("demote", 10),
        Action("notify", 5),
        Action("meta-data", 5),
        Action("validate-all", 20),
    ),
)


def _role(ctx: Context) -> str | None:
    path = state_path(ctx)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot read {path}: {err.strerror}") from None
    if text not in (PROMOTED, UNPROMOTED):
        raise OcfError(OcfRc.ERR_GENERIC, f"state file {path} holds {text[:40]!r}, not a role")
    return text


def _set_role(ctx: Context, role: str) -> None:
    write_file(state_path(ctx), role + "\n")
    _promotion_score(ctx, SCORE_PROMOTED if role == PROMOTED else SCORE_UNPROMOTED)


def _promotion_score(ctx: Context, score: int | None) -> None:
    """Tell Pacemaker this instance's promotion score; only when run as one of its clones."""
    tool = shutil.which("crm_attribute")
    if tool is None or "OCF_RESKEY_CRM_meta_clone" not in ctx.env:
        return
    argv = [tool, "--promotion", "-D"] if score is None else [tool, "--promotion", "-v", str(score)]
    try:
        subprocess.run(argv, capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        log(f"crm_attribute failed: {err}")  # the score is advice; the action still succeeded


def validate(ctx: Context) -> int:
    state_path(ctx)
    ctx.float_param("notify_delay")
    return OcfRc.SUCCESS


def monitor(ctx: Context) -> int:
    validate(ctx)
    role = _role(ctx)
    if role is None:
        return OcfRc.NOT_RUNNING
    if ctx.is_probe:
        _promotion_score(ctx, SCORE_PROMOTED if role == PROMOTED else SCORE_UNPROMOTED)
    return OcfRc.RUNNING_PROMOTED if role == PROMOTED else OcfRc.SUCCESS


def start(ctx: Context) -> int:
    validate(ctx)
    if _role(ctx) == PROMOTED:
        raise OcfError(OcfRc.RUNNING_PROMOTED, "start asked of a promoted instance; demote first")
    _set_role(ctx, UNPROMOTED)
    return OcfRc.SUCCESS


def stop(ctx: Context) -> int:
    validate(ctx)
    if _role(ctx) == PROMOTED:
        # Pacemaker always demotes before it stops; a stop of a promoted instance is a bug of
        # the caller, and saying so is better than silently losing the promoted role.
        raise OcfError(OcfRc.RUNNING_PROMOTED, "stop asked of a promoted instance; demote first")
    _promotion_score(ctx, None)
    state_path(ctx).unlink(missing_ok=True)
    return OcfRc.SUCCESS


def promote(ctx: Context) -> int:
    validate(ctx)
    if _role(ctx) is None:
        raise OcfError(OcfRc.NOT_RUNNING, "promote asked of a stopped instance; start first")
    _set_role(ctx, PROMOTED)
    return OcfRc.SUCCESS


def demote(ctx: Context) -> int:
    validate(ctx)
    if _role(ctx) is None:
        raise OcfError(OcfRc.NOT_RUNNING, "demote asked of a stopped instance")
    _set_role(ctx, UNPROMOTED)
    return OcfRc.SUCCESS


def notify(ctx: Context) -> int:
    delay = ctx.float_param("notify_delay")
    meta = ctx.meta
    kind = f"{meta.get('notify_type', '?')}-{meta.get('notify_operation', '?')}"
    log(f"{ctx.instance}: notify {kind}")
    if delay:
        time.sleep(delay)
    return OcfRc.SUCCESS


HANDLERS = {
    "start": start,
    "stop": stop,
    "monitor": monitor,
    "promote": promote,
    "demote": demote,
    "notify": notify,
    "validate-all": validate,
}

if __name__ == "__main__":
    main(INFO, HANDLERS)
