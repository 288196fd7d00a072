"""The ssh and ipmi fence devices without a network: parameters, command lines, and reading
what ssh and ipmitool print. The devices against a real sshd and ipmi_sim are in
tests/lab/test_fencing_ssh_ipmi_lab.py."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.fencing.runners import DeviceCall
from hastack.fencing.ssh_ipmi import (
    ACTIONS,
    IPMI_PARAMETERS,
    SSH_PARAMETERS,
    classify_ipmitool,
    classify_ssh,
    ipmi_config,
    ipmitool_argv,
    metadata,
    metadata_xml,
    parse_power_status,
    parse_ssh_options,
    run_ipmi,
    run_ssh,
    ssh_argv,
    ssh_config,
)


def ssh_call(
    params: Mapping[str, str] | None = None,
    action: str = "off",
    target: str | None = "node1",
    port: str | None = None,
) -> DeviceCall:
    return DeviceCall("dev", "hastack/ssh", action, target, port, dict(params or {}), 10.0)


def ipmi_call(
    params: Mapping[str, str] | None = None,
    action: str = "off",
    target: str | None = "node1",
    port: str | None = None,
) -> DeviceCall:
    return DeviceCall("dev", "hastack/ipmi", action, target, port, dict(params or {}), 10.0)


def _option(argv: list[str], key: str) -> str | None:
    """The value of `-o key=value` on an ssh command line."""
    for i, word in enumerate(argv):
        if word == "-o" and argv[i + 1].startswith(f"{key}="):
            return argv[i + 1].split("=", 1)[1]
    return None


# ----------------------------------------------------------------------------- ssh


def test_ssh_defaults_are_safe() -> None:
    cfg = ssh_config(ssh_call())
    assert cfg.host == "node1" and cfg.user == "root" and cfg.port == 22
    assert cfg.strict == "yes"
    assert cfg.command_off == "systemctl poweroff -ff"
    assert cfg.command_reboot == "systemctl reboot -ff"
    argv = ssh_argv(cfg, "node1", "true", 7)
    assert argv[0] == "ssh"
    assert _option(argv, "BatchMode") == "yes"
    assert _option(argv, "StrictHostKeyChecking") == "yes"
    assert _option(argv, "ConnectTimeout") == "7"
    assert argv[-3:] == ["--", "node1", "true"]  # the host can never be read as an option
    assert "-i" not in argv


def test_ssh_port_from_host_map_wins_over_target_and_hostname_over_both() -> None:
    assert ssh_config(ssh_call(port="n1-mgmt")).host == "n1-mgmt"
    assert ssh_config(ssh_call({"hostname": "10.0.0.9"}, port="n1-mgmt")).host == "10.0.0.9"


def test_ssh_sysrq_method_and_identity() -> None:
    cfg = ssh_config(ssh_call({"method": "sysrq", "identity_file": "/etc/hastack/id", "user": "u"}))
    assert cfg.command_off == "echo o > /proc/sysrq-trigger"
    assert cfg.command_reboot == "echo b > /proc/sysrq-trigger"
    argv = ssh_argv(cfg, "h", cfg.command_off, 5)
    assert argv[argv.index("-i") + 1] == "/etc/hastack/id"
    assert _option(argv, "IdentitiesOnly") == "yes"
    assert argv[argv.index("-l") + 1] == "u"


def test_ssh_connect_timeout_is_at_least_one_second() -> None:
    assert _option(ssh_argv(ssh_config(ssh_call()), "h", "true", 0), "ConnectTimeout") == "1"


def test_ssh_options_items() -> None:
    assert parse_ssh_options("UserKnownHostsFile=/k -o Ciphers=aes128-ctr -oPort=2222") == (
        "UserKnownHostsFile=/k",
        "Ciphers=aes128-ctr",
        "Port=2222",
    )
    argv = ssh_argv(ssh_config(ssh_call({"ssh_options": "UserKnownHostsFile=/k"})), "h", "x", 3)
    assert _option(argv, "UserKnownHostsFile") == "/k"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"method": "halt"}, ["method", "poweroff", "sysrq"]),
        ({"strict_host_key_checking": "maybe"}, ["strict_host_key_checking", "accept-new"]),
        ({"hostname": "-oProxyCommand=evil"}, ["hostname", "'-'"]),
        ({"hostname": "a\nb"}, ["hostname", "line break"]),
        ({"hostname": "a b"}, ["hostname", "not a host name"]),
        ({"user": "-l"}, ["user", "'-'"]),
        ({"identity_file": "-F/tmp/x"}, ["identity_file", "'-'"]),
        ({"ssh_port": "0"}, ["ssh_port", "1-65535"]),
        ({"ssh_port": "ssh"}, ["ssh_port", "1-65535"]),
        ({"ssh_options": "BatchMode=no"}, ["ssh_options", "BatchMode", "set by the device"]),
        ({"ssh_options": "stricthostkeychecking=no"}, ["ssh_options", "StrictHostKeyChecking"]),
        ({"ssh_options": "-F /tmp/cfg"}, ["ssh_options", "Key=Value"]),
        ({"command_off": "touch /x\nreboot"}, ["command_off", "line break"]),
        ({"confirm_timeout": "soon"}, ["confirm_timeout"]),
        ({"confirm_timeout": "0"}, ["confirm_timeout", "more than 0"]),
        ({"hostnme": "typo"}, ["unknown parameter 'hostnme'", "hostname"]),
    ],
)
def test_ssh_bad_parameters_name_the_parameter_and_what_is_allowed(
    params: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        ssh_config(ssh_call(params))
    for name in names:
        assert name in str(info.value)


def test_ssh_without_any_host_is_a_parameter_error() -> None:
    with pytest.raises(ValueError, match="hostname"):
        asyncio.run(run_ssh(ssh_call(target=None)))


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="action 'nuke'; allowed: off, on"):
        asyncio.run(run_ssh(ssh_call(action="nuke")))
    with pytest.raises(ValueError, match="action 'nuke'"):
        asyncio.run(run_ipmi(ipmi_call(action="nuke")))


def test_ssh_cannot_power_on() -> None:
    result = asyncio.run(run_ssh(ssh_call(action="on")))
    assert not result.ok
    assert "cannot power a host on" in result.reason and "ipmi" in result.reason


def test_ssh_list_answers_the_hostlist_or_fails_without_it() -> None:
    result = asyncio.run(run_ssh(ssh_call({"hostlist": "n1, n2 n3"}, action="list")))
    assert result.ok and result.targets == ("n1", "n2", "n3")
    result = asyncio.run(run_ssh(ssh_call(action="list")))
    assert not result.ok and "hostlist" in result.reason and result.targets is None


def test_ssh_monitor_checks_the_key_file(tmp_path: object) -> None:
    result = asyncio.run(
        run_ssh(ssh_call({"identity_file": "/nonexistent/key"}, action="monitor", target=None))
    )
    assert not result.ok and "/nonexistent/key" in result.reason
    result = asyncio.run(run_ssh(ssh_call(action="monitor", target=None)))
    assert result.ok


# Real OpenSSH 9 messages (stderr, exit 255) and what they say about the host.
@pytest.mark.parametrize(
    ("rc", "stderr", "outcome"),
    [
        (0, "", "ok"),
        (1, "Failed to power off system: Access denied", "remote-failed"),
        (127, "bash: systemctl: command not found", "remote-failed"),
        (255, "ssh: connect to host 10.0.0.2 port 22: Connection timed out", "silent"),
        (255, "ssh: connect to host 10.0.0.2 port 22: No route to host", "silent"),
        (255, "ssh: connect to host 10.0.0.2 port 22: Network is unreachable", "silent"),
        (255, "ssh: connect to host 10.0.0.2 port 22: Connection refused", "refused"),
        (255, "Connection timed out during banner exchange", "alive-no-ssh"),
        (255, "kex_exchange_identification: read: Connection reset by peer", "alive-no-ssh"),
        (255, "root@10.0.0.2: Permission denied (publickey).", "auth"),
        (255, "Host key verification failed.", "hostkey"),
        (255, "No ED25519 host key is known for 10.0.0.2 and you have requested strict "
              "checking.\nHost key verification failed.", "hostkey"),
        (255, "Timeout, server 10.0.0.2 not responding.", "lost"),
        (255, "ssh: Could not resolve hostname nosuch: Name or service not known", "resolve"),
        (255, "something new", "other"),
        (None, "", "other"),
    ],
)  # fmt: skip
def test_classify_ssh(rc: int | None, stderr: str, outcome: str) -> None:
    assert classify_ssh(rc, stderr) == outcome


@given(st.one_of(st.none(), st.integers(-300, 300)), st.text(max_size=300))
def test_classify_ssh_never_fails_and_only_exit_0_is_ok(rc: int | None, stderr: str) -> None:
    outcome = classify_ssh(rc, stderr)
    assert (outcome == "ok") == (rc == 0)
    if rc not in (0, 255, None):
        assert outcome == "remote-failed"


@given(st.text(max_size=200))
def test_ssh_options_parser_accepts_only_key_value_items(text: str) -> None:
    try:
        items = parse_ssh_options(text)
    except ValueError as exc:
        assert "ssh_options" in str(exc)
        return
    for item in items:
        key, _, value = item.partition("=")
        assert key.isascii() and key[:1].isalpha() and value and not any(c.isspace() for c in value)


_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["-x", "a\nb", "0", "yes", "sysrq", "22", "70000", "5s", "lan", "17", "18"]),
)


@given(st.dictionaries(st.sampled_from([p.name for p in SSH_PARAMETERS] + ["bogus"]), _VALUES))
def test_ssh_config_fails_only_with_value_errors(params: dict[str, str]) -> None:
    try:
        cfg = ssh_config(ssh_call(params))
    except ValueError as exc:
        assert "parameter" in str(exc)
        return
    argv = ssh_argv(cfg, cfg.host or "h", cfg.command_off, 3)
    # Nothing a parameter holds becomes an option of its own: every value follows its flag.
    assert argv[-3] == "--"
    assert all("\n" not in word for word in argv[:-1])


# ----------------------------------------------------------------------------- ipmi


def test_ipmitool_argv_keeps_the_password_off_the_command_line() -> None:
    cfg = ipmi_config(
        ipmi_call({"login": "admin", "password": "hunter2", "cipher": "3", "privlvl": "operator"})
    )
    assert cfg.host == "node1" and cfg.port == 623 and cfg.interface == "lanplus"
    argv = ipmitool_argv(cfg, "10.1.1.1", ["chassis", "power", "off"], has_password=True)
    assert "hunter2" not in " ".join(argv)
    assert "-E" in argv and "-P" not in argv
    assert argv[:7] == ["ipmitool", "-I", "lanplus", "-H", "10.1.1.1", "-p", "623"]
    assert argv[argv.index("-U") + 1] == "admin"
    assert argv[argv.index("-L") + 1] == "OPERATOR"
    assert argv[argv.index("-C") + 1] == "3"
    assert argv[-3:] == ["chassis", "power", "off"]


def test_ipmitool_argv_without_password_or_login() -> None:
    cfg = ipmi_config(ipmi_call({"interface": "lan"}))
    argv = ipmitool_argv(cfg, "bmc", ["chassis", "power", "status"], has_password=False)
    assert "-E" not in argv and "-U" not in argv and "-C" not in argv
    assert argv[argv.index("-I") + 1] == "lan"
    assert argv[argv.index("-L") + 1] == "ADMINISTRATOR"


def test_ipmi_host_defaults_to_port_then_target() -> None:
    assert ipmi_config(ipmi_call(port="n1-bmc")).host == "n1-bmc"
    assert ipmi_config(ipmi_call({"ipaddr": "10.9.9.9"}, port="n1-bmc")).host == "10.9.9.9"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"interface": "serial"}, ["interface", "lanplus", "lan"]),
        ({"privlvl": "root"}, ["privlvl", "administrator"]),
        ({"cipher": "18"}, ["cipher", "0-17"]),
        ({"cipher": "x"}, ["cipher", "0-17"]),
        ({"method": "reset"}, ["method", "onoff", "cycle"]),
        ({"ipport": "99999"}, ["ipport", "1-65535"]),
        ({"ipaddr": "-H"}, ["ipaddr", "'-'"]),
        ({"login": "a\nb"}, ["login", "line break"]),
        ({"password": "p\n"}, ["password", "line break"]),
        ({"password": "p", "password_script": "/bin/pw"}, ["password and password_script"]),
        ({"passwd": "x"}, ["unknown parameter 'passwd'", "password"]),
    ],
)
def test_ipmi_bad_parameters_name_the_parameter_and_what_is_allowed(
    params: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        ipmi_config(ipmi_call(params))
    for name in names:
        assert name in str(info.value)


def test_a_password_may_start_with_a_dash() -> None:
    # It travels in the environment, never as an argument, so a leading '-' is harmless.
    assert ipmi_config(ipmi_call({"password": "-secret"})).password == "-secret"


@pytest.mark.parametrize(
    ("stdout", "power"),
    [
        ("Chassis Power is on\n", "on"),
        ("Chassis Power is off\n", "off"),
        ("Chassis Power is off", "off"),
        ("noise\nChassis Power is on\n", "on"),
        ("Chassis Power is unknown\n", None),
        ("Chassis Power Control: Down/Off\n", None),
        ("", None),
    ],
)
def test_parse_power_status(stdout: str, power: str | None) -> None:
    assert parse_power_status(stdout) == power


@given(st.text(max_size=200))
def test_parse_power_status_is_total_and_needs_the_whole_line(stdout: str) -> None:
    power = parse_power_status(stdout)
    if power is not None:
        assert f"Chassis Power is {power}" in stdout


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        ("> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session",
         "password"),
        ("RAKP 2 message indicates an error : unauthorized name", "login"),
        ("Set Chassis Power Control to Down/Off failed: Insufficient privilege level",
         "privilege"),
        ("Error in open session response message : invalid authentication algorithm",
         "cipher"),
        ("Get Auth Capabilities error\nError: Unable to establish IPMI v2 / RMCP+ session",
         "no IPMI session"),
        ("whatever", "ipmitool failed"),
    ],
)  # fmt: skip
def test_classify_ipmitool(stderr: str, words: str) -> None:
    assert words in classify_ipmitool(stderr)


def test_ipmi_list_and_metadata_need_no_bmc() -> None:
    result = asyncio.run(run_ipmi(ipmi_call({"hostlist": "a,b"}, action="list", target=None)))
    assert result.ok and result.targets == ("a", "b")
    result = asyncio.run(run_ipmi(ipmi_call(action="metadata", target=None)))
    assert result.ok and 'name="hastack/ipmi"' in result.output


# ----------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("kind", ["ssh", "ipmi"])
def test_metadata_lists_every_parameter_with_its_default(kind: str) -> None:
    params = SSH_PARAMETERS if kind == "ssh" else IPMI_PARAMETERS
    meta = metadata(kind)
    assert meta.agent == f"hastack/{kind}"
    assert [p.name for p in meta.parameters] == [p.name for p in params]
    for ours, parsed in zip(params, meta.parameters, strict=True):
        assert parsed.default == ours.default and parsed.options == ours.options
        assert parsed.shortdesc == ours.shortdesc
    assert meta.supports("off") and meta.supports("status")
    # ssh cannot power a host on, and says so in its metadata
    assert meta.supports("on") == (kind == "ipmi")
    assert set(meta.actions) <= set(ACTIONS)


def test_metadata_of_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="allowed: ssh, ipmi"):
        metadata("telnet")
    assert "<resource-agent" in metadata_xml("hastack/ssh")
