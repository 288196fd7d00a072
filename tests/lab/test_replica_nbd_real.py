"""The NBD server against Debian's real NBD clients, on loopback, with a file backend.

qemu-io (qemu-utils), nbdinfo/nbdcopy (libnbd-bin), python3-libnbd (run by the system python,
since the venv cannot import it) and nbdfuse + a loop device + ext4 (root only). A missing tool
skips its test with the reason printed. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hastack.replica.nbd_protocol import IHAVEOPT, REQUEST_MAGIC, Command, NBDError, Option
from hastack.replica.nbd_server import Access, Export, FileBackend, NBDServer, WriteDone

NEEDS_ROOT = False  # loopback only; the nbdfuse test checks for root itself (see conftest)

SIZE = 16 << 20
SYSTEM_PYTHON = "/usr/bin/python3"


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            reason = f"{tool} is not installed (Debian: qemu-utils, libnbd-bin, nbdfuse)"
            print(f"skipping: {reason}")
            pytest.skip(reason)


class SwitchableBackend(FileBackend):
    """A file backend whose role the test changes, as the replication engine will."""

    role = Access.READ_WRITE

    def access(self) -> Access:
        return self.role


@dataclass
class Running:
    server: NBDServer
    loop: asyncio.AbstractEventLoop
    path: Path
    ro_path: Path
    backend: SwitchableBackend

    @property
    def uri(self) -> str:
        return f"nbd://127.0.0.1:{self.server.port}/disk"

    def run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)


@pytest.fixture
def nbd(tmp_path: Path) -> Iterator[Running]:
    """A real server in its own event loop thread, on a free loopback port."""
    path = tmp_path / "disk.img"
    path.write_bytes(b"")
    os.truncate(path, SIZE)
    ro_path = tmp_path / "ro.img"
    ro_path.write_bytes(bytes(range(256)) * (SIZE // 256))
    backend = SwitchableBackend(path)
    ro = FileBackend(ro_path, read_only=True)
    server = NBDServer(
        [Export("disk", backend, description="hastack test disk"), Export("ro", ro)],
        port=0,
        default_export="disk",
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = Running(server, loop, path, ro_path, backend)
    running.run(server.start())
    try:
        yield running
    finally:
        running.run(server.stop(grace=2))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        backend.close()
        ro.close()


def run(*argv: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_qemu_io_round_trip_then_nbdcopy_reads_it_back(nbd: Running, tmp_path: Path) -> None:
    need("qemu-io", "nbdcopy")
    run(
        "qemu-io",
        "-f",
        "raw",
        nbd.uri,
        "-c",
        "write -P 0xab 0 64k",
        "-c",
        "read -P 0xab 0 64k",
        "-c",
        "flush",
        "-c",
        "write -f -P 0xcd 1M 4k",  # FUA
        "-c",
        "write -P 0xee 2M 1M",
        "-c",
        "write -z 2M 512k",  # WRITE_ZEROES
        "-c",
        "write -P 0x11 4M 1M",
        "-c",
        "discard 4M 1M",  # TRIM
        "-c",
        "aio_write -P 0x22 8M 64k",
        "-c",
        "aio_write -P 0x33 9M 64k",
        "-c",
        "aio_flush",
    )
    data = nbd.path.read_bytes()
    assert data[: 64 << 10] == b"\xab" * (64 << 10)
    assert data[1 << 20 : (1 << 20) + 4096] == b"\xcd" * 4096
    assert data[2 << 20 : (2 << 20) + (512 << 10)] == bytes(512 << 10)
    assert data[(2 << 20) + (512 << 10) : 3 << 20] == b"\xee" * (512 << 10)
    assert data[4 << 20 : 5 << 20] == bytes(1 << 20)  # trimmed: a hole, or zeroes written
    assert data[8 << 20 : (8 << 20) + (64 << 10)] == b"\x22" * (64 << 10)
    assert data[9 << 20 : (9 << 20) + (64 << 10)] == b"\x33" * (64 << 10)
    # A second, different client reads the whole export back.
    copy = tmp_path / "copy.img"
    run("nbdcopy", "--connections=2", nbd.uri, str(copy))
    assert copy.read_bytes() == data


def test_qemu_io_uses_the_default_export_and_sees_read_only(nbd: Running) -> None:
    need("qemu-io")
    run("qemu-io", "-f", "raw", f"nbd://127.0.0.1:{nbd.server.port}", "-c", "write -P 1 0 4k")
    assert nbd.path.read_bytes()[:4096] == b"\x01" * 4096
    ro = f"nbd://127.0.0.1:{nbd.server.port}/ro"
    out = run("qemu-io", "-r", "-f", "raw", ro, "-c", "read -P 0 0 1", "-c", "read -P 1 1 1")
    assert "read 1/1 bytes" in out.stdout
    refused = run("qemu-io", "-f", "raw", f"nbd://127.0.0.1:{nbd.server.port}/nope", check=False)
    assert refused.returncode != 0


def test_nbdinfo_json_and_list(nbd: Running) -> None:
    need("nbdinfo")
    info = json.loads(run("nbdinfo", "--json", nbd.uri).stdout)
    assert info["protocol"] == "newstyle-fixed"
    (export,) = info["exports"]
    assert export["export-name"] == "disk"
    assert export["export-size"] == SIZE
    assert export["description"] == "hastack test disk"
    for key in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
        assert export[key] is True, key
    assert export["is_read_only"] is False
    assert export["block_size_minimum"] == 1
    assert export["block_size_preferred"] == 4096
    assert export["block_size_maximum"] == 32 << 20
    listing = json.loads(run("nbdinfo", "--list", "--json", nbd.uri).stdout)
    by_name = {e["export-name"]: e for e in listing["exports"]}
    assert set(by_name) == {"disk", "ro"}
    assert by_name["ro"]["is_read_only"] is True


def test_secondary_refuses_or_serves_read_only(nbd: Running) -> None:
    need("nbdinfo")
    nbd.backend.role = Access.REFUSED
    refused = run("nbdinfo", "--json", nbd.uri, check=False)
    assert refused.returncode != 0
    listing = json.loads(run("nbdinfo", "--list", "--json", nbd.uri).stdout)
    assert [e["export-name"] for e in listing["exports"]] == ["ro"]
    nbd.backend.role = Access.READ_ONLY
    info = json.loads(run("nbdinfo", "--json", nbd.uri).stdout)
    assert info["exports"][0]["is_read_only"] is True


LIBNBD_SCRIPT = textwrap.dedent(
    """
    import json, sys, nbd
    uri = sys.argv[1]
    out = {}
    h = nbd.NBD()
    h.set_strict_mode(0)  # let the server, not libnbd, judge bad requests
    h.connect_uri(uri)
    # Many requests in flight at once: the server answers them concurrently.
    bufs = []
    for i in range(64):
        buf = nbd.Buffer.from_bytearray(bytearray([i]) * 4096)
        bufs.append(buf)
        h.aio_pwrite(buf, i * 4096, flags=nbd.CMD_FLAG_FUA if i % 8 == 0 else 0)
    while h.aio_in_flight() > 0:
        h.poll(-1)
    h.flush()
    reads = [h.pread(4096, i * 4096) for i in range(64)]
    out["roundtrip"] = all(r == bytes([i]) * 4096 for i, r in enumerate(reads))
    h.zero(8192, 0, flags=nbd.CMD_FLAG_NO_HOLE)
    out["zero"] = h.pread(8192, 0) == bytes(8192)
    h.trim(4096, 16384)
    def err(f):
        try:
            f()
        except nbd.Error as e:
            return e.errno
        return 0
    size = h.get_size()
    out["read_past_end"] = err(lambda: h.pread(4096, size - 1024))
    out["write_past_end"] = err(lambda: h.pwrite(b"x" * 4096, size - 1024))
    out["read_too_big"] = err(lambda: h.pread(64 << 20, 0))
    h.shutdown()
    ro = nbd.NBD()
    ro.set_strict_mode(0)
    ro.set_export_name("ro")
    ro.connect_uri(uri.rsplit("/", 1)[0] + "/ro")
    out["ro_write"] = err(lambda: ro.pwrite(b"x" * 512, 0))
    out["ro_read_ok"] = ro.pread(4, 0) == bytes([0, 1, 2, 3])
    ro.shutdown()
    print(json.dumps(out))
    """
)


def test_python3_libnbd_concurrency_and_errors(nbd: Running) -> None:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import nbd"], capture_output=True)
    if not os.path.exists(SYSTEM_PYTHON) or probe.returncode != 0:
        reason = "python3-libnbd is not importable by /usr/bin/python3 (venv cannot import it)"
        print(f"skipping: {reason}")
        pytest.skip(reason)
    out = json.loads(run(SYSTEM_PYTHON, "-c", LIBNBD_SCRIPT, nbd.uri).stdout)
    # libnbd names the errno the server sent.
    assert out == {
        "roundtrip": True,
        "zero": True,
        "read_past_end": "EINVAL",
        "write_past_end": "ENOSPC",
        "read_too_big": "EOVERFLOW",
        "ro_write": "EPERM",
        "ro_read_ok": True,
    }
    data = nbd.path.read_bytes()
    assert data[16384 : 16384 + 4096] == bytes(4096)  # trimmed range reads as zeroes
    for i in (5, 40, 63):
        assert data[i * 4096 : (i + 1) * 4096] == bytes([i]) * 4096


# ---- the shell's own behaviour, driven by a raw client in the server's loop ------------------


async def _go(
    port: int, name: bytes = b"disk"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readexactly(18)
    writer.write(struct.pack(">I", 3))
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    writer.write(struct.pack(">QII", IHAVEOPT, Option.GO, len(data)) + data)
    while True:
        _, _, kind, length = struct.unpack(">QIII", await reader.readexactly(20))
        await reader.readexactly(length)
        if kind == 1:  # ACK
            return reader, writer


async def _reply(reader: asyncio.StreamReader, length: int = 0) -> tuple[int, int, bytes]:
    _, error, cookie = struct.unpack(">IIQ", await reader.readexactly(16))
    return cookie, error, await reader.readexactly(length) if error == 0 else b""


def _req(cmd: int, cookie: int, offset: int = 0, length: int = 0) -> bytes:
    return struct.pack(">IHHQQI", REQUEST_MAGIC, 0, cmd, cookie, offset, length)


def test_demotion_mid_connection_gives_eperm_then_eshutdown(nbd: Running) -> None:
    async def scenario() -> list[tuple[int, int, bytes]]:
        reader, writer = await _go(nbd.server.port)
        got = []
        writer.write(_req(Command.WRITE, 1, 0, 4) + b"abcd")
        got.append(await _reply(reader))
        nbd.backend.role = Access.READ_ONLY
        writer.write(_req(Command.WRITE, 2, 0, 4) + b"efgh")
        got.append(await _reply(reader))
        writer.write(_req(Command.READ, 3, 0, 4))
        got.append(await _reply(reader, 4))
        nbd.backend.role = Access.REFUSED
        writer.write(_req(Command.READ, 4, 0, 4))
        got.append(await _reply(reader, 4))
        writer.write(_req(Command.DISC, 5))
        assert await reader.read() == b""
        writer.close()
        return got

    assert nbd.run(scenario()) == [
        (1, 0, b""),
        (2, NBDError.EPERM, b""),
        (3, 0, b"abcd"),
        (4, NBDError.ESHUTDOWN, b""),
    ]


def test_stop_answers_eshutdown_and_closes(nbd: Running) -> None:
    async def scenario() -> tuple[tuple[int, int, bytes], bytes]:
        reader, writer = await _go(nbd.server.port)
        stopping = asyncio.create_task(nbd.server.stop(grace=2, linger=5))
        await asyncio.sleep(0)
        writer.write(_req(Command.READ, 9, 0, 4))
        first = await _reply(reader, 4)
        # Told ESHUTDOWN, the client disconnects softly; stop() returns without its linger.
        writer.write(_req(Command.DISC, 10))
        rest = await reader.read()
        started = time.monotonic()
        await stopping
        assert time.monotonic() - started < 2
        writer.close()
        return first, rest

    first, rest = nbd.run(scenario())
    assert first == (9, NBDError.ESHUTDOWN, b"")
    assert rest == b""
    with pytest.raises(OSError):
        nbd.run(asyncio.open_connection("127.0.0.1", nbd.server.port))


def test_more_requests_than_the_in_flight_limit_all_get_replies(nbd: Running) -> None:
    # Requests beyond the limit wait in the core's buffer; a completion must release them even
    # though the client, waiting for their replies, sends nothing more.
    count = nbd.server.max_in_flight * 3

    async def scenario() -> list[int]:
        reader, writer = await _go(nbd.server.port)
        writer.write(b"".join(_req(Command.READ, c, c * 4096, 4096) for c in range(count)))
        cookies = [(await _reply(reader, 4096))[0] for _ in range(count)]
        writer.close()
        return cookies

    assert sorted(nbd.run(scenario())) == list(range(count))


def test_a_client_that_does_not_read_its_replies_is_not_read_either(nbd: Running) -> None:
    # 200 READs of 256 KiB: 50 MiB of replies, far more than the sockets hold. While the
    # client reads none, the server must stop reading its requests (its send buffer, not its
    # memory, absorbs the rest): what it holds stays within the in-flight limit's replies.
    count, length = 200, 256 << 10
    bound = nbd.server.max_in_flight * (length + 16) + (1 << 20)

    async def scenario() -> tuple[bool, int, list[int]]:
        reader, writer = await _go(nbd.server.port)
        (conn,) = nbd.server._connections
        writer.write(
            b"".join(_req(Command.READ, c, (c % 32) * length, length) for c in range(count))
        )
        most = 0
        for _ in range(40):
            await asyncio.sleep(0.05)
            assert conn.transport is not None
            most = max(most, conn.transport.get_write_buffer_size())
        paused = conn._reading_paused and conn._writing_paused
        cookies = [(await _reply(reader, length))[0] for _ in range(count)]
        writer.close()
        return paused, most, cookies

    paused, most, cookies = nbd.run(scenario())
    assert paused, "the server kept reading requests whose replies nobody reads"
    assert most <= bound, f"{most} bytes of replies held (bound {bound})"
    assert sorted(cookies) == list(range(count))


class BusyBackend(FileBackend):
    """Completes each write later, from a callback in which it is busy with other work (as
    the replica's engine is while it carries out a list of effects), and records any write
    the server starts while it is busy."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.busy = False
        self.entered_while_busy: list[int] = []
        self.order: list[int] = []

    def submit_write(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None:
        if self.busy:
            self.entered_while_busy.append(offset)
        self.order.append(offset)

        def finish() -> None:
            self.busy = True
            try:
                done(None)
            finally:
                self.busy = False

        asyncio.get_running_loop().call_later(0.001, finish)


def test_a_held_back_request_does_not_enter_a_backend_from_its_completion(
    tmp_path: Path,
) -> None:
    """With one request in flight at a time, each write completes inside the backend's own
    callback; the next one must start after that callback, not inside it."""
    path = tmp_path / "busy.img"
    path.write_bytes(b"")
    os.truncate(path, SIZE)
    backend = BusyBackend(path)

    async def scenario() -> None:
        server = NBDServer([Export("disk", backend)], port=0, max_in_flight=1)
        await server.start()
        try:
            reader, writer = await _go(server.port)
            writer.write(b"".join(_req(Command.WRITE, c, c * 512, 4) + b"abcd" for c in range(20)))
            cookies = [(await _reply(reader))[0] for _ in range(20)]
            assert sorted(cookies) == list(range(20))
            writer.close()
        finally:
            await server.stop(grace=2)

    asyncio.run(scenario())
    backend.close()
    assert backend.order == [c * 512 for c in range(20)]
    assert backend.entered_while_busy == []


def test_garbage_from_a_client_closes_only_that_connection(nbd: Running) -> None:
    async def scenario() -> bytes:
        reader, writer = await _go(nbd.server.port)
        writer.write(b"\xff" * 28)
        rest = await reader.read()
        writer.close()
        other_reader, other = await _go(nbd.server.port)
        other.write(_req(Command.READ, 1, 0, 4))
        assert (await _reply(other_reader, 4))[1] == 0
        other.close()
        return rest

    assert nbd.run(scenario()) == b""


# ---- nbdfuse + loop + ext4 (root) -----------------------------------------------------------


@pytest.mark.lab
def test_ext4_through_nbdfuse_and_loop(nbd: Running, tmp_path: Path) -> None:
    need("nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "debugfs")
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        reason = "nbdfuse + loop devices need root and /dev/fuse"
        print(f"skipping: {reason}")
        pytest.skip(reason)
    mnt = tmp_path / "fuse"
    mnt.mkdir()
    pidfile = tmp_path / "nbdfuse.pid"
    fuse = subprocess.Popen(
        ["nbdfuse", "-P", str(pidfile), f"{mnt}/disk", nbd.uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    loop_dev = ""
    mounted = ""
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists():
            if fuse.poll() is not None or time.monotonic() > deadline:
                out = fuse.stdout.read().decode() if fuse.stdout else ""
                reason = f"nbdfuse did not start: {out.strip()}"
                print(f"skipping: {reason}")
                pytest.skip(reason)
            time.sleep(0.05)
        attach = run("losetup", "-f", "--show", f"{mnt}/disk", check=False)
        if attach.returncode != 0:
            reason = f"no loop device: {attach.stderr.strip()}"
            print(f"skipping: {reason}")
            pytest.skip(reason)
        loop_dev = attach.stdout.strip()
        run("mkfs.ext4", "-q", "-F", loop_dev)
        payload = os.urandom(300_000)
        src = tmp_path / "payload"
        src.write_bytes(payload)
        target = tmp_path / "mnt"
        target.mkdir()
        if run("mount", loop_dev, str(target), check=False).returncode == 0:
            mounted = str(target)
            shutil.copy(src, target / "payload")
            with open(target / "payload", "rb+") as f:
                os.fsync(f.fileno())
            run("umount", mounted)
            mounted = ""
        else:  # no mount permission in this container: write through the loop device itself
            run("debugfs", "-w", "-R", f"write {src} payload", loop_dev)
        run("e2fsck", "-fn", loop_dev)
        run("losetup", "-d", loop_dev)
        loop_dev = ""
    finally:
        if mounted:
            run("umount", "-l", mounted, check=False)
        if loop_dev:
            run("losetup", "-d", loop_dev, check=False)
        run("fusermount3", "-u", str(mnt), check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            fuse.wait(10)
        if fuse.poll() is None:
            fuse.kill()
            fuse.wait()
    # The backing file now holds the file system: read it back without any NBD client.
    out = tmp_path / "back"
    run("debugfs", "-R", f"dump payload {out}", str(nbd.path))
    assert out.read_bytes() == payload
    run("e2fsck", "-fn", str(nbd.path))
    # And through a second NBD client, byte for byte the backing file.
    if shutil.which("nbdcopy"):
        copy = Path(tempfile.mkdtemp(dir=tmp_path)) / "copy.img"
        run("nbdcopy", nbd.uri, str(copy), timeout=5)
        assert copy.read_bytes() == nbd.path.read_bytes()
