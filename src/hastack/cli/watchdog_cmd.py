"""`hastack watchdog run|check|status|softdog`: the watchdog daemon (watchdog.conf as the
watchdog 5.16 daemon reads it), its validation, its status, and the softdog companion."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

DEFAULT_CONFIG = "/etc/watchdog.conf"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watchdog",
        help="the watchdog daemon: checks the system, feeds /dev/watchdog, resets a hung node",
        description="A watchdog daemon that reads watchdog.conf as the watchdog 5.16 daemon "
        "does: it runs the configured checks every interval, retries and repairs a failing "
        "one, and when a fault is not repaired it records why, tells the administrator, stops "
        "the node's cluster resources and reboots; a machine too hung to do so is reset by the "
        "device, which it stops feeding.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = actions.add_parser(
        "run",
        help="run the daemon in the foreground (SIGTERM: a clean stop, the device disarmed)",
        description="Run the watchdog daemon in the foreground until SIGTERM or SIGINT, which "
        "close the device with the magic character (disarmed). A daemon that is killed leaves "
        "the device armed: the machine resets after its timeout.",
    )
    _config_arg(run)
    run.add_argument(
        "-q",
        "--no-action",
        action="store_true",
        help="a dry run: every check, retry and repair runs, the reason is recorded and the "
        "administrator told, but nothing is stopped or reset and the device goes on being fed",
    )
    run.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="skip the sanity checks of interval and max-load-1 (as watchdog --force)",
    )
    run.add_argument(
        "-s", "--sync", action="store_true", help="sync the file systems every interval"
    )
    run.add_argument(
        "-b",
        "--softboot",
        action="store_true",
        help="act on the first failure, no retry (softboot-option = yes)",
    )
    run.add_argument(
        "-F",
        "--foreground",
        action="store_true",
        help="accepted for watchdog 5.16's command lines: the daemon always stays in the "
        "foreground",
    )
    run.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    run.set_defaults(func=run_daemon)

    check = actions.add_parser(
        "check",
        help="validate watchdog.conf; exit non-zero on any problem",
        description="Read watchdog.conf as `run` would and say every problem with its file "
        "and line (where the watchdog 5.16 daemon ignores a bad line silently), then what the "
        "daemon would check. Exit 0 when the file is fine, 1 when it is not.",
    )
    _config_arg(check)
    check.add_argument(
        "-f", "--force", action="store_true", help="skip the sanity checks, as `run --force`"
    )
    check.set_defaults(func=run_check)

    status = actions.add_parser(
        "status",
        help="the running daemon: device, keep-alives, each check, the last reset",
        description="What the daemon last wrote in its state directory: the device, its "
        "timeout, whether it is armed and fed, the last keep-alive, each check's last result, "
        "the repairs, and why the last reset happened.",
    )
    _config_arg(status)
    status.add_argument(
        "--state-dir", metavar="DIR", help="the daemon's state directory (default: watchdog.conf's)"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=run_status)

    from hastack.watchdog.softdog import EPILOG, add_commands

    softdog = actions.add_parser(
        "softdog",
        help="the lowest-priority responder and its test binary (docs/watchdog.md)",
        description="`softdog serve` runs a lowest-priority responder; `softdog test` is a "
        "test-binary that fails when it answers late or wrong, proving that every priority "
        "down to the lowest still gets the CPU.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(softdog)
    softdog.set_defaults(func=run_softdog)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config-file",
        dest="config",
        metavar="FILE",
        default=DEFAULT_CONFIG,
        help=f"the configuration file (default {DEFAULT_CONFIG})",
    )


def _load(path: str, force: bool) -> Any:
    """The configuration, or None after saying every problem on stderr."""
    from hastack.watchdog.config import WatchdogConfigError, check_parameters, load

    try:
        cfg = load(path)
    except WatchdogConfigError as exc:
        for problem in exc.problems:
            print(f"hastack watchdog: {problem}", file=sys.stderr)
        return None
    problems = [] if force else check_parameters(cfg, force=False)
    for problem in problems:
        print(f"hastack watchdog: {problem}", file=sys.stderr)
    return None if problems else cfg


def run_daemon(args: argparse.Namespace) -> int:
    import asyncio

    from hastack.watchdog.daemon import WatchdogDaemon

    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO,
        format="%(asctime)s hastack-watchdog %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    cfg = _load(args.config, args.force)
    if cfg is None:
        return 2
    cfg.verbose = max(cfg.verbose, args.verbose)
    if args.softboot:
        cfg.retry_timeout = 0
    daemon = WatchdogDaemon(cfg, no_action=args.no_action, sync=args.sync)
    return asyncio.run(daemon.run())


def run_check(args: argparse.Namespace) -> int:
    from hastack.watchdog.config import discover_test_directory

    cfg = _load(args.config, args.force)
    if cfg is None:
        return 1
    status = 0
    for warning in cfg.warnings:
        print(f"warning: {warning}")
    executables = [("repair-binary", cfg.repair_binary)]
    executables += [("test-binary", test.path) for test in cfg.test_binaries]
    for label, path in executables:
        if path is not None and not os.access(path, os.X_OK):
            print(
                f"hastack watchdog: {args.config}: {label} {path} is not an executable file",
                file=sys.stderr,
            )
            status = 1
    if cfg.watchdog_device is not None and not os.path.exists(cfg.watchdog_device):
        print(f"warning: watchdog-device {cfg.watchdog_device} does not exist (yet)")
    for line in describe_config(cfg, discover_test_directory(cfg)):
        print(line)
    return status


def describe_config(cfg: Any, directory_tests: list[Any]) -> list[str]:
    """What the daemon would do with `cfg`, one line each."""
    device = (
        f"device {cfg.watchdog_device}, timeout {cfg.watchdog_timeout} s"
        if cfg.watchdog_device
        else "no watchdog-device: the checks run, nothing is fed"
    )
    lines = [f"{cfg.source}: {device}; every {cfg.interval} s"]
    if cfg.max_load_1:
        lines.append(
            f"  load average at most {cfg.max_load_1} / {cfg.max_load_5} / {cfg.max_load_15}"
        )
    for name, pages in (
        ("free memory", cfg.min_memory),
        ("allocatable memory", cfg.allocatable_memory),
    ):
        if pages:
            lines.append(f"  {name} at least {pages} pages")
    if cfg.max_swap:
        lines.append(f"  swap used at most {cfg.max_swap} pages")
    for sensor in cfg.temperature_sensors:
        lines.append(f"  temperature {sensor} below {cfg.max_temperature} C")
    for watched in cfg.files:
        changed = f", changed within {watched.change} s" if watched.change else ""
        lines.append(f"  file {watched.path} exists{changed}")
    lines += [f"  process of pidfile {path} alive" for path in cfg.pidfiles]
    lines += [f"  ping {address} ({cfg.ping_count} tries)" for address in cfg.pings]
    lines += [f"  interface {name} receives" for name in cfg.interfaces]
    for test in list(cfg.test_binaries) + directory_tests:
        how = "" if test.version == 0 else " test (test-directory)"
        lines.append(f"  test {test.path}{how}, timeout {cfg.test_timeout} s")
    repair = cfg.repair_binary or "none: a fault that persists is acted on"
    lines.append(
        f"  retry {cfg.retry_timeout} s, repair {repair}, at most {cfg.repair_maximum} "
        "repair(s) that do not clear a fault"
    )
    return lines


def run_status(args: argparse.Namespace) -> int:
    from hastack.watchdog.state import StateDir, StateError

    state_dir = args.state_dir
    if state_dir is None:
        cfg = _load(args.config, force=True)
        if cfg is None:
            return 2
        state_dir = cfg.state_dir
    state = StateDir(state_dir)
    try:
        status = state.read_status()
        last_reset = state.last_reset()
    except StateError as exc:
        print(f"hastack watchdog: {exc}", file=sys.stderr)
        return 2
    pid = state.running_pid()
    if status is None:
        status = {"running": False, "last_reset": last_reset}
    status["running"] = pid is not None and bool(status.get("running"))
    status["last_reset"] = last_reset
    if args.json:
        print(json.dumps(status, indent=1, sort_keys=True))
    else:
        for line in format_status(status, state_dir):
            print(line)
    return 0 if status["running"] else 3


def _ago(stamp: float | None) -> str:
    if not stamp:
        return "never"
    return f"{max(0.0, time.time() - stamp):.1f} s ago"


def format_status(status: dict[str, Any], state_dir: str) -> list[str]:
    from hastack.watchdog.codes import describe

    lines = []
    if not status.get("running"):
        lines.append(f"watchdog daemon: not running (state in {state_dir})")
    else:
        dry = " (no-action: dry run)" if status.get("no_action") else ""
        lines.append(f"watchdog daemon: running, pid {status.get('pid')}{dry}")
    device = status.get("device") or {}
    if device:
        if not device.get("path"):
            lines.append("device: none (checks only)")
        else:
            driver = device.get("driver") or "stand-in"
            armed = "armed" if device.get("armed") else "not armed"
            fed = (
                "fed" if device.get("feeding") else f"NOT fed: {device.get('not_feeding_because')}"
            )
            lines.append(
                f"device: {device['path']} ({driver}), timeout {device.get('timeout')} s, "
                f"{armed}, {fed}; last keep-alive {_ago(device.get('last_keepalive'))}"
            )
    for entry in status.get("checks") or []:
        code = int(entry.get("code") or 0)
        state = "ok" if not code else f"{describe(code)} [{entry.get('state')}]"
        detail = f": {entry['detail']}" if entry.get("detail") else ""
        lines.append(f"  {entry.get('check')} {entry.get('object')}: {state}{detail}")
    action = status.get("action")
    if action:
        lines.append(f"ACTION TAKEN: {action.get('action')}: {action.get('reason')}")
    reset = status.get("last_reset")
    if reset:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(reset.get("time", 0)))
        dry = " (dry run, nothing was done)" if reset.get("no_action") else ""
        lines.append(
            f"last reset: {when}{dry}: {reset.get('action')} because {reset.get('check')} "
            f"{reset.get('object')}: {reset.get('reason')} ({reset.get('code_text')})"
        )
    else:
        lines.append("last reset: none recorded")
    return lines


def run_softdog(args: argparse.Namespace) -> int:
    from hastack.watchdog.softdog import run

    return run(args)
