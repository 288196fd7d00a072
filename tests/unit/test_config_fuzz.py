"""Fuzzing: any text, and any mutation of a valid file, gives a result or a ConfigError - never
another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.config.authkeys import parse_authkeys
from hastack.config.errors import ConfigError
from hastack.config.hacf import parse_hacf
from hastack.config.model import AuthKeys, HaCf

VALID_HACF = """\
# a full ha.cf
cluster_name prod
keepalive 500ms
deadtime 5
warntime 2
initdead 10
deadping 6
udpport 694
baud 19200
node a b c
node_id c 7
votes a 2
ucast eth0 10.0.0.1
ucast eth0 10.0.0.2
ucast eth0 10.0.0.3
mcast eth1 239.0.0.1 694 1 0
bcast eth2 eth3
serial /dev/ttyS0
bind eth0 10.0.0.1
auto_failback on
watchdog /dev/watchdog
ping 10.0.9.1
ping_group gw 10.0.9.2 10.0.9.3
stonith baytech /etc/ha.d/stonith.cfg
stonith_host * baytech 10.0.0.3 login secret
crm respawn
autojoin none
logfacility local0
logfile /var/log/ha.log
debugfile /var/log/ha-debug
use_logd no
realtime on
debug 0
expected_votes 4
quorum_server 10.0.0.9:5403
run_dir /run/hastack
max_clock_drift 1%
wait_for_all on
hopfudge 1
"""

VALID_AUTHKEYS = """\
# keys
auth 2
1 crc
2 sha256 0123456789abcdef0123456789abcdef
3 sha1 0123456789abcdef
4 md5 0123456789abcdef
"""

WORDS = VALID_HACF.split() + VALID_AUTHKEYS.split() + ["#", ",", "ms", "%", "::", "\t", "\r"]


def _parses_or_config_error_hacf(text: str) -> None:
    try:
        result = parse_hacf(text, "ha.cf")
    except ConfigError as exc:
        assert exc.problems
        assert all(str(p) for p in exc.problems)
        return
    assert isinstance(result, HaCf)
    assert result.nodes and result.links and result.timing is not None


def _parses_or_config_error_authkeys(text: str) -> None:
    try:
        result = parse_authkeys(text, "authkeys")
    except ConfigError as exc:
        assert exc.problems
        return
    assert isinstance(result, AuthKeys)
    assert result.active in result.keys


def test_the_valid_files_are_valid() -> None:
    parse_hacf(VALID_HACF, "ha.cf")
    parse_authkeys(VALID_AUTHKEYS, "authkeys")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_random_text_hacf(text: str) -> None:
    _parses_or_config_error_hacf(text)


@settings(max_examples=300)
@given(st.text())
def test_random_text_authkeys(text: str) -> None:
    _parses_or_config_error_authkeys(text)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """The base file with a few lines deleted, duplicated, replaced or garbled."""
    lines = base.split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "words", "text", "splice", "truncate"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "words":
            lines[i] = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=7)))
        elif op == "text":
            lines[i] = draw(st.text(max_size=40))
        elif op == "splice":
            words = lines[i].split()
            if words:
                j = draw(st.integers(0, len(words) - 1))
                words[j] = draw(st.sampled_from(WORDS) | st.text(max_size=12))
                lines[i] = " ".join(words)
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]))))]
    return "\n".join(lines)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID_HACF))
def test_mutated_hacf(text: str) -> None:
    _parses_or_config_error_hacf(text)


@settings(max_examples=500)
@given(mutated(VALID_AUTHKEYS))
def test_mutated_authkeys(text: str) -> None:
    _parses_or_config_error_authkeys(text)
