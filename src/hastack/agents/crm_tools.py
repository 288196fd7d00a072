"""``crm_attribute`` and ``crm_master`` for the agents hastack runs, talking to hastack's cluster.

Promotable agents tell Pacemaker their promotion score with ``crm_attribute --promotion -v N``
(Pacemaker 2.1's Stateful, hastack's Stateful and replica) or the older ``crm_master -l reboot
-v N`` (ocf:linbit:drbd); other agents keep node attributes or cluster options with
``crm_attribute -N NODE -n NAME ...``. Under hastack's cluster there is no Pacemaker CIB for
those tools to talk to, so the executor puts this module's two commands first on the agents'
PATH and in ``HA_SBIN_DIR`` (see :mod:`hastack.agents.cluster_tools`).

The command lines are read as Pacemaker 2.1's tools read them (:func:`parse_crm_attribute`,
:func:`crm_master_argv`: pure functions of argv and the environment) and become hastack's
operations: an update or delete is the ``node-attribute`` operation (``property-set``,
``rsc-defaults-set``, ... for ``-t``) sent to the local node daemon's control socket, as
``hastack node attribute`` sends it; a query reads the CIB the daemon holds. With ``CIB_file``
set, as Pacemaker's tools do, they work on that file instead.

Exit codes are Pacemaker's (``crm_error -X``): 0 done, 1 error, 3 an option hastack does not
implement, 64 bad command line, 102 the node daemon is not running, 105 no such attribute or
node. ``crm_master``'s own usage errors exit 1, as its script does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

EXIT_OK = 0
EXIT_ERROR = 1  # CRM_EX_ERROR
EXIT_UNIMPLEMENTED = 3  # CRM_EX_UNIMPLEMENT_FEATURE
EXIT_USAGE = 64  # CRM_EX_USAGE
EXIT_NOT_CONNECTED = 102  # CRM_EX_NOT_CONNECTED
EXIT_NOSUCH = 105  # CRM_EX_NOSUCH

# What the executor puts into an agent's environment to find this node's daemon.
ENV_CONTROL = "HASTACK_CONTROL_SOCKET"
ENV_NODE = "HASTACK_NODE"
ENV_CONFIG = "HASTACK_CONFIG_DIR"
CIB_FILE = "CIB_file"  # as Pacemaker's tools: work on this CIB file

# -t/--type: the sections crm_attribute works on (nodes and status: the deprecated spellings
# of -l forever and -l reboot).
SCOPES = ("crm_config", "rsc_defaults", "op_defaults", "tickets", "nodes", "status")
LIFETIME_SCOPE = {"reboot": "status", "forever": "nodes"}
# The daemon answers a change once the DC applied it; the agent's own timeout bounds the rest.
REQUEST_TIMEOUT = 30.0

Command = Literal["query", "update", "delete"]


class ToolError(Exception):
    """The command cannot be carried out: `message` goes to stderr, `code` is the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AttributeCommand:
    """One crm_attribute command line, understood."""

    command: Command
    name: str
    scope: str  # one of SCOPES except tickets
    node: str | None  # for nodes/status: whose attribute
    value: str | None = None  # update: the new value
    default: str | None = None  # query: shown when the attribute is not set
    quiet: bool = False

    @property
    def lifetime(self) -> str:
        return "reboot" if self.scope == "status" else "forever"

    def operation(self) -> dict[str, Any]:
        """The hastack operation of an update or delete (see hastack.crm.operations)."""
        value = self.value if self.command == "update" else None
        if self.scope in ("nodes", "status"):
            return {
                "op": "node-attribute",
                "node": self.node,
                "name": self.name,
                "value": value,
                "lifetime": self.lifetime,
            }
        if self.scope == "crm_config":
            if value is None:
                return {"op": "property-delete", "name": self.name}
            # crm_attribute sets any name: options of agents and tools, too
            return {"op": "property-set", "name": self.name, "value": value, "force": True}
        return {"op": f"{self.scope.replace('_', '-')}-set", "name": self.name, "value": value}


# --------------------------------------------------------------------------------------------
# crm_attribute's command line

# long name -> (key, takes an argument: "yes", "no" or "optional")
_LONG: dict[str, tuple[str, str]] = {
    "name": ("name", "yes"),
    "update": ("update", "yes"),
    "attr-value": ("update", "yes"),
    "query": ("query", "no"),
    "get-value": ("query", "no"),
    "delete": ("delete", "no"),
    "delete-attr": ("delete", "no"),
    "node": ("node", "yes"),
    "uname": ("node", "yes"),
    "type": ("type", "yes"),
    "lifetime": ("lifetime", "yes"),
    "default": ("default", "yes"),
    "quiet": ("quiet", "no"),
    "promotion": ("promotion", "optional"),
    "verbose": ("verbose", "no"),
    "id": ("id", "yes"),
    "attr-id": ("id", "yes"),
    "set-name": ("set-name", "yes"),
    "pattern": ("pattern", "yes"),
    "utilization": ("utilization", "no"),
    "version": ("version", "no"),
    "help": ("help", "no"),
    "help-all": ("help", "no"),
}
_SHORT: dict[str, str] = {
    "n": "name",
    "v": "update",
    "G": "query",
    "D": "delete",
    "N": "node",
    "U": "uname",
    "t": "type",
    "l": "lifetime",
    "d": "default",
    "q": "quiet",
    "Q": "quiet",
    "p": "promotion",
    "V": "verbose",
    "i": "id",
    "s": "set-name",
    "P": "pattern",
    "z": "utilization",
    "$": "version",
    "h": "help",
    "?": "help",
}
_UNSUPPORTED = {
    "id": "-i/--id",
    "set-name": "-s/--set-name",
    "pattern": "-P/--pattern",
    "utilization": "-z/--utilization",
}

USAGE = """\
Usage: crm_attribute [OPTION...]

Query, update or delete a node attribute or cluster option of hastack's cluster (Pacemaker's
crm_attribute command line, as the agents hastack runs use it).

  -n, --name=NAME          the attribute or option
  -p, --promotion[=RSC]    the promotion score of RSC (default: $OCF_RESOURCE_INSTANCE),
                           i.e. -n master-RSC with -l reboot unless -l/-t is given
  -G, --query              print the value (the default command)
  -v, --update=VALUE       set the value
  -D, --delete             delete it
  -N, --node=NODE          a node attribute of NODE (default: this node for -l and -p)
  -l, --lifetime=LIFETIME  reboot (status section) or forever (nodes section)
  -t, --type=SECTION       crm_config, rsc_defaults, op_defaults (or nodes, status)
  -d, --default=VALUE      what -G prints when the attribute is not set
  -q, --quiet              -G prints the value only
"""


def _take_argument(
    argv: Sequence[str],
    i: int,
    key: str,
    takes: str,
    given: str | None,
    flag: str,
    tool: str,
    result: list[tuple[str, str | None]],
) -> int:
    """Append (key, argument) for an option that takes one ("yes") or may ("optional"): the
    argument `given` with the option itself, else argv[i]; the index of the next word."""
    if given is not None:
        result.append((key, given))
        return i
    if takes == "yes":
        if i >= len(argv):
            raise ToolError(EXIT_USAGE, f"{tool}: Missing argument for {flag}")
        result.append((key, argv[i]))
        return i + 1
    if i < len(argv) and not argv[i].startswith("-"):
        result.append((key, argv[i]))
        return i + 1
    result.append((key, None))
    return i


def _options(argv: Sequence[str], tool: str) -> list[tuple[str, str | None]]:
    """(key, argument) in command-line order, read as GLib's option parser reads them."""
    result: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            if i < len(argv):
                raise ToolError(EXIT_USAGE, f"{tool}: unexpected argument {argv[i]!r}")
            break
        if word.startswith("--"):
            name, eq, inline = word[2:].partition("=")
            entry = _LONG.get(name)
            if entry is None:
                raise ToolError(EXIT_USAGE, f"{tool}: Unknown option --{name}")
            key, takes = entry
            if takes == "no":
                if eq:
                    raise ToolError(EXIT_USAGE, f"{tool}: --{name} takes no argument")
                result.append((key, None))
            else:
                given = inline if eq else None
                i = _take_argument(argv, i, key, takes, given, f"--{name}", tool, result)
            continue
        if not word.startswith("-") or word == "-":
            raise ToolError(EXIT_USAGE, f"{tool}: unexpected argument {word!r}")
        letters = word[1:]
        j = 0
        while j < len(letters):
            letter = letters[j]
            j += 1
            long_name = _SHORT.get(letter)
            if long_name is None:
                raise ToolError(EXIT_USAGE, f"{tool}: Unknown option -{letter}")
            key, takes = _LONG[long_name]
            if takes == "no":
                result.append((key, None))
                continue
            given = letters[j:] or None
            i = _take_argument(argv, i, key, takes, given, f"-{letter}", tool, result)
            break
    return result


def local_node(env: Mapping[str, str]) -> str:
    """The node an agent's attribute belongs to when no -N is given: the host of a container
    resource that asks for it (as Pacemaker's pcmk__node_attr_target), else this node."""
    if env.get("OCF_RESKEY_CRM_meta_container_attribute_target") == "host":
        host = env.get("OCF_RESKEY_CRM_meta_physical_host")
        if host:
            return host
    return env.get(ENV_NODE) or os.uname().nodename


def parse_crm_attribute(
    argv: Sequence[str], env: Mapping[str, str], tool: str = "crm_attribute"
) -> AttributeCommand | str:
    """crm_attribute's command line (without argv[0]) in the environment `env`: the command,
    or the text to print for --help/--version. Raises ToolError for a bad command line.

    As Pacemaker 2.1: the last of -G/-v/-D wins (-G when none is given); the last of -t/-l
    decides the section (-l reboot: status, -l forever: nodes); -p[RSC] names the attribute
    ``master-RSC`` (RSC from $OCF_RESOURCE_INSTANCE when not given) and, with neither -l nor
    -t, makes it a reboot attribute; without -t/-l/-p it is a node attribute (forever) when -N
    is given, else a cluster option. A node attribute without -N is this node's.
    """
    command: Command = "query"
    name: str | None = None
    value: str | None = None
    node: str | None = None
    scope: str | None = None
    default: str | None = None
    quiet = False
    promotion = False
    for key, arg in _options(argv, tool):
        if key == "help":
            return USAGE
        if key == "version":
            from hastack import __version__

            return f"{tool} (hastack {__version__}; Pacemaker 2.1's command line)\n"
        if key in _UNSUPPORTED:
            raise ToolError(
                EXIT_UNIMPLEMENTED, f"{tool}: {_UNSUPPORTED[key]} is not supported by hastack"
            )
        if key == "name":
            name = arg  # after -p it renames the attribute; -p still sets the lifetime
        elif key == "update":
            command, value = "update", arg
        elif key == "query":
            command = "query"
        elif key == "delete":
            command = "delete"
        elif key == "node":
            node = arg
        elif key == "type":
            if arg not in SCOPES:
                raise ToolError(
                    EXIT_USAGE,
                    f"{tool}: -t/--type {arg!r} is not one of: {', '.join(SCOPES)}",
                )
            scope = arg
        elif key == "lifetime":
            if arg not in LIFETIME_SCOPE:
                raise ToolError(
                    EXIT_USAGE, f"{tool}: -l/--lifetime {arg!r} is not one of: reboot, forever"
                )
            scope = LIFETIME_SCOPE[arg]
        elif key == "default":
            default = arg
        elif key == "quiet":
            quiet = True
        elif key == "promotion":
            rsc = arg or env.get("OCF_RESOURCE_INSTANCE")
            if not rsc:
                raise ToolError(
                    EXIT_USAGE,
                    f"{tool}: -p/--promotion must be called from an OCF resource agent or with "
                    "a resource ID specified",
                )
            promotion, name = True, f"master-{rsc}"
    if promotion and scope is None:
        scope = "status"
    if not name:
        raise ToolError(
            EXIT_USAGE, f"{tool}: give the attribute's name with -n NAME (or -p for a score)"
        )
    if scope is None:
        scope = "nodes" if node is not None else "crm_config"
    if scope == "tickets":
        raise ToolError(EXIT_UNIMPLEMENTED, f"{tool}: -t tickets is not supported by hastack")
    node = (node or local_node(env)) if scope in ("nodes", "status") else None
    return AttributeCommand(command, name, scope, node, value, default, quiet)


# --------------------------------------------------------------------------------------------
# crm_master: Pacemaker 2.1's wrapper script, which runs crm_attribute -n master-RSC


class MasterUsage(ToolError):
    """crm_master's usage error: getopt's complaint (or its own "error: ...") and its usage."""

    def __init__(self, message: str, *, getopt: bool = True) -> None:
        text = f"{'crm_master' if getopt else 'error'}: {message}\n"
        super().__init__(EXIT_ERROR, text + "\n" + MASTER_USAGE)


MASTER_USAGE = """\
Usage: crm_master <command> [<options>]

This command is deprecated. Use crm_attribute with the --promotion option
instead."""

# crm_master's options: (takes an argument, passed on to crm_attribute)
_MASTER_SHORT = {
    "V": False,
    "q": False,
    "Q": False,
    "G": False,
    "D": False,
    "v": True,
    "N": True,
    "U": True,
    "l": True,
    "i": True,
    "r": True,
}
_MASTER_LONG = {
    "help": False,
    "version": False,
    "verbose": False,
    "quiet": False,
    "query": False,
    "get-value": False,
    "delete": False,
    "delete-attr": False,
    "update": True,
    "attr-value": True,
    "node": True,
    "uname": True,
    "lifetime": True,
    "id": True,
    "attr-id": True,
    "resource": True,
}


def crm_master_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The crm_attribute command line crm_master runs for `argv`: ``-n master-RSC --lifetime
    forever`` and the options given (a later -l wins), RSC from -r or $OCF_RESOURCE_INSTANCE,
    as Pacemaker 2.1's script (no ``:N`` is stripped: under Pacemaker and hastack an anonymous
    clone's instances already run as the bare resource id). ``["--help"]``/``["--version"]``
    for those. Raises ToolError (exit 1, with crm_master's usage) for a bad command line."""
    options = ["--lifetime", "forever"]
    rsc = env.get("OCF_RESOURCE_INSTANCE")
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            break  # getopt: the rest are operands, which crm_master ignores
        if word.startswith("--"):
            name, eq, inline = word[2:].partition("=")
            matches = [o for o in _MASTER_LONG if o == name] or [
                o for o in _MASTER_LONG if o.startswith(name) and name
            ]
            if len(matches) != 1:
                raise MasterUsage(f"unrecognized option '{word}'")
            name = matches[0]
            if name in ("help", "version"):
                return [f"--{name}"]
            if not _MASTER_LONG[name]:
                if eq:
                    raise MasterUsage(f"option '--{name}' doesn't allow an argument")
                options.append(f"--{name}")
                continue
            if not eq:
                if i >= len(argv):
                    raise MasterUsage(f"option '--{name}' requires an argument")
                inline = argv[i]
                i += 1
            if name == "resource":
                rsc = inline
            else:
                options += [f"--{name}", inline]
            continue
        if not word.startswith("-") or word == "-":
            continue  # an operand: getopt moves it to the end, crm_master ignores it
        letters = word[1:]
        j = 0
        while j < len(letters):
            letter = letters[j]
            j += 1
            if letter not in _MASTER_SHORT:
                raise MasterUsage(f"invalid option -- '{letter}'")
            if not _MASTER_SHORT[letter]:
                options.append(f"-{letter}")
                continue
            arg = letters[j:]
            if not arg:
                if i >= len(argv):
                    raise MasterUsage(f"option requires an argument -- '{letter}'")
                arg = argv[i]
                i += 1
            if letter == "r":
                rsc = arg
            else:
                options += [f"-{letter}", arg]
            break
    if not rsc:
        raise MasterUsage("No resource specified", getopt=False)
    return ["-n", f"master-{rsc}", *options]


# --------------------------------------------------------------------------------------------
# Carrying it out


def _problem_code(message: str) -> int:
    """Pacemaker's exit code for a refused change: an unknown node (or one the cluster has not
    seen, for a reboot attribute) is "no such object" (105), anything else an error."""
    if message.startswith("no node") or "has no entry in the status section" in message:
        return EXIT_NOSUCH
    return EXIT_ERROR


def _read_root(env: Mapping[str, str], tool: str) -> Any:
    from hastack.cli.crm_cmds import Refused, parse_tree, read_cib

    target = _target(env, tool)
    try:
        return parse_tree(read_cib(target), target.name)
    except Refused as exc:
        raise _refused(str(exc), tool) from None


def _target(env: Mapping[str, str], tool: str) -> Any:
    from pathlib import Path

    from hastack.cli.crm_cmds import Target

    cib_file = env.get(CIB_FILE)
    if cib_file:
        return Target(path=Path(cib_file))
    socket = env.get(ENV_CONTROL)
    if not socket:
        raise ToolError(
            EXIT_NOT_CONNECTED,
            f"{tool}: Could not connect to the CIB: hastack runs this only for the agents of "
            f"its cluster (no ${ENV_CONTROL}); elsewhere set {CIB_FILE} to work on a CIB file",
        )
    return Target(socket=Path(socket), local_node=env.get(ENV_NODE))


def _refused(message: str, tool: str) -> ToolError:
    if "node daemon is not running" in message:
        return ToolError(EXIT_NOT_CONNECTED, f"{tool}: Could not connect to the CIB: {message}")
    return ToolError(_problem_code(message), f"{tool}: {message}")


def _owner(cmd: AttributeCommand) -> Any:
    from hastack.crm.cib.edit import AttributeOwner

    if cmd.scope in ("nodes", "status"):
        return AttributeOwner("node", cmd.node, lifetime=cmd.lifetime)
    kind = "property" if cmd.scope == "crm_config" else cmd.scope
    return AttributeOwner(kind)


def query(cmd: AttributeCommand, env: Mapping[str, str], tool: str) -> str:
    """What crm_attribute -G prints (raises ToolError 105 when unset and no -d is given)."""
    from hastack.crm.cib.edit import EditError, get_attribute

    root = _read_root(env, tool)
    try:
        values = [v for _, v in get_attribute(root, _owner(cmd), cmd.name)]
    except EditError as exc:
        raise ToolError(_problem_code(str(exc)), f"{tool}: {exc}") from None
    if not values:
        if cmd.default is None:
            raise ToolError(
                EXIT_NOSUCH, f"{tool}: Error performing operation: No such device or address"
            )
        values = [cmd.default]
    if cmd.quiet:
        return "".join(f"{v}\n" for v in values)
    return "".join(f"scope={cmd.scope}  name={cmd.name} value={v}\n" for v in values)


def change(cmd: AttributeCommand, env: Mapping[str, str], tool: str) -> str:
    """Carry out an update or delete; return what to print."""
    summary = _send(_target(env, tool), cmd.operation(), tool)
    if cmd.command == "delete" and not cmd.quiet and "nothing to delete" not in summary:
        return f"Deleted {cmd.scope} attribute: name={cmd.name}\n"
    return ""


def _send(target: Any, operation: dict[str, Any], tool: str) -> str:
    """Apply one operation to the CIB file, or through the node daemon (as `hastack node
    attribute` does, with a timeout that leaves the DC time to answer)."""
    from hastack.cli.crm_cmds import Refused, apply
    from hastack.daemon.control import ControlError
    from hastack.daemon.control import query as ask

    if target.path is not None:
        try:
            return str(apply(target, operation, False))
        except Refused as exc:
            raise _refused(str(exc), tool) from None
    request = {"cmd": "cib-apply", "operation": operation}
    try:
        answer = ask(target.socket, request, REQUEST_TIMEOUT)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ToolError(
            EXIT_NOT_CONNECTED,
            f"{tool}: Could not connect to the CIB: the node daemon is not running (no control "
            f"socket at {target.socket})",
        ) from None
    except (ControlError, OSError) as exc:
        raise ToolError(EXIT_ERROR, f"{tool}: cannot reach the node daemon: {exc}") from None
    if not isinstance(answer, dict):
        raise ToolError(EXIT_ERROR, f"{tool}: the node daemon answered nonsense: {answer!r}")
    if "error" in answer:
        message = str(answer["error"])
        raise ToolError(_problem_code(message), f"{tool}: {message}")
    return str(answer.get("summary", ""))


def run(tool: str, argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    """Run `tool` (crm_attribute or crm_master): (exit code, stdout, stderr)."""
    try:
        if tool == "crm_master":
            argv = crm_master_argv(argv, env)
            if argv == ["--help"]:
                text = "crm_master - Query, update, or delete a resource's promotion score\n"
                return EXIT_OK, text + "\n" + MASTER_USAGE + "\n", ""
        parsed = parse_crm_attribute(argv, env)
        if isinstance(parsed, str):
            return EXIT_OK, parsed, ""
        if parsed.command == "query":
            return EXIT_OK, query(parsed, env, "crm_attribute"), ""
        return EXIT_OK, change(parsed, env, "crm_attribute"), ""
    except ToolError as exc:
        return exc.code, "", exc.message.rstrip("\n") + "\n"


def main(tool: str, argv: Sequence[str] | None = None) -> int:
    """The entry point of the crm_attribute and crm_master scripts."""
    code, out, err = run(tool, sys.argv[1:] if argv is None else argv, os.environ)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code
