"""Dummy: a resource that is "running" while its state file exists. For tests and demos.

`op_sleep` makes every action take that long, so timeouts can be exercised with a real agent.
"""

from __future__ import annotations

import time

from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfRc,
    Param,
    main,
    state_path,
    write_file,
)

INFO = AgentInfo(
    name="Dummy",
    shortdesc="Example stateless resource agent (hastack)",
    longdesc="A resource that does nothing: it is running while its state file exists. "
    "Useful for testing the cluster and the executor.",
    params=(
        Param(
            "state",
            "State file",
            "Where the resource records that it is running.",
            default="{HA_RSCTMP}/Dummy-{instance}.state",
            unique=True,
        ),
        Param(
            "fake",
            "Fake attribute",
            "A parameter that can be changed by reload.",
            "string",
            default="dummy",
        ),
        Param(
            "op_sleep",
            "Operation sleep duration",
            "Seconds every action sleeps before it acts (to test timeouts).",
            "string",
            default="0",
        ),
    ),
    actions=(
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("reload", 20),
        Action("migrate_to", 20),
        Action("migrate_from", 20),
        Action("meta-data", 5),
        Action("validate-all", 20),
    ),
)


def _validate(ctx: Context) -> int:
    state_path(ctx)
    delay = ctx.float_param("op_sleep")
    if delay and ctx.action != "validate-all":
        time.sleep(delay)
    return OcfRc.SUCCESS


def monitor(ctx: Context) -> int:
    _validate(ctx)
    return OcfRc.SUCCESS if state_path(ctx).exists() else OcfRc.NOT_RUNNING


def start(ctx: Context) -> int:
    _validate(ctx)
    write_file(state_path(ctx), f"{ctx.instance}\n")
    return OcfRc.SUCCESS


def stop(ctx: Context) -> int:
    _validate(ctx)
    state_path(ctx).unlink(missing_ok=True)
    return OcfRc.SUCCESS


def reload(ctx: Context) -> int:
    _validate(ctx)
    return OcfRc.SUCCESS


def migrate_to(ctx: Context) -> int:
    # The source side: the resource leaves this node.
    return stop(ctx)


def migrate_from(ctx: Context) -> int:
    # The target side: the resource arrives here.
    return start(ctx)


HANDLERS = {
    "start": start,
    "stop": stop,
    "monitor": monitor,
    "reload": reload,
    "migrate_to": migrate_to,
    "migrate_from": migrate_from,
    "validate-all": _validate,
}

if __name__ == "__main__":
    main(INFO, HANDLERS)
