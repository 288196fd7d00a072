"""The real peer: Linux-HA heartbeat 3 (Debian's package) running in lab namespace hosts.

heartbeat reads fixed paths (/etc/ha.d, /var/lib/heartbeat, /run/heartbeat*) and takes its
node name from `uname -n`, so each node runs in its own mount and UTS namespace on top of its
network namespace: per-node copies of those directories are bind-mounted over the real ones
and the hostname is set to the node's name. The ha.cf uses the same ucast links, keepalive and
deadtime as the hastack cluster it is compared with.

heartbeat daemonizes into several processes (master control, one reader and one writer per
link, FIFO reader), so a node's processes are found with `ip netns pids` and "killing a node"
means SIGKILL to every one of them by PID, as a crash would do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hastack.lab.cluster import Media, Timers, fmt_duration, media_lines
from hastack.lab.logwatch import LogTail, wait_for_all
from hastack.lab.netns import Lab, lab_unavailable_reason

HEARTBEAT_PATHS = ("/usr/libexec/heartbeat/heartbeat", "/usr/lib/heartbeat/heartbeat")
DEAD_LINE = r"WARN: node {node}: is dead"
ACTIVE_LINE = r"Status update for node {node}: status (active|up)"


def heartbeat_binary() -> str | None:
    for path in HEARTBEAT_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def heartbeat_unavailable_reason() -> str | None:
    reason = lab_unavailable_reason()
    if reason:
        return reason
    if heartbeat_binary() is None:
        return "heartbeat 3 is not installed (Debian package `heartbeat`)"
    for tool in ("unshare", "mount", "hostname"):
        if shutil.which(tool) is None:
            return f"running heartbeat in namespaces needs `{tool}`"
    return None


def ns_pids(netns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(w) for w in out.stdout.split() if w.isdigit()]


@dataclass
class HeartbeatCluster:
    """heartbeat 3 on N lab hosts. Use as a context manager."""

    nodes: int | Sequence[str] = 3
    timers: Timers = field(default_factory=Timers)
    links: int = 2
    media: Media = "ucast"
    workdir: str | None = None
    keep: bool = False
    # R1 resources: the haresources file every node gets (empty: none); a function of the
    # cluster when it needs the lab's addresses (a floating IP on its subnet)
    haresources: str | Callable[[HeartbeatCluster], str] = ""
    # namespace hosts that run no heartbeat (a client of the cluster's services), on every link
    extra_hosts: Sequence[str] = ()

    def __post_init__(self) -> None:
        n = self.nodes
        self.names = [f"n{i + 1}" for i in range(n)] if isinstance(n, int) else list(n)
        self.lab: Lab | None = None
        self._own_workdir = self.workdir is None
        self._closed = False

    def __enter__(self) -> HeartbeatCluster:
        try:
            self.build()
            for name in self.names:
                self.start(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node_dir(self, name: str) -> Path:
        assert self.workdir is not None
        return Path(self.workdir) / name

    def log_path(self, name: str) -> Path:
        return self.node_dir(name) / "ha-log"

    def build(self) -> None:
        reason = heartbeat_unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix=f"hastack-hb-{os.getpid()}-")
        self.lab = Lab([*self.names, *self.extra_hosts], links=self.links)
        self.lab.build()
        self._key = os.urandom(16).hex()  # one key for the whole cluster
        for name in self.names:
            self._prepare(name)

    def _prepare(self, name: str) -> None:
        assert self.lab is not None
        d = self.node_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        # cp -a keeps the owners heartbeat expects (hacluster:haclient on ccm/ and crm/).
        subprocess.run(["cp", "-a", "/etc/ha.d", str(d / "etc-ha.d")], check=True)
        subprocess.run(["cp", "-a", "/var/lib/heartbeat", str(d / "var-lib-heartbeat")], check=True)
        run = d / "run" / "heartbeat"
        for sub in ("ccm", "crm", "dopd"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["chown", "-R", "hacluster:haclient", str(run)], check=False)
        t = self.timers
        lines = [
            "udpport 694",  # heartbeat: must precede the media lines
            f"logfile {self.log_path(name)}",
            "use_logd no",
            f"keepalive {fmt_duration(t.keepalive)}",
            f"deadtime {fmt_duration(t.deadtime)}",
            f"warntime {fmt_duration(t.warntime or t.deadtime / 2)}",
            f"initdead {fmt_duration(t.initdead or 2 * t.deadtime)}",
            "crm off",
            "auto_failback off",
        ]
        peers = [p for p in self.names if p != name]
        addresses = [[self.lab[p].addr(j) for j in range(self.links)] for p in peers]
        lines += media_lines(self.media, self.links, addresses, 694)
        lines += [f"node {n}" for n in self.names]
        (d / "etc-ha.d" / "ha.cf").write_text("\n".join(lines) + "\n")
        # heartbeat refuses to start without the file, even with no resources
        res = self.haresources(self) if callable(self.haresources) else self.haresources
        (d / "etc-ha.d" / "haresources").write_text(res)
        authkeys = d / "etc-ha.d" / "authkeys"
        authkeys.write_text(f"auth 1\n1 sha1 {self._key}\n")
        os.chmod(authkeys, 0o600)

    def start(self, name: str) -> None:
        assert self.lab is not None
        d = self.node_dir(name)
        script = (
            "set -e\n"
            "mount --make-rprivate /\n"
            f"mount --bind {d}/etc-ha.d /etc/ha.d\n"
            f"mount --bind {d}/var-lib-heartbeat /var/lib/heartbeat\n"
            f"mount --bind {d}/run /run\n"
            f"hostname {name}\n"
            f"exec {heartbeat_binary()}\n"
        )
        proc = self.lab[name].start(
            ["unshare", "--mount", "--uts", "sh", "-c", script], log_path=str(d / "stdout")
        )
        proc.wait(20)  # heartbeat daemonizes: the started process returns once it forked
        if proc.returncode != 0:
            raise RuntimeError(f"heartbeat on {name} failed to start: {proc.log()[-2000:]}")

    def pids(self, name: str) -> list[int]:
        assert self.lab is not None
        return ns_pids(self.lab[name].netns)

    def kill(self, name: str) -> float:
        """SIGKILL every process of the node; time.monotonic() just before the first signal."""
        pids = self.pids(name)
        if not pids:
            raise RuntimeError(f"heartbeat on {name} is not running")
        t = time.monotonic()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return t

    def tails(self, names: Sequence[str]) -> dict[str, LogTail]:
        return {n: LogTail(self.log_path(n)) for n in names}

    def wait_sees_active(
        self,
        observers: Sequence[str],
        node: str,
        timeout: float,
        tails: dict[str, LogTail] | None = None,
    ) -> None:
        """Wait until every observer's log says `node` is up (from the tails' offsets)."""
        tails = tails or {n: LogTail(self.log_path(n), offset=0) for n in observers}
        wait_for_all(tails, ACTIVE_LINE.format(node=node), timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.lab is not None:
            self.lab.close()  # SIGKILLs every process left in the namespaces, then deletes them
        if self._own_workdir and not self.keep and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
