"""`hastack replica` verbs that work without a daemon, and the errors of those that need one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _hastack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hastack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _conf(tmp_path: Path) -> Path:
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(8 << 20)
    conf = tmp_path / "drbd.conf"
    conf.write_text(
        f"""resource r0 {{
  net {{ protocol C; }}
  on alice {{ device /dev/drbd0; disk {tmp_path}/a.img; meta-disk internal;
             address 127.0.0.1:7789; }}
  on bob {{ device /dev/drbd0; disk {tmp_path}/b.img; meta-disk internal;
           address 127.0.0.1:7790; }}
}}
"""
    )
    return conf


def test_create_md_then_dump_md_and_no_overwrite_without_force(tmp_path: Path) -> None:
    conf = str(_conf(tmp_path))
    first = _hastack("replica", "create-md", "-c", conf, "--node", "alice", "r0")
    assert first.returncode == 0, first.stderr
    assert "new meta-data (internal" in first.stdout
    again = _hastack("replica", "create-md", "-c", conf, "--node", "alice", "r0")
    assert again.returncode == 1
    assert "already has meta-data; --force overwrites it" in again.stderr
    forced = _hastack("replica", "create-md", "-c", conf, "--node", "alice", "--force", "r0")
    assert forced.returncode == 0, forced.stderr
    md = _hastack("replica", "dump-md", "-c", conf, "--node", "alice", "r0")
    assert md.returncode == 0, md.stderr
    assert "flags AL_CLEAN" in md.stdout and "0 of " in md.stdout
    # bob's disk has none yet
    none = _hastack("replica", "dump-md", "-c", conf, "--node", "bob", "r0")
    assert none.returncode == 1 and "run create-md first" in none.stderr


def test_dump_prints_the_resource_as_read(tmp_path: Path) -> None:
    conf = str(_conf(tmp_path))
    out = _hastack("replica", "dump", "-c", conf, "r0")
    assert out.returncode == 0, out.stderr
    assert "resource r0 {" in out.stdout and "on alice {" in out.stdout


def test_a_node_without_a_section_and_an_unknown_resource_are_named(tmp_path: Path) -> None:
    conf = str(_conf(tmp_path))
    stranger = _hastack("replica", "create-md", "-c", conf, "--node", "carol", "r0")
    assert stranger.returncode == 1 and "no host section for node 'carol'" in stranger.stderr
    unknown = _hastack("replica", "dump", "-c", conf, "r9")
    assert unknown.returncode == 1 and "no resource 'r9'" in unknown.stderr


def test_a_bad_config_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "drbd.conf"
    conf.write_text("resource r0 {\n  net { protocol D; }\n}\n")
    out = _hastack("replica", "dump", "-c", str(conf))
    assert out.returncode == 1
    assert f"{conf}:2" in out.stderr and "protocol" in out.stderr


def test_verbs_without_a_daemon_say_how_to_start_it(tmp_path: Path) -> None:
    sock = str(tmp_path / "none.sock")
    for verb in (("status",), ("primary", "r0"), ("role", "r0")):
        out = _hastack("replica", *verb, "--socket", sock)
        assert out.returncode == 1
        assert "no replica daemon" in out.stderr and "hastack replica serve" in out.stderr
