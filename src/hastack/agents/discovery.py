"""Asking an OCF agent for its meta-data, and the timeouts it advises.

Meta-data runs to tens of KiB, so it is read whole here rather than through the runner (which
keeps an action's last lines); the agent still gets its own process group, stdout alone is
parsed, and a hung agent is killed at the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from hastack.agents.invocation import ResourceAgentCall, build_invocation
from hastack.agents.metadata import AgentMetadata, MetadataError, parse_metadata
from hastack.agents.names import DEFAULT_PATHS, AgentPaths, AgentSpec

# seconds an agent may take to print its meta-data
METADATA_TIMEOUT = 30.0


def fetch_metadata(
    spec: AgentSpec, paths: AgentPaths = DEFAULT_PATHS, timeout: float = METADATA_TIMEOUT
) -> AgentMetadata:
    """Run `AGENT meta-data` and parse it; AgentError when the agent cannot be found,
    MetadataError (naming the agent) when it fails, hangs or prints no valid meta-data."""
    call = ResourceAgentCall(resource=spec.type, agent=spec, action="meta-data", timeout=timeout)
    invocation = build_invocation(call, paths)
    try:
        proc = subprocess.Popen(
            invocation.argv,
            env=dict(invocation.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise MetadataError(f"{spec}: cannot run {invocation.argv[0]}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise MetadataError(f"{spec}: meta-data did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise MetadataError(f"{spec}: meta-data failed with rc {proc.returncode}: {last[0]}")
    return parse_metadata(out, str(spec))
