"""The softdog responder and its watchdog test binary.

A watchdog daemon that runs at a high (even realtime) priority keeps feeding the device while
everything below it starves: the node looks alive and does nothing useful. The softdog closes
that gap from the other end: a responder at the lowest priority there is (nice 19 and
SCHED_IDLE) answers each counter ``N`` sent on a local unix socket with ``N+1``, and the test
binary sends a random value and fails when the answer is late or wrong. If the lowest-priority
process still gets the CPU in time, so does every priority between it and the watchdog's; if it
does not, the test fails and the watchdog repairs or resets.

Run ``python -m hastack.watchdog.softdog serve`` as a foreground service and point the watchdog
at ``python -m hastack.watchdog.softdog test`` (a one-line wrapper script: watchdog.conf names an
executable). The protocol is one ASCII line each way: ``N\\n`` (a decimal integer) and
``N+1\\n``; a request that is not one gets ``ERR <why>\\n`` and its connection is closed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import secrets
import selectors
import signal
import socket
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any

from hastack.watchdog import codes

DEFAULT_SOCKET = "/run/hastack/softdog.sock"
DEFAULT_TIMEOUT = 5.0  # well under 5.16's default test-timeout (60 s), so ours reports first
MAX_LINE = 64  # a 63-bit value is 19 digits: anything longer is not a counter
MAX_CLIENTS = 64  # a leak of idle connections must not exhaust the responder's descriptors
_STALE_CHECK_TIMEOUT = 1.0
_NUMBER = re.compile(rb"-?[0-9]+")


class SoftdogError(Exception):
    """The responder cannot start (its socket is in use, not a socket, or cannot be bound)."""


# ---- the protocol (pure) ------------------------------------------------------------------


def reply(line: bytes) -> tuple[bytes, bool]:
    """The answer to one request line (without its newline) and whether the connection may go
    on: ``N+1`` for a decimal ``N``, else an ``ERR`` line and the end of the connection."""
    text = line.strip(b" \t\r")
    if len(text) > MAX_LINE:
        return b"ERR request line longer than %d bytes\n" % MAX_LINE, False
    if not _NUMBER.fullmatch(text):
        shown = text[:20].decode("ascii", "backslashreplace")
        return f"ERR not a decimal integer: {shown!r}\n".encode(), False
    return b"%d\n" % (int(text) + 1), True


# ---- the responder ------------------------------------------------------------------------


def make_lowest() -> list[str]:
    """Make the calling process the lowest priority there is: nice 19 (always allowed) and
    SCHED_IDLE (which an unprivileged process may choose since Linux 2.6.39). Returns warnings
    for what could not be done, as the responder is still useful at nice 19 alone."""
    warnings = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except OSError as error:
        warnings.append(f"cannot set nice 19: {error.strerror}")
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not supported on this system"
        warnings.append(f"cannot set SCHED_IDLE: {why}")
    return warnings


def _remove_stale(path: str) -> None:
    """Remove a socket left behind by a responder that died, refusing to touch anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SoftdogError(f"{path}: exists and is not a socket; not removing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(_STALE_CHECK_TIMEOUT)
        try:
            client.connect(path)
        except ConnectionRefusedError:
            pass  # nobody listens: stale
        except (BlockingIOError, TimeoutError):
            # a full backlog: someone listens, only not accepting now (stopped or starved)
            raise SoftdogError(f"{path}: another responder listens on this socket") from None
        except OSError as error:
            why = error.strerror
            raise SoftdogError(f"{path}: cannot check the existing socket: {why}") from None
        else:
            raise SoftdogError(f"{path}: another responder is live on this socket")
    os.unlink(path)


def _bind(path: str) -> socket.socket:
    _remove_stale(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask makes the socket 0600 from its creation, with no window in which others may
    # connect; the responder is a process of its own, so changing the umask here is harmless.
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    except OSError as error:
        listener.close()
        raise SoftdogError(f"{path}: cannot bind: {error.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    return listener


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


def _serve_client(client: _Client) -> bool:
    """Answer what a client sent; False when its connection is to be closed."""
    try:
        data = client.sock.recv(4096)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not data:
        return False
    client.buffer += data
    out = []
    keep = True
    while keep and b"\n" in client.buffer:
        line, client.buffer = client.buffer.split(b"\n", 1)
        answer, keep = reply(line)
        out.append(answer)
    if keep and len(client.buffer) > MAX_LINE:
        out.append(b"ERR request line longer than %d bytes\n" % MAX_LINE)
        keep = False
    if out:
        try:
            # The answers are a few bytes; a client whose receive buffer is full is not
            # reading them, and is dropped rather than waited for.
            sent = client.sock.send(b"".join(out))
        except OSError:
            return False
        if sent < sum(map(len, out)):
            return False
    return keep


def serve(path: str, *, lowest: bool = True) -> None:
    """Answer counters on the unix socket ``path`` until SIGTERM or SIGINT, then remove the
    socket and return. Raises :class:`SoftdogError` when the socket cannot be had. Call it from
    the main thread of a process of its own: it changes the process's priority, signal handlers
    and (while binding) umask."""
    if lowest:
        for warning in make_lowest():
            print(f"softdog: {warning}", file=sys.stderr)
    listener = _bind(path)
    bound = os.lstat(path)
    wake_r, wake_w = socket.socketpair()
    stop: list[int] = []
    selector = selectors.DefaultSelector()
    clients: dict[int, _Client] = {}
    previous: dict[int, Any] = {}  # what signal.signal returned: a handler, an int or None
    previous_wakeup: int | None = None
    try:
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        # The handler only notes the signal; the wakeup descriptor ends the select, so the loop
        # leaves at a clean point and the cleanup below always runs.
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda signum, frame: stop.append(signum))
        previous_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        selector.register(listener, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        print(f"softdog: answering on {path}", file=sys.stderr, flush=True)
        while not stop:
            for key, _ in selector.select():
                if key.fileobj is wake_r:
                    with contextlib.suppress(BlockingIOError):
                        wake_r.recv(64)
                elif key.fileobj is listener:
                    _accept(listener, selector, clients)
                else:
                    client = clients[key.fd]
                    if not _serve_client(client):
                        selector.unregister(client.sock)
                        del clients[key.fd]
                        client.sock.close()
    finally:
        if previous_wakeup is not None:
            signal.set_wakeup_fd(previous_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for client in clients.values():
            client.sock.close()
        selector.close()
        listener.close()
        wake_r.close()
        wake_w.close()
        _unlink_if_ours(path, bound)


def _accept(
    listener: socket.socket, selector: selectors.BaseSelector, clients: dict[int, _Client]
) -> None:
    try:
        sock, _ = listener.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return
    except OSError as error:
        # EMFILE and the like: report and go on; the next probe may find room again.
        print(f"softdog: accept failed: {error.strerror}", file=sys.stderr)
        return
    if len(clients) >= MAX_CLIENTS:
        sock.close()
        return
    sock.setblocking(False)
    clients[sock.fileno()] = _Client(sock)
    selector.register(sock, selectors.EVENT_READ)


def _unlink_if_ours(path: str, bound: os.stat_result) -> None:
    """Remove the socket unless someone has replaced it since (a newer responder's)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):
        os.unlink(path)


# ---- the test binary ----------------------------------------------------------------------


def probe(path: str, timeout: float) -> tuple[int, str]:
    """Send a random 63-bit value to the responder at ``path`` and wait at most ``timeout``
    seconds for value+1. Returns a watchdog result code and why: 0, an errno (no socket,
    refused, ...), ETOOLONG (late) or EUSERVALUE (a wrong answer)."""
    value = secrets.randbits(63)
    start = time.monotonic()
    deadline = start + timeout

    def remaining() -> float:
        # settimeout(0) would mean non-blocking, not "no time left"
        return max(deadline - time.monotonic(), 1e-6)

    answer = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.settimeout(remaining())
            try:
                client.connect(path)
            except BlockingIOError:
                # A unix socket's full backlog: the responder has not accepted for a while
                return codes.ETOOLONG, f"{path}: the responder is not accepting connections"
            client.settimeout(remaining())
            client.sendall(b"%d\n" % value)
            while b"\n" not in answer and len(answer) <= MAX_LINE:
                client.settimeout(remaining())
                data = client.recv(MAX_LINE + 1)
                if not data:
                    return errno.ECONNRESET, f"{path}: closed without answering"
                answer += data
        except TimeoutError:
            return codes.ETOOLONG, f"{path}: no answer within {timeout:g} s"
        except OSError as error:
            code = error.errno or errno.EIO
            return code, f"{path}: {error.strerror or error}"
    elapsed = (time.monotonic() - start) * 1000
    line = answer.split(b"\n", 1)[0].strip()
    if line != b"%d" % (value + 1):
        shown = line[:40].decode("ascii", "backslashreplace")
        return codes.EUSERVALUE, f"{path}: sent {value}, expected {value + 1}, got {shown!r}"
    return codes.ENOERR, f"answered in {elapsed:.1f} ms"


# ---- the command --------------------------------------------------------------------------

EPILOG = """\
As a watchdog test, watchdog.conf names an executable: use a wrapper script. In test-directory
(5.16 runs it as `PATH test` and, when that fails, as `PATH repair ERRNO PATH`):

  #!/bin/sh
  exec python3 -m hastack.watchdog.softdog "$@" --socket /run/hastack/softdog.sock

As test-binary (run with no arguments), the same with `test` in place of "$@".
The softdog cannot repair a starved system: `repair` exits with the
code it was given, so the watchdog goes on to reset (or to its own repair-binary).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hastack.watchdog.softdog",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return parser


DESCRIPTION = "A lowest-priority responder and the watchdog test that probes it."


def add_commands(parser: argparse.ArgumentParser) -> None:
    """serve, test and repair, as subcommands of `parser` (also `hastack watchdog softdog`)."""
    commands = parser.add_subparsers(dest="softdog_command", required=True, metavar="COMMAND")

    def socket_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--socket", default=DEFAULT_SOCKET, help=f"the unix socket (default {DEFAULT_SOCKET})"
        )

    def timeout_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT:g}); keep it below "
            "the watchdog's test-timeout",
        )

    serve_cmd = commands.add_parser(
        "serve", help="run the responder in the foreground (nice 19, SCHED_IDLE)"
    )
    socket_option(serve_cmd)
    serve_cmd.add_argument(
        "--no-lowest",
        dest="lowest",
        action="store_false",
        help="keep the caller's priority (for debugging: the test then proves nothing)",
    )
    test_cmd = commands.add_parser(
        "test", help="probe the responder; exit 0, an errno, 246 (wrong) or 247 (late)"
    )
    socket_option(test_cmd)
    timeout_option(test_cmd)
    repair_cmd = commands.add_parser(
        "repair",
        help="does not repair: exits with ERRNO, so the watchdog acts",
        description="Does not repair: exits with ERRNO, so the watchdog acts. --socket and "
        "--timeout are accepted (and ignored) so one wrapper can pass them to every call.",
    )
    repair_cmd.add_argument("errno", type=int, metavar="ERRNO")
    repair_cmd.add_argument("object", nargs="?", metavar="PATH")
    socket_option(repair_cmd)
    timeout_option(repair_cmd)


def main(argv: Sequence[str] | None = None) -> int:
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed command (add_commands' arguments)."""
    if args.softdog_command == "serve":
        try:
            serve(args.socket, lowest=args.lowest)
        except SoftdogError as error:
            print(f"softdog: {error}", file=sys.stderr)
            return 1
        return 0
    if args.softdog_command == "test":
        if args.timeout <= 0:
            print(f"softdog: --timeout must be above 0, not {args.timeout:g}", file=sys.stderr)
            return errno.EINVAL
        code, why = probe(args.socket, args.timeout)
        print(f"softdog: {codes.describe(code)}: {why}", file=sys.stderr)
        return code
    # repair: a code outside 1..255 would read as success or be cut to 8 bits as an exit code
    code = args.errno if 0 < args.errno < 256 else codes.EUSERVALUE
    print(
        f"softdog: cannot repair {codes.describe(args.errno)} ({args.object or args.socket}): "
        "a starved system needs the watchdog, returning the error",
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
