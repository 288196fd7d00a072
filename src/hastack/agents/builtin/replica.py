"""replica: one resource of hastack's replication daemon as a promotable clone.

hastack's answer to LINBIT's ocf:linbit:drbd. The daemon (`hastack replica serve`) plays the
part of DRBD's kernel module: one per node, serving every resource of drbd.conf that has a host
section for the node; this agent starts it when its control socket does not answer, then works
one resource through the daemon's verbs, as ocf:linbit:drbd works one through drbdadm:

* start `up` (attach and connect), stop `down` (demote, disconnect, detach). The daemon keeps
  running after a stop, like the kernel module stays loaded: it may serve other resources.
* promote `primary`, demote `secondary`; monitor reads `status`: 7 when the resource is down,
  not known to the daemon, or the daemon is not running; 0 Secondary; 8 Primary.
* Under Pacemaker (a clone), start, monitor, promote, demote and stop set this node's promotion
  score from the disk states, on drbd's scale (see `promotion_score`).

The daemon's modules are imported inside the actions that need them: they take most of a second
to import, which `meta-data` (run as `nobody` by ocf-tester, and by every cluster manager that
reads the agent) should not pay.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    log,
    main,
)
from hastack.replica.client import DEFAULT_SOCKET  # the client only: no daemon imported

# drbd's promotion scores: 10000 "promote me, my data is as good as it gets"; 1000 "my data is
# good, but I cannot tell about the peer's"; no score "do not promote me".
SCORE_BEST = 10000
SCORE_PEER_UNKNOWN = 1000

# How long start waits for a daemon it launched to answer on its control socket.
DAEMON_START_WAIT = 30.0
# Retries of promote while the daemon says the refusal is transient (the peer still Primary
# during a switchover, the connect handshake in progress).
TRANSIENT = ("transient state", "the peer is Primary", "requests still in flight")
# ...for this long when no cluster manager gave the action a timeout (run by hand).
PROMOTE_RETRY_BY_HAND = 20.0

INFO = AgentInfo(
    name="replica",
    shortdesc="Manages a hastack replicated resource (drbd.conf) as a promotable clone",
    longdesc="""
One resource of drbd.conf, replicated by hastack's replication daemon (`hastack replica
serve`), as a promotable clone: the Promoted instance is the Primary, whose device is served
over NBD; the other is the Secondary. Modelled on LINBIT's ocf:linbit:drbd. Start launches the
daemon when its control socket does not answer, and brings the resource up; stop brings it
down and leaves the daemon running. Promotion scores follow drbd's: 10000 with UpToDate data
and a known peer, 1000 with UpToDate data and an unknown peer, none otherwise.
Configure as a clone with promotable=true, clone-max=2, clone-node-max=1, promoted-max=1.
Resource-level fencing, as with ocf:linbit:drbd and crm-fence-peer: in drbd.conf set
`disk { fencing resource-only; }` (or resource-and-stonith with stonith-enabled=true) and
`handlers { fence-peer "hastack replica fence-peer"; after-resync-target "hastack replica
unfence-peer"; }`; a Primary that loses its peer, or a promotion while the peer is
unknown, then forbids the Promoted role on the peer (constraint
drbd-fence-by-handler-RES-CLONE) until the peer has resynced. Give promote a timeout of at
least 90s: it waits for the fence-peer handler.
""",
    params=(
        Param(
            "drbd_resource",
            "The resource name",
            "The name of the resource in drbd.conf.",
            required=True,
            unique=True,
        ),
        Param(
            "drbdconf",
            "Path to drbd.conf",
            "The configuration file the daemon reads (and validate-all checks).",
            default="/etc/drbd.conf",
        ),
        Param(
            "socket",
            "The daemon's control socket",
            "Where the replication daemon answers its verbs; a daemon is started there when "
            "nothing answers.",
            default=DEFAULT_SOCKET,
        ),
        Param(
            "node",
            "This node's name in drbd.conf",
            "The name of this node's `on HOST` section (default: uname -n, as drbdadm).",
            default=os.uname().nodename,
        ),
        Param(
            "daemon_log",
            "The daemon's log file",
            "Where a daemon started by this agent writes its log (appended).",
            default="{HA_RSCTMP}/hastack-replica.log",
        ),
    ),
    actions=(
        # drbd's advised timeouts: a start may wait for the peer, a stop for writes to drain.
        Action("start", 240),
        Action("stop", 100),
        Action("promote", 90),
        Action("demote", 90),
        Action("notify", 90),
        Action("monitor", 20, interval=10, depth=0, role="Promoted"),
        Action("monitor", 20, interval=20, depth=0, role="Unpromoted"),
        Action("meta-data", 5),
        Action("validate-all", 30),
    ),
)


# --- talking to the daemon -------------------------------------------------------------------


class NotRunning(Exception):
    """The daemon does not answer, or does not know the resource."""


def _socket_path(ctx: Context) -> str:
    path = ctx.param("socket")
    if not os.path.isabs(path):
        raise OcfError(OcfRc.ERR_CONFIGURED, f"parameter socket={path!r} must be an absolute path")
    return path


def _resource(ctx: Context) -> str:
    name = ctx.param("drbd_resource").strip()
    if name == "all":
        # The daemon's verbs take "all"; one clone instance must manage exactly one resource.
        raise OcfError(OcfRc.ERR_CONFIGURED, "drbd_resource=all: name one resource")
    return name


def daemon_answers(path: str) -> bool:
    """Whether a daemon accepts connections on its control socket (a stale file does not)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _ask(ctx: Context, verb: str, *, timeout: float = 60.0, **fields: Any) -> Any:
    """One verb for this resource; ControlError from the daemon becomes NotRunning when the
    daemon is absent or does not know the resource, OcfError(GENERIC) otherwise."""
    from hastack.replica.client import ControlError, request

    path = _socket_path(ctx)
    name = _resource(ctx)
    if not daemon_answers(path):
        raise NotRunning(f"no replica daemon answers on {path}")
    try:
        return request(path, verb, timeout=timeout, resource=name, **fields)
    except ControlError as err:
        text = str(err)
        if text.startswith(f"no resource {name!r}"):
            raise NotRunning(text) from None
        if text.startswith(f"no replica daemon at {path}"):
            raise NotRunning(text) from None
        raise OcfError(OcfRc.ERR_GENERIC, f"{verb} {name}: {text}") from None


def resource_status(ctx: Context) -> dict[str, Any]:
    """This resource as `status --json` shows it (normalised: a disconnected peer's disk is
    DUnknown, whatever the daemon remembered); raises NotRunning."""
    from hastack.replica.status_view import json_status

    raw = _ask(ctx, "status", timeout=15.0)
    resources = json_status(raw if isinstance(raw, list) else [])["resources"]
    name = _resource(ctx)
    mine = [r for r in resources if r.get("name") == name]
    if len(mine) != 1:
        raise OcfError(
            OcfRc.ERR_GENERIC, f"the daemon's status has {len(mine)} entries for {name}, not one"
        )
    return mine[0]


def role_of(res: Mapping[str, Any]) -> str | None:
    """ "Primary", "Secondary", or None when the resource is down; OcfError for anything the
    daemon should never say."""
    role = res.get("role")
    volumes = res.get("volumes") or []
    if role == "Unconfigured" or (not volumes and role != "Primary"):
        return None
    if role in ("Primary", "Secondary") and volumes:
        return str(role)
    raise OcfError(
        OcfRc.ERR_GENERIC,
        f"the daemon reports {res.get('name')} as role {role!r} with {len(volumes)} volume(s)",
    )


# --- promotion scores --------------------------------------------------------------------------


def promotion_score(res: Mapping[str, Any]) -> int | None:
    """This node's promotion score for the resource, drbd's table adapted to hastack.

    drbd: Primary with every local disk UpToDate 10000; every local disk UpToDate and the
    peer's DUnknown (disconnected: the peer may have newer data) 1000; every local disk
    UpToDate and the peer known (connected, or remembered Outdated/Inconsistent) 10000.
    drbd gives 10 to a node whose own disk is not UpToDate while the peer's is, as DRBD can be
    Primary reading through the peer; hastack's daemon refuses to promote a disk that is not
    UpToDate, so any score there would only invite a promote that fails: none, as for
    Outdated, Inconsistent and Diskless disks.
    """
    volumes = res.get("volumes") or []
    if not volumes or role_of(res) is None:
        return None
    if not all(v.get("disk") == "UpToDate" for v in volumes):
        return None
    if res.get("role") == "Primary":
        return SCORE_BEST
    if any(v.get("peer_disk") in (None, "DUnknown") for v in volumes):
        return SCORE_PEER_UNKNOWN
    return SCORE_BEST


def set_promotion_score(ctx: Context, score: int | None) -> None:
    """Tell Pacemaker this instance's promotion score (None: delete it), as crm_master did.

    Only as a clone under a manager that has crm_attribute (Pacemaker's, or the one hastack's
    node daemon gives its agents): elsewhere (ocf-tester, by hand) scores are not this agent's
    business. Stateful has a twin of this helper
    that ignores crm_attribute's exit status; a replicated disk that silently loses its score
    is never promoted, so a failure here is logged.
    """
    tool = shutil.which("crm_attribute")
    if tool is None or "OCF_RESKEY_CRM_meta_clone" not in ctx.env:
        return
    # --promotion stores a reboot-lifetime node attribute, like `crm_master -l reboot`.
    argv = [tool, "--promotion", "-D"] if score is None else [tool, "--promotion", "-v", str(score)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        log(f"crm_attribute failed: {err}")
        return
    if proc.returncode != 0:
        log(f"{' '.join(argv[1:])} exited {proc.returncode}: {proc.stderr.strip()[:200]}")


def _update_score(ctx: Context, res: Mapping[str, Any] | None) -> None:
    set_promotion_score(ctx, None if res is None else promotion_score(res))


# --- validation --------------------------------------------------------------------------------


def validate(ctx: Context) -> int:
    """The resource exists in drbd.conf and has a host section for this node.

    A missing drbd.conf or a node without a section is this node's problem: ERR_INSTALLED, so
    Pacemaker keeps the instance off this node only. A resource missing from a readable
    drbd.conf, or a broken drbd.conf, is the configuration's: ERR_CONFIGURED.
    """
    from hastack.replica.config import ConfigError, load_drbd_conf, select_host

    _socket_path(ctx)
    name = _resource(ctx)
    node = ctx.param("node").strip()
    if not node:
        raise OcfError(OcfRc.ERR_CONFIGURED, "parameter node is empty")
    _check_clone_meta(ctx)
    conf_path = ctx.param("drbdconf")
    if not os.path.exists(conf_path):
        raise OcfError(OcfRc.ERR_INSTALLED, f"{conf_path} does not exist on this node")
    try:
        conf = load_drbd_conf(conf_path)
    except ConfigError as err:
        first = str(err).splitlines()[0] if str(err) else conf_path
        raise OcfError(OcfRc.ERR_CONFIGURED, f"{conf_path} is not usable: {first}") from None
    known = [r.name for r in conf.resources]
    if name not in known:
        raise OcfError(
            OcfRc.ERR_CONFIGURED,
            f"no resource {name!r} in {conf_path} (resources: {', '.join(known) or 'none'})",
        )
    try:
        select_host(conf, name, node)
    except ConfigError as err:
        raise OcfError(OcfRc.ERR_INSTALLED, " ".join(str(err).split())) from None
    return OcfRc.SUCCESS


def _check_clone_meta(ctx: Context) -> None:
    """drbd's checks of its clone: two nodes at most, one instance per node."""
    meta = ctx.meta
    for key, limit in (("clone_max", 2), ("clone_node_max", 1)):
        text = meta.get(key, "")
        if text.isdigit() and int(text) > limit:
            raise OcfError(OcfRc.ERR_CONFIGURED, f"meta {key}={text}: at most {limit}")


# --- actions -----------------------------------------------------------------------------------


def monitor(ctx: Context) -> int:
    _socket_path(ctx)
    _resource(ctx)
    try:
        res = resource_status(ctx)
    except NotRunning:
        _update_score(ctx, None)
        return OcfRc.NOT_RUNNING
    role = role_of(res)
    _update_score(ctx, res)
    if role is None:
        return OcfRc.NOT_RUNNING
    return OcfRc.RUNNING_PROMOTED if role == "Primary" else OcfRc.SUCCESS


def _launch_daemon(ctx: Context) -> None:
    """Start `hastack replica serve --no-up` in its own session, detached from this agent,
    and wait until its control socket answers."""
    path = _socket_path(ctx)
    logfile = Path(ctx.param("daemon_log"))
    if not logfile.is_absolute():
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"parameter daemon_log={str(logfile)!r} must be absolute"
        )
    try:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        out = logfile.open("ab")
    except OSError as err:
        raise OcfError(OcfRc.ERR_PERM, f"cannot open {logfile}: {err.strerror}") from None
    argv = [
        sys.executable,
        "-m",
        "hastack",
        "replica",
        "serve",
        "-c",
        ctx.param("drbdconf"),
        "--node",
        ctx.param("node").strip(),
        "--socket",
        path,
        # Every resource starts down: each is brought up by its own clone instance's start.
        "--no-up",
    ]
    # The daemon outlives this call and serves every resource: it must not carry one
    # instance's OCF_* variables into the drbd.conf handlers it runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
    try:
        with out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd="/",
                env=env,
                # Its own session: Pacemaker kills the agent's process group on a timeout,
                # and the daemon must outlive every agent call.
                start_new_session=True,
                close_fds=True,
            )
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot run {argv[0]}: {err.strerror}") from None
    log(f"started the replica daemon (pid {proc.pid}) on {path}; its log is {logfile}")
    deadline = time.monotonic() + DAEMON_START_WAIT
    while time.monotonic() < deadline:
        if daemon_answers(path):
            return
        if proc.poll() is not None:
            # A daemon started at the same moment by another instance holds the socket: fine.
            if daemon_answers(path):
                return
            raise OcfError(
                OcfRc.ERR_GENERIC,
                f"the replica daemon exited with status {proc.returncode}: {_last_line(logfile)}",
            )
        time.sleep(0.1)
    raise OcfError(
        OcfRc.ERR_GENERIC,
        f"the replica daemon (pid {proc.pid}) did not answer on {path} within "
        f"{DAEMON_START_WAIT:.0f} s; see {logfile}",
    )


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"see {path}"
    return lines[-1] if lines else f"see {path}"


def start(ctx: Context) -> int:
    validate(ctx)
    path = _socket_path(ctx)
    if not daemon_answers(path):
        _launch_daemon(ctx)
    try:
        # `up` is idempotent in the daemon: attach is a no-op when attached, connect only
        # reconnects a StandAlone resource (as drbdadm adjust would).
        _ask(ctx, "up")
        res = resource_status(ctx)
    except NotRunning as err:
        # The daemon was started with another drbd.conf (or an older one): it does not know
        # the resource; restarting the daemon is the operator's call (it serves others).
        raise OcfError(
            OcfRc.ERR_GENERIC, f"{err}; the daemon on {path} must be restarted to read it"
        ) from None
    if role_of(res) is None:
        raise OcfError(OcfRc.ERR_GENERIC, f"{_resource(ctx)} is still down after `up`")
    _update_score(ctx, res)
    return OcfRc.SUCCESS


def stop(ctx: Context) -> int:
    # No validation: a stop must work even when drbd.conf has gone (it only needs the daemon).
    try:
        _ask(ctx, "down")
        res = resource_status(ctx)
    except NotRunning:
        _update_score(ctx, None)
        return OcfRc.SUCCESS  # no daemon, or it does not know the resource: it is down
    if role_of(res) is not None:
        raise OcfError(OcfRc.ERR_GENERIC, f"{_resource(ctx)} is still {res.get('role')} after down")
    _update_score(ctx, None)
    return OcfRc.SUCCESS


def _running_status(ctx: Context, action: str) -> dict[str, Any]:
    try:
        res = resource_status(ctx)
    except NotRunning as err:
        raise OcfError(OcfRc.NOT_RUNNING, f"{action} of a stopped resource: {err}") from None
    if role_of(res) is None:
        raise OcfError(
            OcfRc.NOT_RUNNING, f"{action} of a stopped resource: {_resource(ctx)} is down"
        )
    return res


def promote(ctx: Context) -> int:
    res = _running_status(ctx, "promote")
    if role_of(res) == "Primary":
        _update_score(ctx, res)
        return OcfRc.SUCCESS
    bad = [
        f"volume {v.get('volume')} is {v.get('disk')}"
        for v in res.get("volumes", [])
        if v.get("disk") != "UpToDate"
    ]
    if bad:
        raise OcfError(
            OcfRc.ERR_GENERIC,
            f"cannot promote {_resource(ctx)}: {', '.join(bad)}, not UpToDate "
            f"(connection {res.get('cstate')}, peer disk "
            f"{', '.join(str(v.get('peer_disk')) for v in res.get('volumes', []))})",
        )
    # Retry transient refusals until shortly before Pacemaker's timeout for this promote.
    budget = ctx.timeout_ms / 1000.0 - 5.0 if ctx.timeout_ms else PROMOTE_RETRY_BY_HAND
    deadline = time.monotonic() + max(budget, 1.0)
    while True:
        try:
            _ask(ctx, "primary")
            break
        except OcfError as err:
            if not any(t in err.reason for t in TRANSIENT) or time.monotonic() >= deadline:
                raise
            time.sleep(1.0)
        except NotRunning as err:
            raise OcfError(OcfRc.NOT_RUNNING, f"promote: {err}") from None
    res = _running_status(ctx, "promote")
    if role_of(res) != "Primary":
        raise OcfError(OcfRc.ERR_GENERIC, f"{_resource(ctx)} is not Primary after `primary`")
    _update_score(ctx, res)
    return OcfRc.SUCCESS


def demote(ctx: Context) -> int:
    res = _running_status(ctx, "demote")
    if role_of(res) == "Primary":
        try:
            _ask(ctx, "secondary")
        except NotRunning as err:
            raise OcfError(OcfRc.NOT_RUNNING, f"demote: {err}") from None
        res = _running_status(ctx, "demote")
        if role_of(res) != "Secondary":
            raise OcfError(OcfRc.ERR_GENERIC, f"{_resource(ctx)} is still Primary after demote")
    _update_score(ctx, res)
    return OcfRc.SUCCESS


def notify(ctx: Context) -> int:
    # drbd uses notifications to adjust its fencing constraints and connections; hastack's
    # daemon reconnects by itself, so a notification is only logged.
    meta = ctx.meta
    log(
        f"{ctx.instance}: notify {meta.get('notify_type', '?')}-{meta.get('notify_operation', '?')}"
    )
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
