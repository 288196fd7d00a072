"""httpcheck: a service health check as a resource. Its monitor GETs a URL and checks the
status code (and optionally the body); start and stop only record that the check is wanted.

Put it in a group after the service it checks: when the service stops answering, this
resource's monitor fails and the cluster recovers the group.
"""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.parse
from dataclasses import dataclass

from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    main,
    state_path,
    write_file,
)

INFO = AgentInfo(
    name="httpcheck",
    shortdesc="HTTP service health check (hastack)",
    longdesc="Monitors a web service: GET a URL (or address, port and path) within a timeout; "
    "the check passes when the response status is one of expected_status and, if body_regex "
    "is set, the body matches it. start and stop only record the resource's state.",
    params=(
        Param("url", "URL", "Full http:// or https:// URL; overrides address, port and path."),
        Param("address", "Address", "Address to connect to.", default="127.0.0.1"),
        Param("port", "Port", "TCP port.", "integer", default="80"),
        Param("path", "Path", "Request path (with query).", default="/"),
        Param("host_header", "Host header", "Host header to send (default: the address)."),
        Param(
            "timeout", "Timeout", "Seconds to wait for the whole response.", "time", default="5s"
        ),
        Param(
            "expected_status",
            "Expected status",
            "Comma-separated status codes or classes that pass, e.g. 200,204 or 2xx,3xx.",
            default="200",
        ),
        Param("body_regex", "Body regex", "A regular expression the body must contain."),
        Param(
            "state",
            "State file",
            "Where the resource records that it is started.",
            default="{HA_RSCTMP}/httpcheck-{instance}.state",
            unique=True,
        ),
    ),
    actions=(
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("meta-data", 5),
        Action("validate-all", 20),
    ),
)

_BODY_LIMIT = 1 << 20  # bytes of body read for body_regex; a health page is small


@dataclass(frozen=True)
class Check:
    scheme: str
    host: str
    port: int
    path: str
    host_header: str
    timeout: float
    expected: tuple[str, ...]
    body_regex: re.Pattern[str] | None


def _parse_expected(text: str) -> tuple[str, ...]:
    items = tuple(item.strip().lower() for item in text.split(",") if item.strip())
    if not items or not all(re.fullmatch(r"[1-5](\d\d|xx)", item) for item in items):
        raise OcfError(
            OcfRc.ERR_CONFIGURED,
            f"expected_status={text!r}: give status codes or classes like 200,204 or 2xx",
        )
    return items


def build_check(ctx: Context) -> Check:
    timeout = ctx.float_param("timeout", minimum=0.001)
    expected = _parse_expected(ctx.param("expected_status"))
    regex_text = ctx.param("body_regex")
    try:
        regex = re.compile(regex_text) if regex_text else None
    except re.error as err:
        raise OcfError(OcfRc.ERR_CONFIGURED, f"body_regex={regex_text!r}: {err}") from None
    url = ctx.param("url")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OcfError(
                OcfRc.ERR_CONFIGURED, f"url={url!r}: need http://HOST[:PORT]/PATH or https://"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OcfError(OcfRc.ERR_CONFIGURED, f"url={url!r}: bad port") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        scheme, host = parts.scheme, parts.hostname
    else:
        scheme, host, path = "http", ctx.param("address"), ctx.param("path") or "/"
        port = ctx.int_param("port", minimum=1)
        if not path.startswith("/"):
            raise OcfError(OcfRc.ERR_CONFIGURED, f"path={path!r} must start with /")
    if not 0 < port < 65536:
        raise OcfError(OcfRc.ERR_CONFIGURED, f"port {port} is not 1..65535")
    host_header = ctx.param("host_header") or (f"[{host}]" if ":" in host else host)
    return Check(scheme, host, port, path, host_header, timeout, expected, regex)


def _status_ok(status: int, expected: tuple[str, ...]) -> bool:
    code = str(status)
    return any(code == item or (item.endswith("xx") and code[0] == item[0]) for item in expected)


def run_check(check: Check) -> str | None:
    """None when the service is healthy, else what is wrong (one line)."""
    where = f"{check.scheme}://{check.host_header}:{check.port}{check.path}"
    conn: http.client.HTTPConnection
    if check.scheme == "https":
        # A health check asks "does it answer", not "is its certificate valid here".
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(
            check.host, check.port, timeout=check.timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(check.host, check.port, timeout=check.timeout)
    try:
        conn.request(
            "GET",
            check.path,
            headers={"Host": check.host_header, "User-Agent": "hastack-httpcheck"},
        )
        response = conn.getresponse()
        body = response.read(_BODY_LIMIT) if check.body_regex else b""
    except TimeoutError:
        return f"GET {where}: no answer within {check.timeout:g}s"
    except (OSError, http.client.HTTPException) as err:
        return f"GET {where}: {type(err).__name__}: {err}"
    finally:
        conn.close()
    if not _status_ok(response.status, check.expected):
        return f"GET {where}: status {response.status}, expected {','.join(check.expected)}"
    if check.body_regex and not check.body_regex.search(body.decode("utf-8", "replace")):
        return f"GET {where}: body does not match {check.body_regex.pattern!r}"
    return None


def validate(ctx: Context) -> int:
    build_check(ctx)
    state_path(ctx)
    return OcfRc.SUCCESS


def start(ctx: Context) -> int:
    validate(ctx)
    write_file(state_path(ctx), f"{ctx.instance}\n")
    return OcfRc.SUCCESS


def stop(ctx: Context) -> int:
    state_path(ctx).unlink(missing_ok=True)
    return OcfRc.SUCCESS


def monitor(ctx: Context) -> int:
    check = build_check(ctx)
    if not state_path(ctx).exists():
        return OcfRc.NOT_RUNNING
    problem = run_check(check)
    if problem:
        raise OcfError(OcfRc.ERR_GENERIC, problem)
    return OcfRc.SUCCESS


HANDLERS = {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}

if __name__ == "__main__":
    main(INFO, HANDLERS)
