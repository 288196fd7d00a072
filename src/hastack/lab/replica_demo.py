"""A replicated disk under a lab cluster: `hastack replica` on two nodes, an ext4 file system
on it, and a group that follows its Primary (used by `hastack demo`).

Two of the cluster's namespace hosts (n1 and n2) run `hastack replica serve` for one resource,
r0, replicated with protocol C over link 1; the backing disks are files in the cluster's work
directory. The file system is made before the daemons start: create-md on both backing files,
mkfs.ext4 on n1's data area, that area copied to n2's, so that both start identical and the
initial sync is skipped (`new-current-uuid --clear-bitmap` on the connected pair, as DRBD
documents for new disks).

The CIB has a promotable clone of ocf:hastack:replica (its node name and control socket per
node, by #uname rules) and a group `web` colocated with the Promoted instance and ordered after
the promotion: ocf:hastack:nbdfuse (the Primary's NBD export as a file), ocf:hastack:Filesystem
(ext4 on that file through a loop device), the floating IP, a writer that appends a numbered
line to `writes.log` on the file system every 100 ms with an fsync each (and prints each line
to a log outside it once the fsync returned: what it printed, the replicated disk had), and
Python's web server serving the file system's root. The agent's promotion scores (drbd's
10000/1000/none, through the crm_attribute the node daemon gives its agents) count for the
Promoted role together with role="Promoted" location constraints that prefer n1, then n2; the
agent refuses to promote data that is not UpToDate either way.

The node daemons run their agents inside their own mount namespaces (`ip netns exec`), so the
FUSE mounts and ext4 mounts of a node vanish with its processes; a loop device does not: it
stays bound to its (dead) FUSE file. The FUSE file has a name unique to this process, and
`cleanup_loops` detaches every loop device bound to a file of that name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hastack.lab.cluster import Cluster, hastack_argv, hastack_env
from hastack.lab.process import ManagedProcess
from hastack.lab.services import WEB_PORT, ip_primitive

RESOURCE = "r0"
REPLICA_NODES = ("n1", "n2")
PEER_PORT = 7789
NBD_PORT = 10809
IMAGE_SIZE = 32 << 20
WRITE_INTERVAL = 0.1
LOG_NAME = "writes.log"
TOOLS = ("nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "mount", "umount")
LINE = re.compile(r"^(\d{6}) (\S+) (\S+)$")

WRITER = """\
# The demo's service: append a numbered line to a file on the replicated file system every
# INTERVAL seconds, fsync it, and only then print it (to the anything agent's log, outside
# the file system). It continues the numbering of the lines already in the file.
import os, re, sys, time
path, interval, node = sys.argv[1], float(sys.argv[2]), sys.argv[3]
number = 0
try:
    with open(path, "rb") as f:
        for raw in f.read().decode(errors="replace").splitlines():
            m = re.match(r"^(\\d{6}) ", raw)
            if m:
                number = int(m.group(1))
except FileNotFoundError:
    pass
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
os.fsync(dirfd)
os.close(dirfd)
while True:
    number += 1
    line = f"{number:06d} {node} {time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}"
    os.write(fd, (line + "\\n").encode())
    os.fsync(fd)
    print(line, flush=True)
    time.sleep(interval)
"""


def replica_unavailable_reason() -> str | None:
    """Why the demo cannot run its replicated-disk group here, or None when it can."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: nbdfuse, fuse3, util-linux, e2fsprogs)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (modprobe fuse)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control is missing: modprobe loop)"
    return None


def _per_node_attributes(rid: str, nvpairs: Callable[[str], list[tuple[str, str, object]]]) -> str:
    """Instance attributes of `rid` for each replica node, chosen by #uname, the first node's
    scored highest: nvpairs(node) as (id suffix, name, value)."""
    blocks = []
    for i, n in enumerate(REPLICA_NODES):
        ia = f"{rid}-ia-{n}"
        lines = [
            f'<instance_attributes id="{ia}" score="{10 - i}">',
            f'  <rule id="{ia}-rule" score="0">',
            f'    <expression id="{ia}-uname" attribute="#uname" operation="eq" value="{n}"/>',
            "  </rule>",
            *(
                f'  <nvpair id="{ia}-{key}" name="{name}" value="{v}"/>'
                for key, name, v in nvpairs(n)
            ),
            "</instance_attributes>",
        ]
        blocks.append("".join(f"\n          {line}" for line in lines))
    return "".join(blocks)


# start, stop and monitor of the group's `anything` resources: (name, interval, timeout)
_ANYTHING_OPS = (("monitor", "2s", "10s"), ("start", "0", "20s"), ("stop", "0", "20s"))


def _group_primitive(
    rid: str,
    agent: str,
    nvpairs: list[tuple[str, str, object]],
    ops: Sequence[tuple[str, str, str]],
    *,
    ia_score: bool = False,
    per_node: str = "",
) -> str:
    """A primitive of the web group, as the CIB lists it: nvpairs (id, name, value), then
    per-node instance attributes, then ops (name, interval, timeout)."""
    pad = " " * 8
    score = ' score="0"' if ia_score else ""
    lines = [
        f'<primitive id="{rid}" class="ocf" provider="hastack" type="{agent}">',
        f'{pad}  <instance_attributes id="{rid}-ia"{score}>',
        *(f'{pad}    <nvpair id="{i}" name="{n}" value="{v}"/>' for i, n, v in nvpairs),
        f"{pad}  </instance_attributes>{per_node}",
        f"{pad}  <operations>",
        *(
            f'{pad}    <op id="{rid}-{name}" name="{name}" interval="{interval}" '
            f'timeout="{timeout}"/>'
            for name, interval, timeout in ops
        ),
        f"{pad}  </operations>",
        f"{pad}</primitive>",
    ]
    return "\n".join(lines)


@dataclass
class ReplicaDisk:
    """The replicated disk of a lab cluster: its files, daemons and CIB (see the module)."""

    cluster: Cluster
    work: Path
    conf: Path
    images: dict[str, Path]
    sockets: dict[str, Path]
    fuse_dir: Path
    fuse_file: str  # unique to this process: how its loop devices are found at cleanup
    mount_dir: Path
    writer: Path
    writer_log: Path
    data_bytes: int = 0
    daemons: dict[str, ManagedProcess] = field(default_factory=dict)

    @classmethod
    def plan(cls, cluster: Cluster) -> ReplicaDisk:
        """The paths for `cluster` (a function of its work directory, so that the CIB written
        while the cluster is built and the disk made after it agree)."""
        assert cluster.workdir is not None
        work = Path(cluster.workdir) / "replica"
        return cls(
            cluster=cluster,
            work=work,
            conf=work / "drbd.conf",
            images={n: work / f"{n}.img" for n in REPLICA_NODES},
            sockets={n: work / f"{n}.sock" for n in REPLICA_NODES},
            fuse_dir=work / "fuse",
            fuse_file=f"{RESOURCE}-demo-{os.getpid()}",
            mount_dir=work / "mnt",
            writer=work / "writer.py",
            writer_log=work / "writer.log",
        )

    @property
    def device(self) -> str:
        return f"{self.fuse_dir}/{self.fuse_file}"

    def _address(self, node: str) -> str:
        """Replication runs on link 1 (the last link when there is only one)."""
        lab = self.cluster.lab
        assert lab is not None
        return lab[node].addresses[min(1, len(lab[node].addresses) - 1)]

    # ------------------------------------------------------------------ the configuration
    def drbd_conf(self) -> str:
        hosts = "".join(
            f"  on {n} {{\n"
            f"    device /dev/drbd0;\n    disk {self.images[n]};\n    meta-disk internal;\n"
            f"    address {self._address(n)}:{PEER_PORT};\n"
            f"    nbd-address 127.0.0.1:{NBD_PORT};\n  }}\n"
            for n in REPLICA_NODES
        )
        return (
            f"# written by hastack demo\nresource {RESOURCE} {{\n"
            "  # a lost peer noticed within ~1.5 s (ping-int 1, ping-timeout 0.5 s); `timeout`\n"
            "  # stays 6 s (a handshake on a busy machine), hence drbdadm's timeout warning\n"
            "  net { protocol C; connect-int 1; ping-int 1; ping-timeout 5; }\n"
            "  disk { resync-rate 100M; c-plan-ahead 0; }\n" + hosts + "}\n"
        )

    def cib(self, vip: str) -> bytes:
        """The CIB: the promotable replica clone, the group on its Primary (see the module)."""
        per_node = _per_node_attributes(
            "r0",
            lambda n: [
                ("node", "node", n),
                ("socket", "socket", self.sockets[n]),
                ("log", "daemon_log", f"{self.work}/{n}-agent.log"),
            ],
        )
        # The writer names its node in every line: its command line per node, by #uname.
        writer_per_node = _per_node_attributes(
            "writer",
            lambda n: [
                (
                    "opts",
                    "cmdline_options",
                    f"-u {self.writer} {self.mount_dir}/{LOG_NAME} {WRITE_INTERVAL} {n}",
                )
            ],
        )
        others = [n for n in self.cluster.names if n not in REPLICA_NODES]
        elsewhere = "".join(
            f"""
      <rsc_location id="{rsc}-not-{n}" rsc="{rsc}" node="{n}" score="-INFINITY"
          resource-discovery="never"/>"""
            for n in others
            for rsc in ("r0-clone", "web")
        )
        server = f"-m http.server {WEB_PORT} --bind 0.0.0.0 --directory {self.mount_dir}"
        disk = _group_primitive(
            "disk",
            "nbdfuse",
            [
                ("disk-uri", "uri", f"nbd://127.0.0.1:{NBD_PORT}/{RESOURCE}"),
                ("disk-dir", "directory", self.fuse_dir),
                ("disk-file", "file", self.fuse_file),
            ],
            [("start", "0", "30s"), ("stop", "0", "30s"), ("monitor", "5s", "20s")],
        )
        fs = _group_primitive(
            "fs",
            "Filesystem",
            [
                ("fs-device", "device", self.device),
                ("fs-dir", "directory", self.mount_dir),
                ("fs-type", "fstype", "ext4"),
            ],
            [("start", "0", "60s"), ("stop", "0", "60s"), ("monitor", "5s", "20s")],
        )
        writer = _group_primitive(
            "writer",
            "anything",
            [
                ("writer-bin", "binfile", sys.executable),
                ("writer-log", "logfile", self.writer_log),
            ],
            _ANYTHING_OPS,
            ia_score=True,
            per_node=writer_per_node,
        )
        httpd = _group_primitive(
            "httpd",
            "anything",
            [("httpd-bin", "binfile", sys.executable), ("httpd-opts", "cmdline_options", server)],
            _ANYTHING_OPS,
        )
        return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <clone id="r0-clone">
        <meta_attributes id="r0-clone-meta">
          <nvpair id="r0-clone-promotable" name="promotable" value="true"/>
          <nvpair id="r0-clone-promoted-max" name="promoted-max" value="1"/>
          <nvpair id="r0-clone-promoted-node-max" name="promoted-node-max" value="1"/>
          <nvpair id="r0-clone-max" name="clone-max" value="2"/>
          <nvpair id="r0-clone-node-max" name="clone-node-max" value="1"/>
        </meta_attributes>
        <primitive id="r0" class="ocf" provider="hastack" type="replica">
          <instance_attributes id="r0-ia" score="0">
            <nvpair id="r0-ia-res" name="drbd_resource" value="{RESOURCE}"/>
            <nvpair id="r0-ia-conf" name="drbdconf" value="{self.conf}"/>
            <nvpair id="r0-ia-socket" name="socket" value="{self.work}/no-daemon-here.sock"/>
          </instance_attributes>{per_node}
          <operations>
            <op id="r0-start" name="start" interval="0" timeout="60s"/>
            <op id="r0-promote" name="promote" interval="0" timeout="60s"/>
            <op id="r0-demote" name="demote" interval="0" timeout="60s"/>
            <op id="r0-stop" name="stop" interval="0" timeout="60s"/>
            <op id="r0-monitor-promoted" name="monitor" interval="5s" role="Promoted"
                timeout="20s"/>
            <op id="r0-monitor-unpromoted" name="monitor" interval="7s" role="Unpromoted"
                timeout="20s"/>
          </operations>
        </primitive>
      </clone>
      <group id="web">
        {disk}
        {fs}
        {ip_primitive(vip, "1s")}
        {writer}
        {httpd}
      </group>
    </resources>
    <constraints>
      <rsc_location id="r0-promoted-on-n1" rsc="r0-clone" role="Promoted" node="n1"
          score="100"/>
      <rsc_location id="r0-promoted-on-n2" rsc="r0-clone" role="Promoted" node="n2"
          score="50"/>{elsewhere}
      <rsc_colocation id="web-with-r0-promoted" rsc="web" with-rsc="r0-clone"
          with-rsc-role="Promoted" score="INFINITY"/>
      <rsc_order id="r0-promote-then-web" first="r0-clone" first-action="promote" then="web"
          then-action="start"/>
    </constraints>
    <rsc_defaults>
      <meta_attributes id="rd">
        <nvpair id="rd-stick" name="resource-stickiness" value="0"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
""".encode()

    # ------------------------------------------------------------------ making the disk
    def _hastack(self, *args: str, timeout: float = 60.0) -> str:
        proc = subprocess.run(
            hastack_argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=hastack_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"hastack {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def prepare(self) -> None:
        """drbd.conf, the backing files, create-md on both, ext4 on n1's data area copied
        to n2's (both start identical), the writer's script."""
        from hastack.replica.metadata import SECTOR, internal_layout

        self.work.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.drbd_conf())
        self.writer.write_text(WRITER)
        for image in self.images.values():
            with open(image, "wb") as f:
                f.truncate(IMAGE_SIZE)
        for node in REPLICA_NODES:
            self._hastack("replica", "create-md", "-c", str(self.conf), "--node", node, RESOURCE)
        self.data_bytes = internal_layout(IMAGE_SIZE // SECTOR).data_sectors * SECTOR
        first, second = (self.images[n] for n in REPLICA_NODES)
        mkfs = subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-b",
                "4096",
                "-L",
                RESOURCE,
                "-E",
                "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                str(first),
                str(self.data_bytes // 4096),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if mkfs.returncode != 0:
            raise RuntimeError(f"mkfs.ext4 {first}: {mkfs.stderr.strip()}")
        with open(first, "rb") as src, open(second, "r+b") as dst:
            left = self.data_bytes
            while left:
                chunk = src.read(min(left, 1 << 20))
                dst.write(chunk)
                left -= len(chunk)

    def start_daemons(self) -> None:
        """`hastack replica serve` on n1 and n2, each inside its namespace host."""
        lab = self.cluster.lab
        assert lab is not None
        for node in REPLICA_NODES:
            argv = hastack_argv(
                "replica",
                "serve",
                "-c",
                str(self.conf),
                "--node",
                node,
                "--socket",
                str(self.sockets[node]),
            )
            log = str(self.work / f"{node}-daemon.log")
            self.daemons[node] = lab[node].start(argv, log_path=log, env=hastack_env())

    def status(self, node: str) -> dict[str, object] | None:
        """The resource as `hastack replica status --json` shows it (None: no answer)."""
        from hastack.replica.client import ControlError, request
        from hastack.replica.status_view import json_status

        try:
            raw = request(str(self.sockets[node]), "status", timeout=5, resource=RESOURCE)
        except (ControlError, OSError):
            return None
        resources = json_status(raw)["resources"]
        return resources[0] if resources else None

    def disks(self, node: str) -> tuple[str, str, str, str]:
        """(role, connection, own disk, peer's disk) of the node, "-" where unknown."""
        res = self.status(node)
        if res is None:
            return ("-", "-", "-", "-")
        volumes = res.get("volumes") or [{}]
        vol = volumes[0] if isinstance(volumes, list) and volumes else {}
        assert isinstance(vol, dict)
        return (
            str(res.get("role", "-")),
            str(res.get("cstate", "-")),
            str(vol.get("disk", "-")),
            str(vol.get("peer_disk", "-")),
        )

    def _wait(self, what: str, check: object, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while not check():
            for node, proc in self.daemons.items():
                if not proc.alive:
                    tail = (self.work / f"{node}-daemon.log").read_text(errors="replace")
                    raise RuntimeError(f"{node}'s replica daemon exited:\n{tail[-2000:]}")
            if time.monotonic() > deadline:
                now = "; ".join(f"{n}: {'/'.join(self.disks(n))}" for n in REPLICA_NODES)
                raise TimeoutError(f"{what} within {timeout:g} s (now {now})")
            time.sleep(0.1)

    def skip_initial_sync(self, timeout: float = 60.0) -> None:
        """Wait for the pair to connect (both Inconsistent), declare the identical data one
        generation (new-current-uuid --clear-bitmap), wait for UpToDate/UpToDate."""
        from hastack.replica.client import request

        self._wait(
            "the replica daemons did not connect",
            lambda: all(self.disks(n)[1] == "Connected" for n in REPLICA_NODES),
            timeout,
        )
        first = str(self.sockets[REPLICA_NODES[0]])
        request(first, "new-current-uuid", timeout=30, resource=RESOURCE, clear_bitmap=True)
        self._wait(
            "the pair did not become UpToDate/UpToDate",
            lambda: all(self.disks(n)[2:] == ("UpToDate", "UpToDate") for n in REPLICA_NODES),
            timeout,
        )

    # ------------------------------------------------------------------ what the writer did
    def acknowledged(self, node: str) -> list[str]:
        """The lines the writer on `node` printed: each was on disk (fsync returned)."""
        try:
            text = self.writer_log.read_text(errors="replace")
        except OSError:
            return []
        return [
            line
            for line in text.splitlines()
            if (m := LINE.match(line.strip())) is not None and m.group(2) == node
        ]

    def fsck(self, node: str) -> tuple[bool, str]:
        """e2fsck -fn of `node`'s data area (the file system must be unmounted everywhere):
        (clean, e2fsck's summary line)."""
        proc = subprocess.run(
            ["e2fsck", "-fn", str(self.images[node])],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        # stdout ends with the summary ("r0: 12/8192 files (0.0% non-contiguous), ..."); the
        # version line goes to stderr
        lines = [x.strip() for x in proc.stdout.splitlines() if x.strip()]
        lines = lines or [x.strip() for x in proc.stderr.splitlines() if x.strip()]
        return proc.returncode == 0, lines[-1] if lines else f"exit {proc.returncode}"

    # ------------------------------------------------------------------ cleanup
    def loops(self) -> list[str]:
        """Loop devices bound to this demo's FUSE file (on any node, live or dead)."""
        found = []
        for entry in sorted(Path("/sys/block").glob("loop*")):
            with contextlib.suppress(OSError):
                backing = (entry / "loop" / "backing_file").read_text().strip()
                name = os.path.basename(backing.removesuffix(" (deleted)"))
                if name == self.fuse_file:
                    found.append(f"/dev/{entry.name}")
        return found

    def cleanup_loops(self, timeout: float = 10.0) -> list[str]:
        """Detach this demo's loop devices (after the nodes' processes are gone); returns
        those still there at the end (none, normally)."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.loops()
            if not left or time.monotonic() > deadline:
                return left
            for loop in left:
                subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=30)
            time.sleep(0.2)


def parse_line(line: str) -> tuple[int, str] | None:
    """(number, node) of one line of writes.log, None for anything else."""
    m = LINE.match(line.strip())
    return (int(m.group(1)), m.group(2)) if m else None


_GET = """
import socket, sys
vip, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with socket.create_connection((vip, port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n".encode())
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
except OSError as e:
    print("fail", e, file=sys.stderr)
    sys.exit(1)
head, _, body = data.partition(b"\\r\\n\\r\\n")
if not head.startswith(b"HTTP/1.0 200"):
    sys.exit(1)
sys.stdout.write(body.decode(errors="replace"))
"""


def http_get(
    cluster: Cluster, vip: str, path: str, client: str = "client", port: int = WEB_PORT
) -> str | None:
    """The body of `path` fetched by the client host through the floating address (None:
    no page)."""
    assert cluster.lab is not None
    result = cluster.lab[client].run(
        [sys.executable, "-c", _GET, vip, str(port), path], check=False, timeout=30
    )
    return result.stdout if result.returncode == 0 else None
