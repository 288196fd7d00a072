"""drbddisk: heartbeat R1's script for a replicated disk, over hastack's replication daemon.

    python -m hastack.agents.builtin.drbddisk [RESOURCE] {start|stop|status}

As haresources names it (`drbddisk::r0`), heartbeat runs `drbddisk r0 start|stop|status`:

* start: `primary`, retried once a second for a few seconds, as heartbeat's drbddisk does:
  after a failover the peer may still count as Primary until the replication link times out.
* stop: `secondary`, retried likewise (a device still held open may be released meanwhile).
* status: prints "running (Primary)" or "stopped (ROLE)", which heartbeat reads (it ignores the
  exit code); the exit code is LSB's too: 0 running, 3 stopped.

The resource defaults to "all" for start and stop, as in drbddisk; status needs a name. The
daemon's control socket is $HASTACK_REPLICA_SOCKET, else the daemon's default. The script only
switches roles: the daemon is started and the resource brought up by the node's boot, as DRBD's
init script does for drbddisk. Only the standard library is imported until a verb runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hastack.replica.client import DEFAULT_SOCKET

SOCKET_ENV = "HASTACK_REPLICA_SOCKET"  # the variable `hastack replica` itself reads

START_TRIES = 6  # heartbeat's drbddisk: six tries of `drbdadm primary`, a second apart
STOP_TRIES = 3  # and three of `drbdadm secondary`
RETRY_DELAY = 1.0

# LSB exit codes
LSB_OK = 0
LSB_GENERIC = 1
LSB_ARGS = 2
LSB_NOT_RUNNING = 3

USAGE = "usage: drbddisk [RESOURCE] {start|stop|status}"


def socket_path(env: Mapping[str, str]) -> str:
    return env.get(SOCKET_ENV) or DEFAULT_SOCKET


def _request(path: str, verb: str, resource: str) -> Any:
    from hastack.replica.client import request

    return request(path, verb, resource=resource)


def _retry(
    verb: str,
    resource: str,
    path: str,
    tries: int,
    ask: Callable[[str, str, str], Any],
    sleep: Callable[[float], None],
) -> int:
    from hastack.replica.client import ControlError

    for attempt in range(1, tries + 1):
        try:
            ask(path, verb, resource)
            return LSB_OK
        except ControlError as err:
            print(f"drbddisk: {verb} {resource} (try {attempt}/{tries}): {err}", file=sys.stderr)
        if attempt < tries:
            sleep(RETRY_DELAY)
    return LSB_GENERIC


def role(path: str, resource: str, ask: Callable[[str, str, str], Any]) -> str:
    """This node's role for `resource`: Primary, Secondary, Unconfigured (down, unknown to the
    daemon, or no daemon) or Unknown (an answer that makes no sense)."""
    from hastack.replica.client import ControlError

    try:
        result = ask(path, "status", resource)
    except ControlError as err:
        text = str(err)
        if text.startswith(("no replica daemon", f"no resource {resource!r}")) or (
            "Connection refused" in text
        ):
            return "Unconfigured"
        print(f"drbddisk: status {resource}: {text}", file=sys.stderr)
        return "Unknown"
    if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], dict):
        return "Unknown"
    found = result[0].get("role")
    if found == "Unconfigured" or (found == "Secondary" and not result[0].get("volumes")):
        return "Unconfigured"
    return found if found in ("Primary", "Secondary") else "Unknown"


def run(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    ask: Callable[[str, str, str], Any] = _request,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    env = os.environ if env is None else env
    if len(argv) == 1:
        resource, command = "all", argv[0]
    elif len(argv) == 2:
        resource, command = argv
    else:
        print(USAGE, file=sys.stderr)
        return LSB_ARGS
    path = socket_path(env)
    if command == "start":
        return _retry("primary", resource, path, START_TRIES, ask, sleep)
    if command == "stop":
        return _retry("secondary", resource, path, STOP_TRIES, ask, sleep)
    if command == "status":
        if resource == "all":
            print("A resource name is required for status inquiries.")
            return LSB_ARGS
        found = role(path, resource, ask)
        if found == "Primary":
            print("running (Primary)")
            return LSB_OK
        # heartbeat reads "stopped" as not running, whatever follows in parentheses.
        print(f"stopped ({found})")
        return LSB_NOT_RUNNING
    print(USAGE, file=sys.stderr)
    return LSB_ARGS


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
