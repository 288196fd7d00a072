"""`hastack convert haresources FILE`: turn heartbeat R1's haresources into a Pacemaker CIB."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hastack.config.errors import ConfigError, ConfigProblem
from hastack.fileio import write_atomically


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert other tools' configurations (heartbeat R1 haresources) into a CIB",
        description="Convert configurations of other cluster tools into hastack's.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    haresources = kinds.add_parser(
        "haresources",
        help="heartbeat R1 haresources (+ ha.cf's auto_failback) -> cib.xml",
        description="Convert a heartbeat R1 haresources file into the equivalent CIB, as "
        "haresources2cib.py did: each line becomes a group (or a lone primitive) preferring "
        "its node with score 100, resource-stickiness follows auto_failback (on/legacy: 0, "
        "off: INFINITY), IP addresses become ocf:heartbeat:IPaddr2, Filesystem::... "
        "ocf:heartbeat:Filesystem, NAME::ARGS heartbeat:NAME, a bare NAME lsb:NAME (or "
        "heartbeat:NAME when HA_CF_DIR/resource.d has it). The CIB is checked before it is "
        "written.",
    )
    haresources.add_argument("file", metavar="FILE", help="the haresources file")
    haresources.add_argument(
        "--auto-failback",
        choices=("on", "off", "legacy"),
        help="override ha.cf's auto_failback (default: ha.cf's value with -c, else legacy)",
    )
    haresources.add_argument(
        "-c",
        "--config",
        metavar="HA_CF_DIR",
        help="the directory holding ha.cf (its nodes are checked, auto_failback read) and "
        "resource.d (R1 scripts)",
    )
    haresources.add_argument(
        "-o", "--output", metavar="OUT", help="write the CIB to OUT (default: standard output)"
    )
    haresources.set_defaults(func=run_haresources)


def _fail(problems: list[ConfigProblem] | str, code: int = 1) -> int:
    if isinstance(problems, str):
        print(f"hastack convert: {problems}", file=sys.stderr)
    else:
        for problem in problems:
            print(f"hastack convert: {problem}", file=sys.stderr)
    return code


def run_haresources(args: argparse.Namespace) -> int:
    from hastack.config.hacf import read_hacf_file, read_text_file
    from hastack.crm.cib.validate import is_valid, validate
    from hastack.crm.cib_source import r1_scripts_in
    from hastack.crm.haresources import convert_haresources

    auto_failback = args.auto_failback
    nodes: list[str] = []
    r1_scripts: set[str] = set()
    fencing = False
    if args.config is not None:
        hacf, problems, _ = read_hacf_file(os.path.join(args.config, "ha.cf"))
        if problems or hacf is None:
            return _fail(problems or f"{args.config}/ha.cf: not usable")
        nodes = [spec.name for spec in hacf.nodes]
        if auto_failback is None:
            auto_failback = hacf.auto_failback
        r1_scripts = r1_scripts_in(Path(args.config) / "resource.d")
        # heartbeat R1 fences through the devices ha.cf names; the converted CIB keeps that
        # protection on (the fencer reads the devices from ha.cf itself)
        fencing = hacf.stonith is not None or bool(hacf.stonith_hosts)
    text, problem = read_text_file(args.file)
    if text is None:
        assert problem is not None
        return _fail([problem])
    try:
        cib = convert_haresources(
            text,
            args.file,
            auto_failback or "legacy",
            nodes=nodes,
            r1_scripts=r1_scripts,
            fencing=fencing,
        )
    except ConfigError as exc:
        return _fail(exc.problems)
    problems_out = validate(cib, args.output or "<output>", devices_outside_cib=fencing)
    if not is_valid(problems_out):  # a bug in the converter: say so, write nothing
        for p in problems_out:
            print(f"hastack convert: {p}", file=sys.stderr)
        return _fail("the converted CIB does not validate; nothing written")
    if args.output:
        try:
            write_atomically(Path(args.output), cib)
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    else:
        sys.stdout.write(cib.decode("utf-8"))
    return 0
