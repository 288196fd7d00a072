"""A configuration directory (load_config, check_config) and the starter that writes one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hastack.config.directory import check_config, load_config
from hastack.config.errors import ConfigError
from hastack.config.starter import write_starter

KEY = "0123456789abcdef0123456789abcdef"
HACF = "node a b\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\n"


def make_dir(tmp_path: Path, hacf: str = HACF, keys: str = f"auth 1\n1 sha256 {KEY}\n") -> str:
    (tmp_path / "ha.cf").write_text(hacf)
    path = tmp_path / "authkeys"
    path.write_text(keys)
    os.chmod(path, 0o600)
    return str(tmp_path)


def test_load_config_reads_both_files(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, HACF + "compression bz2\n", "auth 1\n1 crc\n")
    config = load_config(directory)
    assert config.directory == directory
    assert [n.name for n in config.hacf.nodes] == ["a", "b"]
    assert config.authkeys.signing.method == "crc"
    # warnings of both files, ha.cf's first
    assert [w.message.split(":")[0] for w in config.warnings] == ["compression", "key 1"]


def test_errors_of_both_files_are_raised_together(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, HACF + "keepalive soon\n", "auth 1\n1 md5\n")
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    messages = [str(p) for p in info.value.problems]
    hacf, keys = os.path.join(directory, "ha.cf"), os.path.join(directory, "authkeys")
    assert messages[0].startswith(f"{hacf}:4: keepalive: 'soon' is not a duration")
    assert messages[1] == f"{keys}:2: key 1: md5 requires a key"
    assert len(messages) == 2


def test_check_config_lists_problems_and_warnings_without_raising(tmp_path: Path) -> None:
    directory = make_dir(tmp_path, HACF + "hopfudge 1\n")
    assert check_config(directory)[0] == []
    assert "not acted on" in check_config(directory)[1][0].message
    os.chmod(tmp_path / "authkeys", 0o644)
    problems, _ = check_config(directory)
    assert [p.message.split(": ", 1)[1] for p in problems] == [
        "mode 0644 lets other users read or change the cluster key; hastack refuses it. "
        f"Fix: chmod 600 {directory}/authkeys"
    ]


def test_missing_files_and_directory(tmp_path: Path) -> None:
    problems, _ = check_config(str(tmp_path))
    assert [str(p) for p in problems] == [
        f"{tmp_path}/ha.cf: cannot read: No such file or directory",
        f"{tmp_path}/authkeys: cannot read: No such file or directory",
    ]
    problems, _ = check_config(str(tmp_path / "nope"))
    assert "not a configuration directory (hastack config init -c" in problems[0].message


# -- starter -----------------------------------------------------------------------------------


def test_starter_round_trips_through_load_config(tmp_path: Path) -> None:
    directory = str(tmp_path / "conf")
    written = write_starter(
        directory,
        ["alpha", "beta", "gamma"],
        ucast=[("eth1", "10.0.0.1"), ("eth1", "10.0.0.2"), ("eth1", "10.0.0.3")],
        bcast=["eth2"],
        cluster_name="prod",
        keepalive=0.5,
        deadtime=3,
        run_dir="/run/hastack-prod",
        udpport=700,
    )
    assert written == [f"{directory}/ha.cf", f"{directory}/authkeys"]
    config = load_config(directory)
    assert config.warnings == ()
    hacf = config.hacf
    assert [(n.name, n.node_id) for n in hacf.nodes] == [("alpha", 1), ("beta", 2), ("gamma", 3)]
    assert [link.name for link in hacf.links] == ["ucast eth1", "bcast eth2"]
    assert hacf.links[0].port == 700 and hacf.cluster_name == "prod"
    assert hacf.run_dir == "/run/hastack-prod" and not hacf.two_node
    assert hacf.timing is not None
    assert (hacf.timing.keepalive, hacf.timing.deadtime, hacf.timing.warntime) == (0.5, 3, 1.5)
    key = config.authkeys.signing
    assert (config.authkeys.active, key.method, len(key.key)) == (1, "sha256", 64)
    int(key.key, 16)  # 32 random bytes as hex


def test_starter_authkeys_is_created_0600_and_ha_cf_is_commented(tmp_path: Path) -> None:
    write_starter(str(tmp_path), ["a", "b"])
    assert stat.S_IMODE(os.stat(tmp_path / "authkeys").st_mode) == 0o600
    text = (tmp_path / "ha.cf").read_text()
    lines = text.split("\n")
    # every directive written (or offered commented out) comes right after its explanation
    for directive in (
        "cluster_name",
        "keepalive",
        "deadtime",
        "warntime",
        "initdead",
        "bcast",
        "node",
        "two_node",
        "ping",
        "watchdog",
        "logfile",
    ):
        at = next(i for i, line in enumerate(lines) if line.lstrip("#").startswith(directive + " "))
        assert lines[at - 1].startswith("# "), directive
    hacf = load_config(str(tmp_path)).hacf
    assert hacf.two_node and hacf.wait_for_all
    assert [link.name for link in hacf.links] == ["bcast eth0"]  # the default link


def test_starter_keys_are_fresh(tmp_path: Path) -> None:
    write_starter(str(tmp_path / "one"), ["a", "b"])
    write_starter(str(tmp_path / "two"), ["a", "b"])
    one = load_config(str(tmp_path / "one")).authkeys.signing.key
    two = load_config(str(tmp_path / "two")).authkeys.signing.key
    assert one != two


def test_starter_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    write_starter(str(tmp_path), ["a", "b"])
    before = (tmp_path / "authkeys").read_text()
    with pytest.raises(ConfigError) as info:
        write_starter(str(tmp_path), ["c", "d"])
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path}/ha.cf: exists; not overwritten (use --force to replace it)",
        f"{tmp_path}/authkeys: exists; not overwritten (use --force to replace it)",
    ]
    assert (tmp_path / "authkeys").read_text() == before
    os.chmod(tmp_path / "authkeys", 0o644)  # a replaced key file must not inherit this
    write_starter(str(tmp_path), ["c", "d"], force=True)
    assert [n.name for n in load_config(str(tmp_path)).hacf.nodes] == ["c", "d"]
    assert stat.S_IMODE(os.stat(tmp_path / "authkeys").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["authkeys", "ha.cf"]  # no temporary files left


def test_starter_bind_for_nodes_sharing_a_host(tmp_path: Path) -> None:
    write_starter(
        str(tmp_path),
        ["n1", "n2", "n3"],
        ucast=[("lo", "127.0.0.2"), ("lo", "127.0.0.3"), ("lo", "127.0.0.4")],
        bind=[("lo", "127.0.0.2")],
    )
    assert load_config(str(tmp_path)).hacf.links[0].bind == "127.0.0.2"


def test_starter_bad_arguments_write_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    with pytest.raises(ConfigError) as info:
        write_starter(str(directory), ["a", "b c"], ucast=[("eth0", "host.example")])
    messages = [str(p) for p in info.value.problems]
    assert any("'b c': a name, address or path must be one word" in m for m in messages)
    assert any("is not an IPv4 peer address" in m for m in messages)
    assert not directory.exists()
    with pytest.raises(ConfigError, match="no nodes given"):
        write_starter(str(directory), [])
    with pytest.raises(ConfigError, match=r"deadtime \(1s\) must be greater than 2 x keepalive"):
        write_starter(str(directory), ["a", "b"], keepalive=1, deadtime=1)
    assert not directory.exists()
