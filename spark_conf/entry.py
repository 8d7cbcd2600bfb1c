"""The ``wj`` command: assembles each package's subcommands, importing them lazily.

It lives in the top layer because it knows every package; each package defines its own
subcommands in its own ``cli.py``. Nothing here imports pyspark, so ``wj scan`` never loads
Spark.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import sys

# Packages contributing subcommands, bottom layer first.
_CLI_MODULES = ("wjio.cli", "executor.cli", "checkpoint.cli", "spark_conf.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wj",
        description="wjio: fast, unkillable Spark on object stores.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _CLI_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from wjio.errors import WjioError

    # At exit the interpreter collects every object once more before it tears down: ~0.3 s
    # after a query (of a ~1.7 s ``wj resume``), for objects that die with the process anyway.
    # Frozen at exit, they are left out of that collection. Registered once per process.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        return args.func(args) or 0
    except WjioError as e:
        print(f"wj {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wj {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
