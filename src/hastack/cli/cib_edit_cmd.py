"""`hastack cib query|create|modify|replace|delete|property|node-attribute|resource-attribute|
default`: read and edit a CIB file as cibadmin, crm_attribute and crm_resource do with
CIB_file set.

Every edit is all or nothing: the file is locked, read, changed in memory, validated, and
replaced atomically (a new file renamed over it), or left exactly as it was with the reason
printed. Exit status: 0 done (or the value printed), 1 refused or failed (nothing written),
2 bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from hastack.cli.common import add_json_arg
from hastack.fileio import write_atomically

# Pacemaker's tools read an offline CIB from this variable; the name is theirs.
CIB_FILE_VARIABLE = "CIB_file"


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the edit actions to `hastack cib`."""
    query = actions.add_parser(
        "query",
        help="print the CIB, a section or the elements an XPath selects (cibadmin -Q)",
        description="Print the whole CIB, one section (-o) or the elements an XPath "
        "expression selects (--xpath), as cibadmin -Q does. Exit status 1 when nothing "
        "matches.",
    )
    _file_arg(query)
    where = query.add_mutually_exclusive_group()
    where.add_argument("-o", "--scope", metavar="SECTION", help="one section, e.g. resources")
    where.add_argument("--xpath", metavar="XPATH", help="elements this XPath selects")
    query.set_defaults(func=run_query)

    create = actions.add_parser(
        "create",
        help="add an element to a section (cibadmin -C)",
        description="Add an XML element to a section of the CIB (cibadmin -C -o SECTION "
        "-X XML). Its ids must not be in use.",
    )
    _file_arg(create)
    create.add_argument("-o", "--scope", metavar="SECTION", required=True, help="the section")
    _xml_args(create)
    _write_args(create)
    create.set_defaults(func=run_create)

    modify = actions.add_parser(
        "modify",
        help="change the element with the given tag and id (cibadmin -M)",
        description="Set the attributes of the element with the XML's tag and id and merge "
        "its children (matched by tag and id; new ones are added), as cibadmin -M does. A "
        "section's tag without an id names the section.",
    )
    _file_arg(modify)
    _xml_args(modify)
    _write_args(modify)
    modify.set_defaults(func=run_modify)

    replace = actions.add_parser(
        "replace",
        help="replace the element with the given tag and id (cibadmin -R)",
        description="Replace the element with the XML's tag and id (or the section of its "
        "tag) by the XML, as cibadmin -R does.",
    )
    _file_arg(replace)
    _xml_args(replace)
    _write_args(replace)
    replace.set_defaults(func=run_replace)

    delete = actions.add_parser(
        "delete",
        help="delete an element (cibadmin -D)",
        description="Delete the element the XML names by tag and id, or the configuration "
        "element with --id. A resource still named by constraints or tags is refused unless "
        "--cascade deletes those too (cibadmin would leave them dangling).",
    )
    _file_arg(delete)
    delete.add_argument("xml", metavar="XML", nargs="?", help="an element with tag and id")
    delete.add_argument("--id", dest="element_id", metavar="ID", help="delete by id alone")
    delete.add_argument(
        "--cascade", action="store_true", help="also delete constraints and tags naming it"
    )
    _write_args(delete)
    delete.set_defaults(func=run_delete)

    prop = actions.add_parser(
        "property",
        help="show, set or delete a cluster option (crm_attribute -t crm_config)",
        description="Without VALUE print the cluster option's value; with VALUE set it; "
        "with --delete remove it (crm_attribute -t crm_config -n NAME [-v VALUE | -D]).",
    )
    _file_arg(prop)
    _attribute_args(prop)
    prop.set_defaults(func=run_attribute, kind="property")

    node = actions.add_parser(
        "node-attribute",
        help="show, set or delete a node attribute (crm_attribute -N)",
        description="A node's attribute: permanent in <nodes> (--lifetime forever, the "
        "default) or transient in the status section, gone when the node reboots "
        "(--lifetime reboot), as crm_attribute -N NODE -n NAME [-v VALUE | -D] [-l ...].",
    )
    _file_arg(node)
    node.add_argument("owner", metavar="NODE", help="the node's name (uname)")
    _attribute_args(node)
    node.add_argument(
        "-l",
        "--lifetime",
        choices=("forever", "reboot"),
        default="forever",
        help="forever (in <nodes>) or reboot (transient, in the status section)",
    )
    node.set_defaults(func=run_attribute, kind="node")

    rsc = actions.add_parser(
        "resource-attribute",
        help="show, set or delete a resource parameter or meta-attribute (crm_resource)",
        description="A resource's instance attribute (parameter), or with --meta its "
        "meta-attribute, as crm_resource -r RSC [--meta] --get-parameter / --set-parameter "
        "/ --delete-parameter.",
    )
    _file_arg(rsc)
    rsc.add_argument("owner", metavar="RESOURCE", help="the resource id")
    _attribute_args(rsc)
    rsc.add_argument("--meta", action="store_true", help="a meta-attribute, not a parameter")
    rsc.set_defaults(func=run_attribute, kind="resource")

    default = actions.add_parser(
        "default",
        help="show, set or delete a resource or operation default",
        description="A resource default (rsc) or operation default (op): the meta-attributes "
        "of <rsc_defaults> or <op_defaults>, e.g. resource-stickiness or timeout.",
    )
    _file_arg(default)
    default.add_argument("which", choices=("rsc", "op"), help="rsc_defaults or op_defaults")
    _attribute_args(default)
    default.set_defaults(func=run_attribute, kind="default")


def _file_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-x",
        "--xml-file",
        metavar="FILE",
        help="the CIB file (default: $CIB_file, as Pacemaker's tools)",
    )


def _xml_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("xml", metavar="XML", nargs="?", help="the XML element, or - for stdin")
    parser.add_argument("--xml-text-file", metavar="PATH", help="read the XML from this file")


def _write_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change; write nothing"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write even when the result has new validation errors",
    )


def _attribute_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the attribute's name")
    parser.add_argument("value", metavar="VALUE", nargs="?", help="set it to this value")
    parser.add_argument("-D", "--delete", action="store_true", help="delete the attribute")
    parser.add_argument("--set", dest="set_id", metavar="SET_ID", help="the attribute set")
    _write_args(parser)
    add_json_arg(parser)


# --------------------------------------------------------------------------------------------


def _error(args: argparse.Namespace, message: str) -> int:
    print(f"hastack cib {args.action}: {message}", file=sys.stderr)
    return 1


def _cib_path(args: argparse.Namespace) -> Path | None:
    name = args.xml_file or os.environ.get(CIB_FILE_VARIABLE)
    return Path(name) if name else None


def _no_file(args: argparse.Namespace) -> int:
    return _error(
        args,
        "no CIB file: give -x FILE or set CIB_file (this version edits CIB files; the "
        "running cluster's CIB cannot be edited with it yet)",
    )


def _fragment_text(args: argparse.Namespace) -> str | None:
    if getattr(args, "xml_text_file", None):
        return Path(args.xml_text_file).read_text()
    if args.xml == "-":
        return sys.stdin.read()
    return str(args.xml) if args.xml is not None else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[bytes]]:
    """The CIB file opened and locked against other hastack edits. The file is replaced by a
    rename, so after the lock is granted it is checked to still be the file at `path`."""
    while True:
        handle = path.open("rb")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                break
        except BaseException:
            handle.close()
            raise
        handle.close()  # replaced while we waited: lock the new one
    try:
        yield handle
    finally:
        handle.close()


def _edit(args: argparse.Namespace, edit: Callable[[Any], str]) -> int:
    from hastack.crm.cib.edit import EditError, apply_edit
    from hastack.crm.cib.xml import BZIP2_MAGIC

    path = _cib_path(args)
    if path is None:
        return _no_file(args)
    try:
        with _locked(path) as handle:
            data = handle.read()
            if data.startswith(BZIP2_MAGIC):
                return _error(
                    args,
                    f"{path} is compressed (a saved scheduler input, kept as a record): "
                    "edit a decompressed copy",
                )
            try:
                result = apply_edit(data, str(path), edit, force=args.force)
            except EditError as exc:
                return _error(args, str(exc))
            if args.dry_run:
                sys.stdout.writelines(
                    difflib.unified_diff(
                        data.decode(errors="replace").splitlines(keepends=True),
                        result.data.decode(errors="replace").splitlines(keepends=True),
                        f"{path} (now)",
                        f"{path} (after {args.action})",
                    )
                )
                print(f"{result.summary} (dry run: {path} not changed)")
                return 0
            if result.changed:
                write_atomically(path, result.data)
    except OSError as exc:
        return _error(args, f"{path}: {exc.strerror or exc}")
    for problem in result.new_problems:
        print(f"hastack cib {args.action}: {problem}", file=sys.stderr)
    admin_epoch, epoch, updates = result.epoch
    print(f"{path}: {result.summary} (version {admin_epoch}.{epoch}.{updates})")
    return 0


def run_query(args: argparse.Namespace) -> int:
    from lxml import etree

    from hastack.crm.cib.edit import EditError, query
    from hastack.crm.cib.xml import decompress

    path = _cib_path(args)
    if path is None:
        return _no_file(args)
    try:
        root = etree.fromstring(decompress(path.read_bytes()))
        found = query(root, xpath=args.xpath, scope=args.scope)
    except OSError as exc:
        return _error(args, f"{path}: {exc.strerror or exc}")
    except ValueError as exc:  # a damaged compressed file
        return _error(args, f"{path}: {exc}")
    except etree.XMLSyntaxError as exc:
        return _error(args, f"{path}: not well-formed XML: {exc.msg}")
    except EditError as exc:
        return _error(args, f"{path}: {exc}")
    if not found:
        return _error(args, f"{path}: nothing matches")
    for element in found:
        element = _detached(element)
        etree.indent(element, space="  ")
        print(etree.tostring(element, encoding="unicode").rstrip())
    return 0


def _detached(element: Any) -> Any:
    import copy

    clone = copy.deepcopy(element)
    clone.tail = None
    return clone


def _fragment_or_error(args: argparse.Namespace) -> Any:
    from hastack.crm.cib.edit import EditError, parse_fragment

    try:
        text = _fragment_text(args)
    except OSError as exc:
        return _error(args, f"{args.xml_text_file}: {exc.strerror or exc}")
    if text is None:
        return _error(args, "give the XML element (an argument, - for stdin, or --xml-text-file)")
    try:
        return parse_fragment(text)
    except EditError as exc:
        return _error(args, str(exc))


def run_create(args: argparse.Namespace) -> int:
    from hastack.crm.cib.edit import create

    fragment = _fragment_or_error(args)
    if isinstance(fragment, int):
        return fragment
    return _edit(args, lambda root: create(root, args.scope, fragment))


def run_modify(args: argparse.Namespace) -> int:
    from hastack.crm.cib.edit import modify

    fragment = _fragment_or_error(args)
    if isinstance(fragment, int):
        return fragment
    return _edit(args, lambda root: modify(root, fragment))


def run_replace(args: argparse.Namespace) -> int:
    from hastack.crm.cib.edit import replace

    fragment = _fragment_or_error(args)
    if isinstance(fragment, int):
        return fragment
    return _edit(args, lambda root: replace(root, fragment))


def run_delete(args: argparse.Namespace) -> int:
    from hastack.crm.cib.edit import delete

    if (args.xml is None) == (args.element_id is None):
        return _error(args, "give either the XML element or --id ID")
    fragment = None
    if args.xml is not None:
        fragment = _fragment_or_error(args)
        if isinstance(fragment, int):
            return fragment
    return _edit(
        args,
        lambda root: delete(
            root, fragment=fragment, element_id=args.element_id, cascade=args.cascade
        ),
    )


def _owner(args: argparse.Namespace) -> Any:
    from hastack.crm.cib.edit import AttributeOwner

    if args.kind == "default":
        return AttributeOwner(f"{args.which}_defaults")
    if args.kind == "node":
        return AttributeOwner("node", args.owner, lifetime=args.lifetime)
    if args.kind == "resource":
        return AttributeOwner("resource", args.owner, meta=args.meta)
    return AttributeOwner("property")


def run_attribute(args: argparse.Namespace) -> int:
    from hastack.crm.cib.edit import set_attribute

    owner = _owner(args)
    if args.delete and args.value is not None:
        return _error(args, "give a VALUE to set, or --delete, not both")
    if args.delete or args.value is not None:
        value = None if args.delete else args.value
        return _edit(
            args, lambda root: set_attribute(root, owner, args.name, value, set_id=args.set_id)
        )
    return _show_attribute(args, owner)


def _show_attribute(args: argparse.Namespace, owner: Any) -> int:
    from lxml import etree

    from hastack.crm.cib.edit import EditError, get_attribute
    from hastack.crm.cib.xml import decompress

    path = _cib_path(args)
    if path is None:
        return _no_file(args)
    try:
        root = etree.fromstring(decompress(path.read_bytes()))
        values = get_attribute(root, owner, args.name, set_id=args.set_id)
    except OSError as exc:
        return _error(args, f"{path}: {exc.strerror or exc}")
    except ValueError as exc:  # a damaged compressed file
        return _error(args, f"{path}: {exc}")
    except etree.XMLSyntaxError as exc:
        return _error(args, f"{path}: not well-formed XML: {exc.msg}")
    except EditError as exc:
        return _error(args, f"{path}: {exc}")
    if args.json:
        print(
            json.dumps({"name": args.name, "values": [{"set": s, "value": v} for s, v in values]})
        )
        return 0 if values else 1
    if not values:
        return _error(args, f"{path}: {args.name} is not set")
    if len(values) == 1:
        print(values[0][1])
    else:
        for set_id, value in values:
            print(f"{value}\t(set {set_id})")
    return 0
