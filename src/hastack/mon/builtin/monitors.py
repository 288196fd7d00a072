"""hastack's built-in mon monitors, in pure Python: ping, tcp, http/https, dns, smtp,
freespace, processes, filechange.

Each ``check_*`` function returns a :class:`Result` (failed hosts, summary, detail). Run as a
mon monitor script::

    python -m hastack.mon.builtin.monitors tcp -p 80 host1 host2

it prints mon's monitor output (first line: the failed hosts, sorted, space-separated; then a
blank line and the detail) and exits 1 when something failed, 0 otherwise. Options and detail
lines follow Debian's monitor of the same job (tcp.monitor, http.monitor, smtp.monitor,
dns-query.monitor, ping.monitor) so that alerts read the same; hastack's additions are marked.
"""

from __future__ import annotations

import argparse
import codecs
import functools
import http.client
import os
import random
import re
import select
import shutil
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from hastack.transport.icmp import ECHO_REPLY, HEADER, echo_request


class Result(NamedTuple):
    failed: list[str]  # the hosts (paths, patterns, files) that failed, sorted
    summary: str  # mon's first line: the failed hosts, space-separated ("" when none)
    detail: str  # the rest of the output ("" when there is nothing to say)


class MonitorError(Exception):
    """The monitor cannot run at all (bad argument); the message says why."""


def _result(failed: Sequence[str], detail: Sequence[str]) -> Result:
    hosts = sorted(set(failed))
    return Result(hosts, " ".join(hosts), "\n".join(detail))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return f"could not resolve: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------------------------
# ping


def _open_icmp() -> tuple[socket.socket, bool]:
    """An ICMP socket: unprivileged datagram when ping_group_range allows, else raw (root).
    Returns the socket and whether it is raw (replies then carry the IP header)."""
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP), False
    except PermissionError:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True


def check_ping(hosts: Sequence[str], count: int = 1, timeout: float = 2.0) -> Result:
    """ICMP echo to each host (IPv4): a host is up when one of `count` requests is answered
    within `timeout` seconds (as ping.monitor's `ping -c COUNT`)."""
    failed: list[str] = []
    detail: list[str] = []
    try:
        sock, raw = _open_icmp()
    except OSError as exc:
        reason = (
            f"cannot open an ICMP socket ({_reason(exc)}): run as root, or allow this "
            "group in net.ipv4.ping_group_range"
        )
        return _result(hosts, [f"{host}: {reason}" for host in hosts])
    identifier = os.getpid() & 0xFFFF
    waiting: dict[str, list[str]] = {}  # address -> hosts naming it
    with sock:
        sock.setblocking(False)
        sequence = 0
        for host in hosts:
            try:
                address = socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
            except OSError as exc:
                failed.append(host)
                detail.append(f"{host}: {_reason(exc)}")
                continue
            waiting.setdefault(str(address), []).append(host)
            for _ in range(count):
                sequence = (sequence + 1) & 0xFFFF
                try:
                    sock.sendto(echo_request(identifier, sequence), (address, 0))
                except OSError as exc:
                    detail.append(f"{host}: cannot send: {_reason(exc)}")
                    break
        deadline = time.monotonic() + timeout
        while waiting and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                break
            try:
                data, (address, *_rest) = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                continue
            if raw:
                data = data[(data[0] & 0x0F) * 4 :] if data else b""
            if len(data) < HEADER.size:
                continue
            kind, _code, _sum, their_id, _seq = HEADER.unpack_from(data)
            # A raw socket sees every ICMP packet: our requests on loopback, others' replies.
            if kind != ECHO_REPLY or (raw and their_id != identifier):
                continue
            waiting.pop(address, None)
    for hosts_of_address in waiting.values():
        for host in hosts_of_address:
            failed.append(host)
            detail.append(f"{host}: no echo reply within {timeout:g} s")
    return _result(failed, detail)


# --------------------------------------------------------------------------------------------
# tcp


def check_tcp(
    hosts: Sequence[str],
    port: int = 23,
    timeout: float = 10.0,
    send: bytes | None = None,
    expect: str | None = None,
) -> Result:
    """Connect to `port` on each host within `timeout` (tcp.monitor); hastack's additions:
    send `send` once connected, then read until the regular expression `expect` matches the
    answer (fail when the peer closes, 64 KiB arrive or time runs out first)."""
    pattern = _compile(expect, "--expect") if expect is not None else None
    failed: list[str] = []
    detail: list[str] = []
    for host in hosts:
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                if send:
                    sock.sendall(send)
                if pattern is not None:
                    problem = _read_until(sock, pattern, deadline)
                    if problem is not None:
                        failed.append(host)
                        detail.append(f"{host} {problem}")
        except TimeoutError:
            failed.append(host)
            detail.append(f"{host} timeout")
        except OSError as exc:
            failed.append(host)
            detail.append(f"{host} could not connect: {_reason(exc)}")
    return _result(failed, detail)


def _read_until(sock: socket.socket, pattern: re.Pattern[bytes], deadline: float) -> str | None:
    received = b""
    while not pattern.search(received):
        left = deadline - time.monotonic()
        if left <= 0 or len(received) >= 65536:
            return f"did not answer /{pattern.pattern.decode()}/: got {received[:200]!r}"
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return f"did not answer /{pattern.pattern.decode()}/ in time: got {received[:200]!r}"
        if not chunk:
            return f"closed without answering /{pattern.pattern.decode()}/: got {received[:200]!r}"
        received += chunk
    return None


def _compile(text: str, option: str) -> re.Pattern[bytes]:
    try:
        return re.compile(text.encode(), re.DOTALL)
    except re.error as exc:
        raise MonitorError(f"{option} {text!r}: not a regular expression: {exc}") from None


# --------------------------------------------------------------------------------------------
# http / https

HTTP_OK = (200, 301, 302, 401)  # what http.monitor calls a working server


def check_http(
    hosts: Sequence[str],
    port: int | None = None,
    path: str = "/",
    timeout: float = 30.0,
    tls: bool = False,
    match: str | None = None,
    agent: str = "mon.d/http.monitor",
    ok_status: Sequence[int] = HTTP_OK,
    verify: bool = True,
    omit_ok: bool = False,
) -> Result:
    """GET `path` from each host (http.monitor): the status must be one of `ok_status` and,
    with `match`, the regular expression must match the header text and body together (as
    http.monitor, which matches its whole answer). `timeout` bounds each network operation.
    `tls`: https, the certificate checked unless `verify` is False."""
    pattern = _compile(match, "-m") if match is not None else None
    context: ssl.SSLContext | None = None
    if tls:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    failed: list[str] = []
    bad: list[str] = []
    good: list[str] = []
    for host in hosts:
        connection: http.client.HTTPConnection
        if context is not None:
            connection = http.client.HTTPSConnection(
                host, port or 443, timeout=timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port or 80, timeout=timeout)
        header = ""
        try:
            connection.request("GET", path, headers={"User-Agent": agent})
            response = connection.getresponse()
            body = response.read(1 << 20)
            version = "1.1" if response.version == 11 else "1.0"
            lines = [f"HTTP/{version} {response.status} {response.reason}"]
            lines += [f"{name}: {value}" for name, value in response.getheaders()]
            header = "\r\n".join(lines)
            error = None
            if response.status not in ok_status:
                error = "HTTP response code failure"
            elif pattern is not None and not pattern.search(header.encode() + b"\r\n\r\n" + body):
                error = "Regex match failed"
        except TimeoutError:
            error = f"timeout after {timeout:g} seconds"
        except (OSError, http.client.HTTPException) as exc:
            error = _reason(exc)
        finally:
            connection.close()
        if error is None:
            good.append(f"HOST {host}: ok\n{header}\n")
        else:
            failed.append(host)
            bad.append(f"HOST {host}: {error}\n" + (f"{header}\n" if header else ""))
    return _result(failed, bad + ([] if omit_ok else good))


# --------------------------------------------------------------------------------------------
# dns

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}
RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def dns_query(name: str, qtype: int, query_id: int) -> bytes:
    """A recursive DNS query (RFC 1035) for `name`, class IN."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name != "." else []
    encoded = b""
    for label in labels:
        try:
            raw = label.encode("idna") if not label.isascii() else label.encode()
        except UnicodeError:
            raise MonitorError(f"-n {name!r}: {label!r} is not a valid DNS label") from None
        if len(raw) > 63:
            raise MonitorError(f"-n {name!r}: label {label!r} is longer than 63 bytes")
        encoded += bytes([len(raw)]) + raw
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # RD set
    return header + encoded + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, offset: int) -> int:
    for _ in range(128):
        if offset >= len(data):
            raise ValueError("name runs past the end")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length
    raise ValueError("name too long")


def _first_answer(data: bytes, questions: int) -> str:
    offset = 12
    for _ in range(questions):
        offset = _skip_name(data, offset) + 4
    offset = _skip_name(data, offset)
    if offset + 10 > len(data):
        raise ValueError("answer runs past the end")
    rtype, _rclass, ttl, length = struct.unpack_from("!HHIH", data, offset)
    rdata = data[offset + 10 : offset + 10 + length]
    if len(rdata) != length:
        raise ValueError("answer data runs past the end")
    kind = next((k for k, v in QTYPES.items() if v == rtype), str(rtype))
    if rtype == 1 and length == 4:
        return f"IN A {socket.inet_ntop(socket.AF_INET, rdata)}"
    if rtype == 28 and length == 16:
        return f"IN AAAA {socket.inet_ntop(socket.AF_INET6, rdata)}"
    return f"IN {kind} ({length} bytes, ttl {ttl})"


def check_dns(
    servers: Sequence[str], name: str, qtype: str = "A", port: int = 53, timeout: float = 5.0
) -> Result:
    """Ask each server (over UDP) for `name`: it must answer with no error and at least one
    answer record (dns-query.monitor)."""
    code = QTYPES.get(qtype.upper())
    if code is None:
        allowed = ", ".join(QTYPES)
        raise MonitorError(f"--type {qtype!r}: not a record type this monitor asks ({allowed})")
    failed: list[str] = []
    failures: list[str] = []
    successes: list[str] = []
    for server in servers:
        query_id = random.getrandbits(16)
        try:
            answer = _ask_dns(server, port, dns_query(name, code, query_id), query_id, timeout)
            flags, questions, answers = struct.unpack_from("!HHH", answer, 2)
            rcode = flags & 0x0F
            if rcode:
                raise ValueError(RCODES.get(rcode, f"rcode {rcode}"))
            if answers == 0:
                raise ValueError("no answer records")
            successes.append(
                f"    {server}: successful lookup for {name} {_first_answer(answer, questions)}"
            )
        except (OSError, ValueError, struct.error) as exc:
            failed.append(server)
            failures.append(f"    {server}: {_reason(exc)} ({name})")
    detail: list[str] = []
    if failures:
        detail += ["failures:", *failures, ""]
    if successes:
        detail += ["successes:", *successes]
    return _result(failed, detail)


def _ask_dns(server: str, port: int, query: bytes, query_id: int, timeout: float) -> bytes:
    family, kind, proto, _name, address = socket.getaddrinfo(server, port, type=socket.SOCK_DGRAM)[
        0
    ]
    with socket.socket(family, kind, proto) as sock:
        sock.connect(address)
        sock.sendall(query)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            data = sock.recv(65535)
            # Another query's late answer, or not an answer at all: keep waiting for ours.
            if len(data) >= 12 and data[:2] == struct.pack("!H", query_id) and data[2] & 0x80:
                return data
    raise TimeoutError


# --------------------------------------------------------------------------------------------
# smtp


def check_smtp(hosts: Sequence[str], port: int = 25, timeout: float = 30.0) -> Result:
    """Each host must greet with 220 (multi-line greetings included); then QUIT."""
    failed: list[str] = []
    bad: list[str] = []
    good: list[str] = []
    rule = "=" * 78
    for host in hosts:
        transcript = ""
        error = None
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                reader = sock.makefile("rb")
                line = reader.readline(1024).decode("latin-1")
                transcript += line
                while line.startswith("220-"):
                    line = reader.readline(1024).decode("latin-1")
                    transcript += line
                if not (line.startswith("220 ") or line.rstrip("\r\n") == "220"):
                    error = "did not receive 220 greeting"
                sock.sendall(b"QUIT\r\n")
                if error is None:
                    transcript += reader.readline(1024).decode("latin-1")
        except TimeoutError:
            error = error or "timeout"
        except OSError as exc:
            error = error or f"Unable to create SMTP connection to port {port}: {_reason(exc)}"
        text = transcript or "no detail\n"
        if error is None:
            good.append(f"{host} succeeded\ndetail for {host}\n{rule}\n{text}")
        else:
            failed.append(host)
            bad.append(f"{host} failed with error {error}\ndetail for {host}\n{rule}\n{text}")
    return _result(failed, bad + good)


# --------------------------------------------------------------------------------------------
# freespace

_UNITS = {"": 1024, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def check_freespace(specs: Sequence[str]) -> Result:
    """Each spec is PATH:MIN: MIN in kB (as freespace.monitor), with a K/M/G/T suffix
    (powers of 1024), or N% of the file system; the space available to unprivileged users
    must be at least that."""
    failed: list[str] = []
    detail: list[str] = []
    for spec in specs:
        path, sep, minimum = spec.rpartition(":")
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT%]?)[bB]?", minimum.strip(), re.I)
        if not sep or not path or match is None:
            raise MonitorError(
                f"{spec!r}: expected PATH:MIN with MIN in kB, with a K/M/G/T suffix, or N%"
            )
        amount, unit = float(match.group(1)), match.group(2).upper()
        try:
            usage = shutil.disk_usage(path)
        except OSError as exc:
            failed.append(path)
            detail.append(f"{path}: {_reason(exc)}")
            continue
        need = usage.total * amount / 100 if unit == "%" else amount * _UNITS[unit]
        line = f"{path}: {usage.free // 1024} kB free of {usage.total // 1024} kB"
        if usage.free < need:
            failed.append(path)
            detail.append(f"{line}, less than {minimum}")
        else:
            detail.append(line)
    return _result(failed, detail)


# --------------------------------------------------------------------------------------------
# processes


def check_processes(patterns: Sequence[str], full: bool = False) -> Result:
    """Each pattern must match at least one running process: its name equal to the pattern
    or matching it as a regular expression in full, or with `full` the regular expression
    found in the command line (words joined by spaces). This process itself never counts."""
    import psutil

    compiled: list[tuple[str, re.Pattern[str] | None]] = []
    for pattern in patterns:
        try:
            compiled.append((pattern, re.compile(pattern)))
        except re.error as exc:
            if full:
                raise MonitorError(f"{pattern!r}: not a regular expression: {exc}") from None
            compiled.append((pattern, None))  # a plain name with regex characters
    found: dict[str, list[int]] = {pattern: [] for pattern, _ in compiled}
    me = os.getpid()
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        info = process.info
        if info["pid"] == me:
            continue
        name = info.get("name") or ""
        command = " ".join(info.get("cmdline") or [])
        for pattern, regex in compiled:
            if full:
                hit = regex is not None and regex.search(command) is not None
            else:
                hit = name == pattern or (regex is not None and regex.fullmatch(name) is not None)
            if hit:
                found[pattern].append(info["pid"])
    failed = [pattern for pattern, pids in found.items() if not pids]
    detail = [
        f"{pattern}: {len(pids)} running ({' '.join(map(str, sorted(pids)[:10]))})"
        if pids
        else f"{pattern}: no process"
        for pattern, pids in found.items()
    ]
    return _result(failed, detail)


# --------------------------------------------------------------------------------------------
# filechange


def check_filechange(
    files: Sequence[str], seconds: float, stale: bool = False, now: float | None = None
) -> Result:
    """A file fails when it changed (mtime) within the last `seconds` — a change is the
    event, as file_change.monitor — or, with `stale`, when it did not (a file that must be
    kept fresh: a heartbeat, a log). A missing file always fails."""
    current = time.time() if now is None else now
    failed: list[str] = []
    detail: list[str] = []
    for name in files:
        try:
            age = current - os.stat(name).st_mtime
        except OSError as exc:
            failed.append(name)
            detail.append(f"{name}: {_reason(exc)}")
            continue
        recent = age <= seconds
        line = f"{name}: modified {age:.0f} s ago"
        if recent != stale:
            failed.append(name)
            detail.append(f"{line}, {'within' if recent else 'not within'} {seconds:g} s")
        else:
            detail.append(line)
    return _result(failed, detail)


# --------------------------------------------------------------------------------------------
# the command line


def _escapes(text: str) -> bytes:
    """--send's text with C escapes (\\r, \\n, \\x00) turned into bytes."""
    try:
        return codecs.escape_decode(text.encode())[0]
    except ValueError as exc:
        raise MonitorError(f"--send {text!r}: bad escape: {exc}") from None


def _status_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected codes like 200,301,302") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hastack.mon.builtin.monitors",
        description="hastack's built-in mon monitors: prints the failed hosts on the first "
        "line, then the detail; exits 1 when one failed.",
    )
    sub = parser.add_subparsers(dest="monitor", required=True, metavar="MONITOR")

    def add(
        name: str, text: str, run: Callable[[argparse.Namespace], Result], *aliases: str
    ) -> Any:
        p = sub.add_parser(name, help=text, description=text, aliases=list(aliases))
        p.set_defaults(run=run)
        return p

    p = add("ping", "ICMP echo (ping.monitor)", lambda a: check_ping(a.hosts, a.count, a.timeout))
    p.add_argument("-c", "--count", type=int, default=1, help="echo requests per host (1)")
    p.add_argument("-t", "--timeout", type=float, default=2.0, help="seconds to wait (2)")
    p.add_argument("hosts", nargs="*")

    p = add(
        "tcp",
        "TCP connect, optional send and expect (tcp.monitor)",
        lambda a: check_tcp(
            a.hosts, a.port, a.timeout, _escapes(a.send) if a.send else None, a.expect
        ),
    )
    p.add_argument("-p", "--port", type=int, default=23, help="TCP port (23, as tcp.monitor)")
    p.add_argument("-t", "--timeout", type=float, default=10.0, help="seconds (10)")
    p.add_argument("--send", help="text to send once connected, C escapes allowed (hastack)")
    p.add_argument("--expect", help="regular expression the answer must match (hastack)")
    p.add_argument("hosts", nargs="*")

    for name, tls in (("http", False), ("https", True)):
        p = add(
            name,
            f"{name.upper()} GET: status and optional regex (http.monitor)",
            lambda a, tls=tls: check_http(
                a.hosts,
                a.port,
                a.url,
                a.timeout,
                tls,
                a.match,
                a.agent,
                a.status,
                not a.insecure,
                a.omit_ok,
            ),
        )
        p.add_argument("-p", "--port", type=int, help=f"port ({443 if tls else 80})")
        p.add_argument("-t", "--timeout", type=float, default=30.0, help="seconds (30)")
        p.add_argument("-u", "--url", default="/", help="path to GET (/)")
        p.add_argument("-a", "--agent", default="mon.d/http.monitor", help="User-Agent")
        p.add_argument("-m", "--match", help="regular expression the answer must match")
        p.add_argument("-o", "--omit-ok", action="store_true", help="no detail for good hosts")
        p.add_argument(
            "--status",
            type=_status_list,
            default=list(HTTP_OK),
            help="acceptable status codes, comma-separated (200,301,302,401) (hastack)",
        )
        if tls:
            p.add_argument(
                "-k", "--insecure", action="store_true", help="do not verify the certificate"
            )
        else:
            p.set_defaults(insecure=False)
        p.add_argument("hosts", nargs="*")

    p = add(
        "dns",
        "a DNS query to each server, an answer expected (dns-query.monitor)",
        lambda a: check_dns(a.hosts, a.name, a.type, a.port, a.timeout),
    )
    p.add_argument("-n", "--name", default="mailhost", help="name to look up (mailhost)")
    p.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds (5)")
    p.add_argument("--type", default="A", help=f"record type: {', '.join(QTYPES)} (A)")
    p.add_argument("-p", "--port", type=int, default=53, help="server port (53) (hastack)")
    p.add_argument("hosts", nargs="*", metavar="server")

    p = add(
        "smtp",
        "SMTP 220 greeting, then QUIT (smtp.monitor)",
        lambda a: check_smtp(a.hosts, a.port, a.timeout),
    )
    p.add_argument("-p", "--port", type=int, default=25, help="port (25)")
    p.add_argument("-t", "--timeout", type=float, default=30.0, help="seconds (30)")
    p.add_argument("hosts", nargs="*")

    p = add("freespace", "free disk space: PATH:MIN ...", lambda a: check_freespace(a.specs))
    p.add_argument("specs", nargs="+", metavar="PATH:MIN")

    p = add(
        "processes",
        "a running process per pattern (psutil)",
        lambda a: check_processes(a.patterns, a.full),
    )
    p.add_argument("-f", "--full", action="store_true", help="search the command line")
    p.add_argument("patterns", nargs="+", metavar="PATTERN")

    p = add(
        "filechange",
        "files modified within N seconds fail (or, with --stale, not modified)",
        lambda a: check_filechange(a.files, a.seconds, a.stale),
        "file_change",
    )
    p.add_argument("-s", "--seconds", type=float, required=True, help="the window")
    p.add_argument("--stale", action="store_true", help="fail when NOT modified in the window")
    p.add_argument("files", nargs="+", metavar="FILE")
    return parser


def format_output(result: Result) -> str:
    """mon's monitor output: the summary line, then (after a blank line) the detail."""
    return result.summary + "\n" + (f"\n{result.detail}\n" if result.detail else "")


@functools.lru_cache(maxsize=4096)
def _parsed(argv: tuple[str, ...]) -> argparse.Namespace:
    # A server runs the same few monitor lines over and over: building the parser and
    # parsing cost more than a loopback check itself, so each line is parsed once.
    return build_parser().parse_args(argv)


def run(argv: Sequence[str]) -> tuple[int, str]:
    """A built-in monitor run in this process (hastack's mon server does so, without a
    process per check): its exit status and output, as the script gives them."""
    try:
        args = _parsed(tuple(argv))
    except SystemExit as exc:  # argparse has said why (or given the help) on stderr
        return (1, f"bad monitor arguments: {' '.join(argv)}\n") if exc.code else (0, "")
    try:
        result: Result = args.run(args)
    except MonitorError as exc:
        # mon reads a non-zero exit as a failure: a broken monitor line must not look healthy.
        return 1, f"{args.monitor} monitor: {exc}\n"
    return (1 if result.failed else 0), format_output(result)


def main(argv: Sequence[str] | None = None) -> int:
    code, output = run(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
