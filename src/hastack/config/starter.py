"""`hastack config init`: a commented starter ha.cf and an authkeys with a fresh random key."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence

from hastack.config.authkeys import read_authkeys
from hastack.config.directory import AUTHKEYS, HACF
from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.hacf import read_hacf
from hastack.config.timing import derive_timing, fmt_seconds


def _hacf_text(
    nodes: Sequence[str],
    ucast: Sequence[tuple[str, str]],
    bcast: Sequence[str],
    bind: Sequence[tuple[str, str]],
    cluster_name: str,
    keepalive: float,
    deadtime: float,
    run_dir: str | None,
    udpport: int | None,
) -> str:
    t = derive_timing(keepalive=keepalive, deadtime=deadtime)
    s = fmt_seconds
    out: list[str] = [
        "# ha.cf - written by `hastack config init`. hastack reads it as heartbeat 3 does,",
        "# plus a few directives of its own (marked 'hastack:'); docs/compat.md lists them all.",
        "# Check it with: hastack config check -c DIR    Timers: hastack config timing -c DIR",
        "",
        "# hastack: the cluster's name; messages of other clusters are dropped.",
        f"cluster_name {cluster_name}",
        "",
        "# Timers (seconds, or milliseconds written 500ms). Set keepalive and deadtime; the",
        "# rest is derived (heartbeat requires deadtime > 2 x keepalive).",
        "# keepalive: how often every node sends a heartbeat on every link.",
        f"keepalive {keepalive:g}",
        "# deadtime: a node silent on every link this long is declared dead.",
        f"deadtime {deadtime:g}",
        f"# warntime: log a late heartbeat after this long (derived: deadtime / 2 = "
        f"{s(t.warntime)}).",
        f"#warntime {t.warntime:g}",
        f"# initdead: deadtime right after start, while networks come up (derived: "
        f"2 x deadtime = {s(t.initdead)}).",
        f"#initdead {t.initdead:g}",
        "",
    ]
    if udpport is not None:
        out += [
            "# UDP port of the ucast/bcast links (heartbeat's default is 694).",
            f"udpport {udpport}",
            "",
        ]
    out += [
        "# Heartbeat links. A node is alive while ANY link delivers its heartbeats, so give",
        "# the cluster at least two independent paths (two networks, or a network and a serial",
        "# line) - one broken link is then a warning, not a failover.",
        "# ucast IF ADDR: send to ADDR over IF; list every node's address (a node ignores its",
        "# own), so the same file serves every node.",
        "# bcast IF: broadcast on IF.   mcast IF GROUP PORT TTL LOOP: multicast.",
        "# serial DEVICE (+ baud 19200): a null-modem cable between two nodes.",
    ]
    out += [f"ucast {iface} {address}" for iface, address in ucast]
    out += [f"bcast {iface}" for iface in bcast]
    if bind:
        out += [
            "# hastack: bind IF ADDR - receive the UDP links of IF on this local address (needed",
            "# when several nodes share one host, each on its own loopback address).",
        ]
        out += [f"bind {iface} {address}" for iface, address in bind]
    out += [
        "",
        "# Every node of the cluster, named as `uname -n` prints it on that node.",
        f"node {' '.join(nodes)}",
        "# hastack: node_id NAME N fixes a node's id (default: order of appearance, 1, 2, ...);",
        "# votes NAME N gives it N quorum votes (default 1). Quorum = more than half the votes.",
    ]
    if len(nodes) == 2:
        out += [
            "",
            "# hastack: two nodes cannot have a majority after one fails, so two_node keeps the",
            "# survivor quorate; it implies wait_for_all (after a cold start both nodes must",
            "# have been seen once), as corosync's votequorum does. Use fencing with it.",
            "two_node on",
        ]
    if run_dir is not None:
        out += [
            "",
            "# hastack: where the node keeps its state and control socket.",
            f"run_dir {run_dir}",
        ]
    out += [
        "",
        "# Ping nodes (pingd): connectivity to them becomes a node attribute.",
        "#ping 10.0.0.254",
        "#ping_group routers 10.0.0.253 10.0.0.254",
        "",
        "# Reset this node through the watchdog if the node daemon hangs, or (with the CIB's",
        "# stonith-watchdog-timeout) if it loses quorum and cannot stop its resources in time.",
        "#watchdog /dev/watchdog",
        "",
        "# Logging: the node logs to stderr (the journal under systemd) and to these files.",
        "#logfile /var/log/hastack.log",
        "#debugfile /var/log/hastack-debug.log",
        "",
    ]
    return "\n".join(out)


def _authkeys_text(key: str) -> str:
    return (
        "# authkeys - written by `hastack config init`. Must stay mode 0600.\n"
        "# Every message is signed with key `auth N` (HMAC-SHA256); every key listed is\n"
        "# accepted on receive, so to change keys: add the new one, copy the file to every\n"
        "# node, switch `auth`, copy again, then remove the old key.\n"
        "auth 1\n"
        f"1 sha256 {key}\n"
    )


def _write_private(path: str, text: str, mode: int) -> None:
    """Write atomically: a temporary file created with `mode` (never chmod-ed later, so the
    key is never readable by others even for an instant), then renamed over `path`."""
    tmp = f"{path}.tmp.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_starter(
    directory: str,
    nodes: Sequence[str],
    ucast: Sequence[tuple[str, str]] | None = (),
    bcast: Sequence[str] | None = (),
    *,
    bind: Sequence[tuple[str, str]] | None = (),
    cluster_name: str = "hastack",
    keepalive: float = 1.0,
    deadtime: float = 10.0,
    run_dir: str | None = None,
    udpport: int | None = None,
    force: bool = False,
) -> list[str]:
    """Write DIR/ha.cf (commented, mode 0644) and DIR/authkeys (a fresh 256-bit sha256 key,
    mode 0600); return the paths written.

    nodes: the node names (`uname -n` of each).
    ucast: (interface, address) pairs, one `ucast IF ADDR` line each (list every node's
        address). bcast: interfaces, one `bcast IF` line each. With neither, `bcast eth0`.
    bind: (interface, local address) pairs (hastack's `bind`, for nodes sharing a host).
    keepalive/deadtime: seconds; the other timers are derived. run_dir/udpport: written only
        when given. Two nodes get `two_node on`.
    force: replace existing files; without it an existing ha.cf or authkeys is an error and
        nothing is written.

    The generated files are parsed before anything is written: bad arguments raise one
    ConfigError listing every problem, and leave the directory untouched.
    """
    ucast, bcast, bind = tuple(ucast or ()), tuple(bcast or ()), tuple(bind or ())
    if not ucast and not bcast:
        bcast = ("eth0",)
    hacf_path = os.path.join(directory, HACF)
    keys_path = os.path.join(directory, AUTHKEYS)
    problems: list[ConfigProblem] = []
    if not force:
        for path in (hacf_path, keys_path):
            if os.path.lexists(path):
                problems.append(
                    ConfigProblem(
                        None, f"{path}: exists; not overwritten (use --force to replace it)"
                    )
                )
    if not nodes:
        problems.append(ConfigProblem(None, "no nodes given: name every node (--node NAME ...)"))
    # Each value must stay one word on its line: a blank, comma or '#' would silently turn
    # it into two values or a comment.
    words = [cluster_name, *nodes, *bcast, *(w for pair in (*ucast, *bind) for w in pair)]
    if run_dir is not None:
        words.append(run_dir)
    for word in words:
        if not word or any(c.isspace() or c in "#," for c in word):
            problems.append(
                ConfigProblem(
                    None,
                    f"{word!r}: a name, address or path must be one word "
                    "without blanks, commas or '#'",
                )
            )
    hacf_text = _hacf_text(
        list(nodes), ucast, bcast, bind, cluster_name, keepalive, deadtime, run_dir, udpport
    )
    keys_text = _authkeys_text(secrets.token_hex(32))
    if nodes:
        # The starter must load as written; checking it here catches bad names and addresses.
        problems += read_hacf(hacf_text, hacf_path)[1]
    problems += read_authkeys(keys_text, keys_path)[1]
    if problems:
        raise ConfigError(problems)
    os.makedirs(directory, exist_ok=True)
    _write_private(hacf_path, hacf_text, 0o644)
    _write_private(keys_path, keys_text, 0o600)
    return [hacf_path, keys_path]
