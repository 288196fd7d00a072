"""`hastack replica VERB`: drbdadm's verbs for hastack's replicated block devices.

`serve` runs this node's replication daemon in the foreground; `create-md`, `dump` and `dump-md`
work on the configuration and the disks directly; every other verb asks the daemon over its
control socket and prints what it answered.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from typing import Any

DEFAULT_CONF = "/etc/drbd.conf"
SOCKET_ENV = "HASTACK_REPLICA_SOCKET"

# verb -> help; the daemon's verbs (control.VERBS) that take a resource
DAEMON_VERBS: dict[str, str] = {
    "up": "attach the backing devices and connect to the peer (drbdadm up)",
    "down": "demote, disconnect and detach cleanly (drbdadm down)",
    "attach": "attach the backing devices only; on a running Diskless volume, attach its "
    "disk again (a resync from the peer brings it UpToDate)",
    "detach": "let go of the backing device and continue Diskless: reads and writes go to "
    "the peer (drbdadm detach)",
    "connect": "connect to the peer (after disconnect, or a refused split brain)",
    "disconnect": "drop the connection and stay StandAlone",
    "primary": "become Primary: the NBD export serves reads and writes",
    "secondary": "become Secondary: the NBD export is refused",
    "invalidate": "discard the local data: a full sync from the peer",
    "invalidate-remote": "discard the peer's data: a full sync to the peer",
    "outdate": "mark the local data Outdated (it will not be promoted)",
    "new-current-uuid": "start a new data generation (with --clear-bitmap: skip the initial sync)",
    "verify": "compare both sides block by block (verify-alg); differences go to the bitmap",
    "resume-io": "resume application I/O suspended by fencing (the peer is dealt with by hand)",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replica",
        help="replicated block devices: DRBD's model, drbd.conf, drbdadm's verbs, over NBD",
        description="Replicated block devices configured by drbd.conf. `serve` runs this node's "
        "daemon; the other verbs talk to it or read the configuration and disks.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def common(p: argparse.ArgumentParser, *, conf: bool = True, sock: bool = True) -> None:
        if conf:
            p.add_argument(
                "-c",
                "--config",
                default=DEFAULT_CONF,
                metavar="FILE",
                help=f"drbd.conf (default {DEFAULT_CONF})",
            )
            p.add_argument(
                "--node",
                default=os.uname().nodename,
                help="this node's name in `on HOST` sections (default: uname -n)",
            )
        if sock:
            p.add_argument(
                "--socket",
                default=os.environ.get(SOCKET_ENV, _default_socket()),
                metavar="PATH",
                help=f"the daemon's control socket (default ${SOCKET_ENV} or {_default_socket()})",
            )

    serve = verbs.add_parser(
        "serve",
        help="run this node's replication daemon in the foreground",
        description="Attach, connect and serve every resource that has a host section for this "
        "node, until SIGTERM or SIGINT (a clean stop demotes and detaches).",
    )
    common(serve)
    serve.add_argument(
        "--no-up", action="store_true", help="start with every resource down (wait for `up`)"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    serve.set_defaults(func=run_serve)

    for verb, help_text in DAEMON_VERBS.items():
        p = verbs.add_parser(verb, help=help_text, description=help_text)
        common(p, conf=False)
        if verb in ("attach", "detach"):
            p.add_argument(
                "resource", metavar="RES[/VOL]", help="a resource name (or all), or one volume"
            )
        else:
            p.add_argument("resource", metavar="RESOURCE", help="a resource name, or all")
        if verb == "detach":
            p.add_argument(
                "--force",
                action="store_true",
                help="detach even a Primary without an UpToDate peer (its I/O then fails)",
            )
        if verb == "primary":
            p.add_argument(
                "--force",
                action="store_true",
                help="promote even if the disk is not UpToDate: this disk becomes the source",
            )
        if verb in ("connect", "up"):
            p.add_argument(
                "--discard-my-data",
                action="store_true",
                help="the manual split-brain fix: this node becomes the sync target",
            )
        if verb == "new-current-uuid":
            p.add_argument(
                "--clear-bitmap",
                action="store_true",
                help="both sides are known identical (new, empty): skip the initial sync",
            )
        p.set_defaults(func=run_daemon_verb)

    resize = verbs.add_parser(
        "resize",
        help="take the new size of grown (or, with --size, shrunk) backing devices",
        description="drbdadm resize: after the backing device of a volume grew on both nodes, "
        "the volume takes the smaller of the two sizes (or --size), agreed with the peer; "
        "internal meta-data moves to the new end of the device and the new area is "
        "resynchronised from the Primary. Run it on one node, with the resource connected and "
        "one side Primary.",
    )
    common(resize, conf=False)
    resize.add_argument("resource", metavar="RES[/VOL]", help="a resource, or one volume of it")
    resize.add_argument(
        "--size",
        metavar="SIZE",
        help="the new size (sectors, or with a unit: K, M, G, T); smaller than now shrinks: "
        "shrink the file system first, the data beyond is lost",
    )
    resize.add_argument(
        "--assume-peer-has-space",
        action="store_true",
        help="resize while not connected, trusting that the peer's device is as large",
    )
    resize.add_argument(
        "--assume-clean",
        action="store_true",
        help="do not resynchronise the new area (it is known identical, e.g. zeroed, on both)",
    )
    resize.set_defaults(func=run_resize)

    adjust = verbs.add_parser(
        "adjust",
        help="apply drbd.conf's changes to the running daemon",
        description="drbdadm adjust: re-read drbd.conf and change only what differs: bring up "
        "resources added or down, connect StandAlone ones, change options on the fly (or by "
        "disconnect + connect for protocol, authentication and addresses). Resources removed "
        "from drbd.conf are left running. A file with an error changes nothing.",
    )
    common(adjust, conf=False)
    adjust.add_argument(
        "resource", nargs="?", default="all", metavar="RESOURCE", help="a resource, or all"
    )
    adjust.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="drbd.conf to read (default: the file the daemon was started with)",
    )
    adjust.add_argument(
        "-d", "--dry-run", action="store_true", help="print the steps, change nothing"
    )
    adjust.set_defaults(func=run_adjust)

    status = verbs.add_parser(
        "status",
        help="the state of one or all resources",
        description="Roles, disk and connection states, out-of-sync data and sync progress.",
    )
    common(status, conf=False)
    status.add_argument("resource", nargs="?", default="all", metavar="RESOURCE")
    form = status.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable")
    form.add_argument("--proc", action="store_true", help="as /proc/drbd's lines")
    status.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="redraw every SECONDS (a live progress bar while syncing); Ctrl-C ends",
    )
    status.set_defaults(func=run_status)
    for verb, what in (
        ("role", "this node's and the peer's role (Primary/Secondary)"),
        ("cstate", "the connection state"),
        ("dstate", "this node's and the peer's disk state"),
    ):
        p = verbs.add_parser(verb, help=what, description=what)
        common(p, conf=False)
        p.add_argument("resource", metavar="RESOURCE")
        p.set_defaults(func=run_state_line, line=verb)

    create = verbs.add_parser(
        "create-md",
        help="write fresh meta-data on a resource's backing devices",
        description="Write new meta-data (superblock, empty activity log, clean bitmap). "
        "Refuses to overwrite existing meta-data unless --force.",
    )
    common(create, sock=False)
    create.add_argument("resource", metavar="RESOURCE", help="a resource name, or all")
    create.add_argument("--force", action="store_true", help="overwrite existing meta-data")
    create.set_defaults(func=run_create_md)

    dump = verbs.add_parser(
        "dump", help="print the configuration as hastack read it", description="drbdadm dump."
    )
    common(dump, sock=False)
    dump.add_argument("resource", nargs="?", default="all", metavar="RESOURCE")
    dump.set_defaults(func=run_dump)

    dump_md = verbs.add_parser(
        "dump-md",
        help="print a detached volume's meta-data",
        description="The superblock (identifiers, flags) and the bitmap's dirty blocks.",
    )
    common(dump_md, sock=False)
    dump_md.add_argument("resource", metavar="RESOURCE")
    dump_md.set_defaults(func=run_dump_md)

    resolve = verbs.add_parser(
        "resolve",
        help="resolve a split brain by keeping one node's data",
        description="The manual split-brain recovery: on the node whose changes are discarded "
        "it runs `secondary` and `connect --discard-my-data`; on the node kept, `connect`. Run "
        "it on both nodes. --dry-run shows first how many blocks each side changed.",
    )
    common(resolve, conf=False)
    resolve.add_argument("resource", metavar="RESOURCE")
    resolve.add_argument("--keep", required=True, metavar="NODE", help="the node whose data wins")
    resolve.add_argument("--dry-run", action="store_true", help="only say what would happen")
    resolve.set_defaults(func=run_resolve)

    from hastack.cli import replica_fence_cmd

    replica_fence_cmd.register(verbs)


def _default_socket() -> str:
    from hastack.replica.client import DEFAULT_SOCKET

    return DEFAULT_SOCKET


def _load(path: str) -> Any:
    from hastack.replica.config import ConfigError, load_drbd_conf

    try:
        return load_drbd_conf(path)
    except ConfigError as err:
        print(f"hastack replica: {err}", file=sys.stderr)
        return None


def run_serve(args: argparse.Namespace) -> int:
    import uvloop

    from hastack.replica.control import serve
    from hastack.replica.malloc_tuning import keep_freed_memory

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s hastack-replica %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    conf = _load(args.config)
    if conf is None:
        return 1
    for warning in conf.warnings:
        logging.getLogger("hastack.replica").warning("%s", warning)
    # The daemon's loop is the data path (every NBD request and peer frame): uvloop carries
    # 8-18% more writes per second than asyncio's own loop, and memory kept for reuse makes
    # large writes cheaper (docs/benchmarks.md; malloc_tuning.py).
    keep_freed_memory()
    return uvloop.run(serve(conf, args.node, args.socket, up=not args.no_up))


def _ask(args: argparse.Namespace, verb: str, **fields: Any) -> Any:
    from hastack.replica.client import ControlError, request

    try:
        return request(args.socket, verb, **fields)
    except ControlError as err:
        print(f"hastack replica {verb}: {err}", file=sys.stderr)
        return None


def run_daemon_verb(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"resource": args.resource}
    if args.verb in ("attach", "detach") and "/" in args.resource:
        resource, _, vol = args.resource.partition("/")
        if not vol.isdigit():
            print(
                f"hastack replica {args.verb}: {args.resource}: RES/VOL needs a volume number",
                file=sys.stderr,
            )
            return 1
        fields = {"resource": resource, "volume": int(vol)}
    for name in ("force", "discard_my_data", "clear_bitmap"):
        if getattr(args, name, False):
            fields[name] = True
    result = _ask(args, args.verb, **fields)
    return 1 if result is None else 0


def run_resize(args: argparse.Namespace) -> int:
    from hastack.replica.resize import ResizeError, parse_size

    resource, _, vol = args.resource.partition("/")
    fields: dict[str, Any] = {"resource": resource}
    if vol:
        if not vol.isdigit():
            print(
                f"hastack replica resize: {args.resource}: RES/VOL needs a volume number",
                file=sys.stderr,
            )
            return 1
        fields["volume"] = int(vol)
    if args.size is not None:
        try:
            fields["size"] = parse_size(args.size)
        except ResizeError as err:
            print(f"hastack replica resize: --size: {err}", file=sys.stderr)
            return 1
    for name in ("assume_peer_has_space", "assume_clean"):
        if getattr(args, name):
            fields[name] = True
    result = _ask(args, "resize", **fields)
    if result is None:
        return 1
    for line in result.get("messages", []):
        print(line)
    return 0


def run_adjust(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"resource": args.resource, "dry_run": args.dry_run}
    if args.config:
        conf = _load(args.config)  # a file with an error: said here, nothing sent
        if conf is None:
            print("hastack replica adjust: nothing adjusted", file=sys.stderr)
            return 1
        fields["config"] = os.path.abspath(args.config)
    result = _ask(args, "adjust", **fields)
    if result is None:
        return 1
    for line in result.get("messages", []):
        print(line)
    if args.dry_run:
        print("(dry run: nothing changed)")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from hastack.replica import status_view

    while True:
        result = _ask(args, "status", resource=args.resource)
        if result is None:
            return 1
        if args.json:
            print(json.dumps(status_view.json_status(result), indent=2))
        elif args.proc:
            print(status_view.proc_drbd(result, _version_line()), end="")
        else:
            text = status_view.status_text(result)
            if args.watch:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(text, end="" if text.endswith("\n") else "\n")
        if not args.watch:
            return 0
        try:
            import time

            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def _version_line() -> str:
    from hastack import __version__

    return f"version: 8.4 (hastack {__version__}, api:1/proto:86-101)"


def run_state_line(args: argparse.Namespace) -> int:
    from hastack.replica import status_view

    result = _ask(args, "status", resource=args.resource)
    if result is None:
        return 1
    render = {
        "role": status_view.role_line,
        "cstate": status_view.cstate_line,
        "dstate": status_view.dstate_line,
    }[args.line]
    for res in result:
        print(render(res))
    return 0


def _resources(conf: Any, name: str) -> list[Any]:
    if name == "all":
        return list(conf.resources)
    try:
        return [conf.resource(name)]
    except KeyError:
        known = ", ".join(r.name for r in conf.resources) or "none"
        print(
            f"hastack replica: no resource {name!r} in {conf.file} (known: {known})",
            file=sys.stderr,
        )
        return []


def run_create_md(args: argparse.Namespace) -> int:
    from hastack.replica.backing import BackingError, create_metadata, has_metadata
    from hastack.replica.config import ConfigError, select_host

    conf = _load(args.config)
    if conf is None:
        return 1
    resources = _resources(conf, args.resource)
    if not resources:
        return 1
    rc = 0
    for res in resources:
        try:
            host, peer = select_host(conf, res, args.node)
        except ConfigError as err:
            print(f"hastack replica create-md: {err}", file=sys.stderr)
            rc = 1
            continue
        peer_name = peer.names[0] if peer.names else peer.address.host
        for volume in host.volumes:
            where = f"{res.name}/{volume.number} ({volume.disk})"
            if volume.disk is None:
                print(f"{where}: diskless, no meta-data")
                continue
            try:
                if has_metadata(volume.disk, volume.meta_disk) and not args.force:
                    print(
                        f"hastack replica create-md: {where} already has meta-data; "
                        "--force overwrites it (and forgets which blocks are out of sync)",
                        file=sys.stderr,
                    )
                    rc = 1
                    continue
                layout = create_metadata(
                    volume.disk,
                    volume.meta_disk,
                    al_extents=res.volume_disk(volume).al_extents,
                    rng=random.SystemRandom(),
                    node_name=args.node,
                    peer_name=peer_name,
                    size_sectors=res.volume_disk(volume).size,
                )
            except (BackingError, ValueError) as err:
                print(f"hastack replica create-md: {where}: {err}", file=sys.stderr)
                rc = 1
                continue
            print(
                f"{where}: new meta-data ({layout.kind}, {layout.md_sectors} sectors); "
                f"{layout.data_sectors * 512 // 1024} KiB of data"
            )
    return rc


def run_dump(args: argparse.Namespace) -> int:
    from hastack.replica.dump import dump

    conf = _load(args.config)
    if conf is None:
        return 1
    if args.resource != "all":
        resources = _resources(conf, args.resource)
        if not resources:
            return 1
        from dataclasses import replace

        conf = replace(conf, resources=tuple(resources))
    print(dump(conf), end="")
    return 0


def run_dump_md(args: argparse.Namespace) -> int:
    from hastack.replica.backing import BackingError, read_metadata
    from hastack.replica.config import ConfigError, select_host

    conf = _load(args.config)
    if conf is None:
        return 1
    resources = _resources(conf, args.resource)
    if not resources:
        return 1
    try:
        host, _ = select_host(conf, resources[0], args.node)
    except ConfigError as err:
        print(f"hastack replica dump-md: {err}", file=sys.stderr)
        return 1
    rc = 0
    for volume in host.volumes:
        if volume.disk is None:
            continue
        try:
            md = read_metadata(volume.disk, volume.meta_disk)
        except BackingError as err:
            print(f"hastack replica dump-md: {err}", file=sys.stderr)
            rc = 1
            continue
        sb = md.superblock
        gens = sb.generations
        print(f"volume {volume.number} ({volume.disk}, meta-data {md.layout.kind}):")
        print(f"  current {gens.current:016X}  bitmap {gens.bitmap:016X}")
        print(f"  history {gens.history[0]:016X} {gens.history[1]:016X}")
        flags = ", ".join(f.name or "" for f in type(sb.flags) if f in sb.flags) or "none"
        print(f"  flags {flags}")
        print(f"  la-size-sect {sb.data_sectors}  al-extents {sb.al_extents}")
        print(
            f"  bitmap: {md.bitmap.count()} of {md.bitmap.nbits} blocks out of sync "
            f"({md.bitmap.out_of_sync_kib()} KiB)"
        )
    return rc


def run_resolve(args: argparse.Namespace) -> int:
    result = _ask(args, "status", resource=args.resource)
    if result is None:
        return 1
    (res,) = result
    me, peer = res["node"], res["peer"]
    if args.keep not in (me, peer):
        print(
            f"hastack replica resolve: --keep {args.keep}: must be {me} or {peer}",
            file=sys.stderr,
        )
        return 1
    mine = sum(int(v.get("oos", 0)) for v in res["volumes"]) // 4
    peer_changed = [v.get("peer_changed_blocks") for v in res["volumes"]]
    theirs = sum(int(n) for n in peer_changed) if all(n is not None for n in peer_changed) else None
    print(f"{res['name']}: {me} is {res['role']}, {res['cstate']}")
    print(f"  {me} changed {mine} blocks ({mine * 4} KiB) since the split")
    if theirs is not None:
        print(f"  {peer} changed {theirs} blocks ({theirs * 4} KiB) since the split")
    else:
        print(f"  {peer}'s changes: run `hastack replica resolve --dry-run` there to see them")
    discard = peer if args.keep == me else me
    print(f"  keep {args.keep}; discard the changes of {discard}")
    if args.keep == me:
        steps = [("connect", {})]
        print(
            f"  here ({me}): connect; on {peer}: hastack replica resolve {res['name']} --keep {me}"
        )
    else:
        steps = [("secondary", {}), ("connect", {"discard_my_data": True})]
        print(
            f"  here ({me}): secondary, then connect --discard-my-data (this node's changes "
            "are overwritten by a resync from the peer)"
        )
    if args.dry_run:
        print("  (dry run: nothing done)")
        return 0
    if res["cstate"] not in ("StandAlone", "Connecting"):
        print(
            f"hastack replica resolve: {res['name']} is {res['cstate']}, not split", file=sys.stderr
        )
        return 1
    if args.keep != me:
        _ask(args, "disconnect", resource=args.resource)
    for verb, fields in steps:
        if _ask(args, verb, resource=args.resource, **fields) is None:
            return 1
    return 0
