"""`python -m hastack.quorum serve|status ...` is `hastack qserver serve|status ...` (usable
before the command is listed in hastack.cli.main)."""

from __future__ import annotations

import argparse
import sys

from hastack.cli.qserver_cmd import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hastack")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["qserver", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
