"""hastack.mon.runner: real monitor and alert scripts in a temporary mondir/alertdir, and
Debian's own monitors and alerts run unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from hastack.mon.model import MonConfig, Service
from hastack.mon.runner import (
    MONITOR_TIMEOUT_EXIT,
    NoHosts,
    ProgramNotFound,
    alert_argv,
    alert_env,
    find_program,
    run_alert,
    run_monitor,
    search_dirs,
    split_words,
)

DEBIAN_MON = Path("/usr/lib/mon")

# Dumps what it was given as JSON after a first "summary" line; stderr and the exit code are
# driven by its environment.
DUMP = f"""#!{sys.executable}
import json, os, sys
data = sys.stdin.read()
print(os.environ.get("SUMMARY", "dump summary"))
print(json.dumps({{"argv": sys.argv[1:], "stdin": data,
    "env": {{k: v for k, v in os.environ.items() if k.startswith(("MON_", "MYVAR", "OTHER"))}}}}))
sys.stdout.flush()
print("on stderr", file=sys.stderr)
sys.exit(int(os.environ.get("EXITCODE", "0")))
"""


def write_script(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text) if not text.startswith("#!") else text)
    path.chmod(0o755)
    return path


@pytest.fixture
def cfg(tmp_path: Path) -> MonConfig:
    base = tmp_path / "base"
    for d in ("mon.d", "alert.d", "state.d", "log.d", "other.d"):
        (base / d).mkdir(parents=True)
    write_script(base / "mon.d" / "dump.monitor", DUMP)
    write_script(base / "alert.d" / "dump.alert", DUMP)
    return MonConfig(
        source=str(tmp_path / "mon.cf"),
        basedir=str(base),
        cfbasedir=str(tmp_path),
        mondir=f"{tmp_path}/missing.d : other.d:mon.d",
        alertdir="alert.d",
        statedir="state.d",
        logdir=str(base / "log.d"),
    )


def service(monitor: str, **kw: object) -> Service:
    return Service(name="svc", interval=60, monitor=monitor, **kw)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def dumped(detail: str) -> dict:  # type: ignore[type-arg]
    return json.loads(detail.splitlines()[0])


# -- finding programs and splitting lines -------------------------------------------------------


def test_search_dirs_resolve_relative_entries_under_basedir() -> None:
    assert search_dirs("/usr/local/lib/mon/mon.d : mon.d/", "/b/") == [
        "/usr/local/lib/mon/mon.d",
        "/b/mon.d",
    ]


def test_first_directory_holding_the_program_wins(cfg: MonConfig) -> None:
    other = Path(cfg.basedir) / "other.d" / "dump.monitor"
    write_script(other, "#!/bin/sh\necho other\n")
    assert find_program("monitor", "dump.monitor", cfg.mondir, cfg.basedir) == str(other)
    other.chmod(0o644)  # not executable: mon skips it
    assert find_program("monitor", "dump.monitor", cfg.mondir, cfg.basedir) == str(
        Path(cfg.basedir) / "mon.d" / "dump.monitor"
    )


def test_missing_monitor_names_the_directories_searched(cfg: MonConfig) -> None:
    with pytest.raises(ProgramNotFound) as err:
        run(run_monitor(cfg, "g", service("nope.monitor"), ["h"], {}, 5))
    text = str(err.value)
    assert "nope.monitor" in text and "mondir" in text
    for d in search_dirs(cfg.mondir, cfg.basedir):
        assert d in text


@pytest.mark.skipif(shutil.which("perl") is None, reason="perl is not installed")
@pytest.mark.parametrize(
    "line",
    [
        "a b  c",
        '"a b" c',
        "'a b' c",
        r"a\ b c",
        r'"a\"b" c',
        r"'a\'b' c",
        'x"y z"w',
        '"unbalanced',
        "a 'b",
        'a "" b',
        r"a\\b",
        "a\tb",
        "-p 80 -t '5 s'",
    ],
)
def test_split_words_matches_perl_quotewords(line: str) -> None:
    perl = subprocess.run(
        [
            "perl",
            "-MText::ParseWords",
            "-MJSON::PP",
            "-e",
            "print JSON::PP->new->encode([map {defined $_ ? $_ : ''} "
            "quotewords(q{\\s+}, 0, $ARGV[0])])",
            "--",
            line,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = json.loads(perl.stdout)
    assert (split_words(line) or []) == expected
    if not expected:
        assert split_words(line) is None


# -- monitors -----------------------------------------------------------------------------------


def test_monitor_gets_args_hosts_env_and_empty_stdin(cfg: MonConfig) -> None:
    svc = service(
        "dump.monitor -p 80 'two words'", variables={"MYVAR": "v1", "MON_GROUP": "overridden"}
    )
    res = run(run_monitor(cfg, "web", svc, ["h1", "h2"], {"MON_LAST_SUMMARY": "before"}, 10))
    assert res.exit_code == 0 and not res.failed and not res.timed_out and res.signal is None
    assert res.summary == "dump summary"
    data = dumped(res.detail)
    assert data["argv"] == ["-p", "80", "two words", "h1", "h2"]
    assert data["stdin"] == ""
    env = data["env"]
    assert env["MYVAR"] == "v1"
    assert env["MON_GROUP"] == "web"  # mon's own variables win over the service's
    assert env["MON_SERVICE"] == "svc"
    assert env["MON_LAST_SUMMARY"] == "before"
    assert env["MON_STATEDIR"] == str(Path(cfg.basedir) / "state.d")
    assert env["MON_LOGDIR"] == cfg.logdir
    assert env["MON_CFBASEDIR"] == cfg.cfbasedir
    assert "on stderr" in res.detail  # stderr merged into the output
    assert res.output == f"{res.summary}\n{res.detail}"
    assert res.argv[0] == str(Path(cfg.basedir) / "mon.d" / "dump.monitor")


def test_double_semicolon_suppresses_the_hosts(cfg: MonConfig) -> None:
    res = run(run_monitor(cfg, "web", service("dump.monitor -x ;;"), ["h1"], {}, 10))
    assert dumped(res.detail)["argv"] == ["-x"]
    # with no hosts at all and no `;;`, mon does not call the monitor
    with pytest.raises(NoHosts, match="web/svc"):
        run(run_monitor(cfg, "web", service("dump.monitor"), [], {}, 10))
    res = run(run_monitor(cfg, "web", service("dump.monitor", allow_empty_group=True), [], {}, 10))
    assert dumped(res.detail)["argv"] == []


def test_exit_code_and_summary_detail_split(cfg: MonConfig) -> None:
    svc = service("dump.monitor", variables={"EXITCODE": "3", "SUMMARY": "h1 h2"})
    res = run(run_monitor(cfg, "g", svc, ["h1"], {}, 10))
    assert res.exit_code == 3 and res.failed
    assert res.summary == "h1 h2"
    assert res.detail.startswith("{")


def test_monitor_killed_by_a_signal_is_a_failure(cfg: MonConfig) -> None:
    write_script(Path(cfg.basedir) / "mon.d" / "die.monitor", "#!/bin/sh\nkill -TERM $$\n")
    res = run(run_monitor(cfg, "g", service("die.monitor"), ["h"], {}, 10))
    assert res.signal == signal.SIGTERM and res.exit_code == 128 + signal.SIGTERM and res.failed


def test_script_without_interpreter_line_runs_under_sh(cfg: MonConfig) -> None:
    # Perl's exec (execvp) falls back to /bin/sh on ENOEXEC; mon's monitors rely on it.
    write_script(Path(cfg.basedir) / "mon.d" / "plain.monitor", 'echo "plain $1"\nexit 2\n')
    res = run(run_monitor(cfg, "g", service("plain.monitor"), ["h"], {}, 10))
    assert (res.exit_code, res.summary) == (2, "plain h")


def test_hanging_monitor_and_its_children_are_killed_at_the_timeout(
    cfg: MonConfig, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    write_script(
        Path(cfg.basedir) / "mon.d" / "hang.monitor",
        f"""#!/bin/sh
        echo started
        sleep 60 &
        echo $! > {pids}
        setsid sleep 60 &
        echo $! >> {pids}
        sleep 60
        """,
    )
    t0 = time.monotonic()
    res = run(run_monitor(cfg, "g", service("hang.monitor"), ["h"], {}, 0.5))
    assert time.monotonic() - t0 < 5
    assert res.timed_out and res.exit_code == MONITOR_TIMEOUT_EXIT and res.failed
    assert res.summary == "monitor timed out after 0.5 s"
    assert res.signal == signal.SIGKILL
    assert "started" in res.detail
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2  # one in the group, one that left it with setsid
    deadline = time.monotonic() + 3
    for pid in children:
        while True:
            try:
                gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert gone, f"child {pid} survived the timeout"


def test_monitor_exit_does_not_wait_for_a_background_child(cfg: MonConfig, tmp_path: Path) -> None:
    # mon takes the result when the monitor exits, even if a child keeps its stdout open.
    pidfile = tmp_path / "bg"
    write_script(
        Path(cfg.basedir) / "mon.d" / "bg.monitor",
        f"#!/bin/sh\necho done\nsleep 30 &\necho $! > {pidfile}\nexit 0\n",
    )
    try:
        t0 = time.monotonic()
        res = run(run_monitor(cfg, "g", service("bg.monitor"), ["h"], {}, 10))
        assert time.monotonic() - t0 < 3
        assert (res.exit_code, res.summary) == (0, "done")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


# -- alerts -------------------------------------------------------------------------------------


def test_alert_receives_argv_env_and_stdin_exactly(cfg: MonConfig) -> None:
    svc = service("dump.monitor", variables={"OTHERVAR": "x"}, description="the web")
    argv = alert_argv(
        "dump.alert",
        split_words("-S 'subject here' mail@example.org") or [],
        watch="web",
        service="svc",
        hosts=["h1", "h2"],
        when=1700000000.7,
        alert_type="up",
    )
    env = alert_env(cfg, "web", svc, alert_type="up", retval=0, env_extra={"MON_OPSTATUS": "1"})
    res = run(run_alert(cfg, argv, env, "h1 down\ndetail 1\ndetail 2\n", 10))
    assert res.exit_code == 0 and not res.failed
    assert res.argv[0] == str(Path(cfg.basedir) / "alert.d" / "dump.alert")
    data = json.loads(res.output.splitlines()[1])
    assert data["argv"] == [
        "-s", "svc", "-g", "web", "-h", "h1 h2", "-t", "1700000000", "-u",
        "-S", "subject here", "mail@example.org",
    ]  # fmt: skip
    assert data["stdin"] == "h1 down\ndetail 1\ndetail 2\n"
    assert data["env"]["MON_ALERTTYPE"] == "up"
    assert data["env"]["MON_RETVAL"] == "0"
    assert data["env"]["MON_OPSTATUS"] == "1"
    assert data["env"]["MON_DESCRIPTION"] == "the web"
    assert data["env"]["OTHERVAR"] == "x"
    assert data["env"]["MON_GROUP"] == "web" and data["env"]["MON_SERVICE"] == "svc"


def test_failed_alert_is_recorded(cfg: MonConfig) -> None:
    write_script(
        Path(cfg.basedir) / "alert.d" / "bad.alert", "#!/bin/sh\necho 'no pager' >&2\nexit 4\n"
    )
    res = run(run_alert(cfg, ["bad.alert"], {}, "x\n", 10))
    assert res.exit_code == 4 and res.failed and "no pager" in res.output


def test_hanging_alert_is_killed_at_its_timeout(cfg: MonConfig) -> None:
    write_script(Path(cfg.basedir) / "alert.d" / "hang.alert", "#!/bin/sh\nsleep 60\n")
    t0 = time.monotonic()
    res = run(run_alert(cfg, ["hang.alert"], {}, "", 0.3))
    assert time.monotonic() - t0 < 5
    assert res.timed_out and res.failed and res.signal == signal.SIGKILL


def test_missing_alert_names_alertdir(cfg: MonConfig) -> None:
    with pytest.raises(ProgramNotFound, match=r"alertdir .*alert\.d"):
        run(run_alert(cfg, ["nope.alert"], {}, "", 5))


# -- Debian's monitors and alerts, unchanged ----------------------------------------------------


def debian(kind: str, name: str) -> Path:
    path = DEBIAN_MON / kind / name
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is missing: install Debian's mon package to run this test")
    return path


def debian_cfg(cfg: MonConfig) -> MonConfig:
    cfg.mondir = str(DEBIAN_MON / "mon.d")
    cfg.alertdir = str(DEBIAN_MON / "alert.d")
    return cfg


def test_debian_tcp_monitor_ok_and_failing(cfg: MonConfig) -> None:
    debian("mon.d", "tcp.monitor")
    cfg = debian_cfg(cfg)

    async def scenario() -> tuple[object, object]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            ok = await run_monitor(
                cfg, "g", service(f"tcp.monitor -p {port} -t 5"), ["127.0.0.1"], {}, 20
            )
        finally:
            server.close()
            await server.wait_closed()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        try:
            port = closed.getsockname()[1]
            bad = await run_monitor(
                cfg, "g", service(f"tcp.monitor -p {port} -t 5"), ["127.0.0.1"], {}, 20
            )
        finally:
            closed.close()
        return ok, bad

    ok, bad = run(scenario())
    assert ok.exit_code == 0 and ok.summary == ""  # type: ignore[attr-defined]
    assert bad.exit_code == 1 and bad.summary == "127.0.0.1"  # type: ignore[attr-defined]
    assert "could not connect" in bad.detail  # type: ignore[attr-defined]


def test_debian_file_alert_appends_to_its_file(cfg: MonConfig, tmp_path: Path) -> None:
    debian("alert.d", "file.alert")
    cfg = debian_cfg(cfg)
    svc = service("tcp.monitor", description="web servers")
    argv = alert_argv(
        "file.alert",
        ["-d", str(tmp_path), "alerts.log"],  # file.alert's own options: directory, file
        watch="web",
        service="http",
        hosts=["h1"],
        when=1700000000,
        alert_type="failure",
    )
    env = alert_env(
        cfg, "web", svc, alert_type="failure", retval=1, env_extra={"MON_OPSTATUS": "0"}
    )
    res = run(run_alert(cfg, argv, env, "h1\nh1 could not connect\n", 20))
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "alerts.log").read_text().splitlines()
    assert lines[0].startswith("failure web http 1700000000 (") and lines[0].endswith(") h1")
    assert lines[1:] == ["DESCR=web servers", "OPSTATUS=0", "h1 could not connect", "."]


def test_debian_test_alert(cfg: MonConfig) -> None:
    # test.alert appends to the fixed /var/log/mon/test.alert.log: run it in a private mount
    # namespace with a tmpfs there, so that the system's file is never touched.
    debian("alert.d", "test.alert")
    if not Path("/var/log/mon").is_dir():
        pytest.skip("/var/log/mon is missing: test.alert has nowhere to write")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is missing: cannot give test.alert a private /var/log/mon")
    cfg = debian_cfg(cfg)
    code = textwrap.dedent(
        f"""
        import asyncio, subprocess, sys
        from hastack.mon.model import MonConfig
        from hastack.mon.runner import run_alert
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/var/log/mon"], check=True)
        cfg = MonConfig(alertdir={cfg.alertdir!r}, basedir={cfg.basedir!r})
        argv = ["test.alert", "-s", "svc", "-g", "grp", "-h", "h1 h2", "-t", "17", "extra"]
        res = asyncio.run(run_alert(cfg, argv, {{}}, "summary\\n", 10))
        print(res.exit_code)
        print(open("/var/log/mon/test.alert.log").read(), end="")
        """
    )
    flags = ["-m", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["-r"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.run(
        [unshare, *flags, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    if proc.returncode != 0 and ("unshare:" in proc.stderr or "mount:" in proc.stderr):
        pytest.skip(f"no private mount namespace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    exit_code, logline = proc.stdout.splitlines()
    assert exit_code == "0"
    assert logline.endswith(" -s svc -g grp -h h1 h2 -t 17 extra")
