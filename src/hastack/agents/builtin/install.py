"""Install hastack's agents into an OCF root as `ROOT/resource.d/hastack/TYPE`, and its heartbeat
R1 scripts (drbddisk) into heartbeat's `/etc/ha.d/resource.d/`.

Each is a small /bin/sh wrapper that execs this Python with `-m hastack.agents.builtin.NAME`,
so Pacemaker, ocf-tester and hastack itself run them like any OCF agent. PYTHONPATH is set to
this checkout only when that interpreter cannot import hastack by itself (not installed).

When the interpreter is not executable by the calling user (a virtualenv under /root, while
ocf-tester checks permissions by running meta-data as `nobody`), the wrapper falls back to
`python3` on PATH with this checkout on PYTHONPATH: meta-data and usage need only the standard
library. Real actions run as root under a cluster manager and use the recorded interpreter.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import hastack
from hastack.agents.builtin import BUILTIN_AGENTS

PROVIDER = "hastack"
MARKER = "# hastack OCF agent wrapper"
# heartbeat R1 scripts: name in resource.d -> module of hastack.agents.builtin
R1_SCRIPTS = {"drbddisk": "drbddisk"}


class InstallError(OSError):
    """An agent cannot be installed; the message names the file and why. An OSError, so that
    callers handling "cannot write there" handle this refusal the same way."""


def package_parent() -> Path:
    """The directory that holds the `hastack` package (src/ of a checkout, or site-packages)."""
    return Path(hastack.__file__).resolve().parent.parent


def interpreter_finds_hastack(python: str) -> bool:
    """Whether `python` imports this same hastack without help from PYTHONPATH or the cwd."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONSAFEPATH"] = "1"
    try:
        proc = subprocess.run(
            [python, "-c", "import hastack; print(hastack.__file__)"],
            capture_output=True,
            text=True,
            cwd="/",
            env=env,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = proc.stdout.strip()
    return proc.returncode == 0 and Path(found).resolve() == Path(hastack.__file__).resolve()


def wrapper_text(
    type_name: str, module: str, python: str, pythonpath: str | None, *, what: str = ""
) -> str:
    """A /bin/sh wrapper that runs `module`; `what` names it in the marker line."""
    what = what or f"OCF agent ocf:{PROVIDER}:{type_name}, written by `hastack agent install-ocf`"
    src = shlex.quote(str(package_parent()))
    set_path = (
        f"PYTHONPATH={shlex.quote(pythonpath)}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
        if pythonpath
        else ""
    )
    return (
        "#!/bin/sh\n"
        f"{MARKER}: {what}.\n"
        f"PY={shlex.quote(python)}\n"
        f"{set_path}"
        'if [ ! -x "$PY" ]; then\n'
        "    # The recorded interpreter is out of this user's reach (ocf-tester's meta-data\n"
        "    # check as nobody): the system python3 with hastack's source on the path.\n"
        "    PY=python3\n"
        f"    PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
        "fi\n"
        "# Do not let the caller's working directory shadow the hastack package.\n"
        "PYTHONSAFEPATH=1; export PYTHONSAFEPATH\n"
        f'exec "$PY" -m hastack.agents.builtin.{module} "$@"\n'
    )


def install_ocf(root: Path, python: str | None = None) -> list[Path]:
    """Write the wrappers under ROOT/resource.d/hastack/ (mode 0755); return their paths.

    Files of ours are replaced; a file there that hastack did not write is left alone and
    reported with InstallError, before anything is written.
    """
    directory = Path(root) / "resource.d" / PROVIDER
    return _install(directory, BUILTIN_AGENTS, python)


def install_r1(ha_d: Path, python: str | None = None) -> list[Path]:
    """Write heartbeat R1 scripts (drbddisk) under HA_D/resource.d/ (mode 0755), as
    heartbeat's packages install them, so haresources' `drbddisk::r0` finds them."""
    what = "heartbeat R1 script {name}, written by `hastack agent install-r1`"
    return _install(Path(ha_d) / "resource.d", R1_SCRIPTS, python, what=what)


def _install(
    directory: Path, scripts: dict[str, str], python: str | None, *, what: str = ""
) -> list[Path]:
    python = python or sys.executable
    targets = {directory / name: module for name, module in scripts.items()}
    for path in targets:
        if path.exists() and MARKER not in _head(path):
            raise InstallError(f"{path} exists and was not written by hastack: not replaced")
    pythonpath = None if interpreter_finds_hastack(python) else str(package_parent())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for parent in (directory, directory.parent):
            parent.chmod(0o755)  # Pacemaker and ocf-tester's `nobody` must reach the agents
    except OSError as err:
        raise InstallError(f"cannot create {directory}: {err.strerror}") from None
    written = []
    for path, module in targets.items():
        label = what.format(name=path.name) if what else ""
        text = wrapper_text(path.name, module, python, pythonpath, what=label)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text(text)
            tmp.chmod(0o755)
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise InstallError(f"cannot write {path}: {err.strerror}") from None
        written.append(path)
    return written


def _head(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return f.read(512).decode("utf-8", "replace")
    except OSError:
        return ""
