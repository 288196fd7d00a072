"""The cluster commands agents call (crm_attribute, crm_master), found first when hastack runs them.

At start the node daemon writes a directory of small scripts (:func:`install`): each runs
:mod:`hastack.agents.crm_tools` with the very interpreter the daemon runs on, whatever venv that
is, in isolated mode (``-I``: no PYTHONPATH, user site or current directory of the agent can
shadow hastack). Every agent the executor runs gets (:meth:`ClusterTools.apply`) that directory
first on its PATH and as ``HA_SBIN_DIR`` — the OCF shell library's name for where Pacemaker's
tools are, which agents call as ``${HA_SBIN_DIR}/crm_attribute`` — and the variables the
scripts use to reach this node's daemon. So that ``${HA_SBIN_DIR}/attrd_updater`` and the
other Pacemaker tools an agent may call still reach what they reached before, the directory
also links to those found in the directory HA_SBIN_DIR named before (default /usr/sbin).
Agents run outside hastack (ocf-tester, a shell) see none of this.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hastack
from hastack.agents.crm_tools import ENV_CONFIG, ENV_CONTROL, ENV_NODE
from hastack.fileio import write_atomically

TOOLS = ("crm_attribute", "crm_master")
# Pacemaker's other tools, linked so that ${HA_SBIN_DIR}/NAME keeps working
OTHER_PACEMAKER_TOOLS = (
    "attrd_updater", "cibadmin", "crm_diff", "crm_error", "crm_failcount", "crm_mon",
    "crm_node", "crm_report", "crm_resource", "crm_rule", "crm_shadow", "crm_simulate",
    "crm_standby", "crm_ticket", "crm_verify", "crmadmin", "iso8601", "stonith_admin",
)  # fmt: skip
DEFAULT_SBIN = "/usr/sbin"  # ocf-directories: HA_SBIN_DIR's default


def script_text(tool: str, python: str = sys.executable) -> str:
    """The script for `tool`: exec `python` on crm_tools.main with the arguments."""
    package_root = str(Path(hastack.__file__).resolve().parent.parent)
    # double-quoted literals (JSON's are Python's too), so that the shell's single quotes hold
    code = (
        f"import sys; sys.path.insert(0, {json.dumps(package_root)}); "
        "from hastack.agents.crm_tools import main; "
        f"sys.exit(main({json.dumps(tool)}, sys.argv[1:]))"
    )
    return (
        "#!/bin/sh\n"
        f"# {tool} for the agents of hastack's cluster (written by the node daemon)\n"
        f'exec {shlex.quote(python)} -I -c {shlex.quote(code)} "$@"\n'
    )


def install(directory: Path, python: str = sys.executable, sbin: str | None = None) -> list[str]:
    """Write the scripts into `directory` (made when missing) and link Pacemaker's other tools
    from `sbin` (default: $HA_SBIN_DIR, else /usr/sbin). Returns warnings (a directory on a
    noexec file system, whose scripts cannot run)."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    for tool in TOOLS:
        write_atomically(directory / tool, script_text(tool, python).encode(), mode=0o755)
    source = Path(sbin or os.environ.get("HA_SBIN_DIR") or DEFAULT_SBIN)
    if source.resolve() != directory.resolve():
        for name in OTHER_PACEMAKER_TOOLS:
            link = directory / name
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            if (source / name).exists():
                link.symlink_to(source / name)
    warnings = []
    if os.statvfs(directory).f_flag & os.ST_NOEXEC:
        warnings.append(
            f"{directory} is on a file system mounted noexec: agents cannot run crm_attribute "
            "and crm_master from it (set ha.cf run_dir to a directory that allows exec)"
        )
    return warnings


@dataclass(frozen=True)
class ClusterTools:
    """Where the scripts are and how they reach this node's daemon."""

    directory: Path
    control_socket: Path
    node: str
    config_dir: str = ""

    def apply(self, env: Mapping[str, str]) -> dict[str, str]:
        """An agent's environment with the tools found first and the daemon's coordinates."""
        out = dict(env)
        first = str(self.directory)
        rest = [p for p in out.get("PATH", "").split(":") if p and p != first]
        out["PATH"] = ":".join([first, *rest])
        out["HA_SBIN_DIR"] = first
        out[ENV_CONTROL] = str(self.control_socket)
        out[ENV_NODE] = self.node
        if self.config_dir:
            out[ENV_CONFIG] = self.config_dir
        return out
