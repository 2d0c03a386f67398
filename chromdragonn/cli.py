"""The ``chromdragonn`` command.

Each subcommand lives in the module that does its work; that module exposes
``add_cli(subparsers)``, which registers the subcommand and sets ``func`` (a
callable taking the parsed args and returning an exit status).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from chromdragonn.errors import ChromDragoNNError

# module -> registers one or more subcommands
SUBCOMMAND_MODULES = ["chromdragonn.predict", "chromdragonn.variants", "chromdragonn.ism", "chromdragonn.convert"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chromdragonn",
        description="Chromatin accessibility from DNA sequence and TF expression (ChromDragoNN).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part of the package is not there yet
                continue
            raise
        module.add_cli(sub)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s: %(message)s")
    # kipoiseq registers its own Kipoi dataloader descriptions on import, and kipoi's
    # parser warns about their (valid) postprocessing fields; that is not the user's business.
    logging.getLogger("kipoi_utils.external.related.mixins").setLevel(logging.ERROR)


def run_command(func, args) -> int:
    """Run a subcommand; bad input becomes one ``error:`` line and exit status 2."""
    try:
        return int(func(args) or 0)
    except ChromDragoNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None, prepare=None) -> int:
    """Parse, set up logging, run the chosen subcommand (``prepare(args)`` first, if given)."""
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", False))
    if prepare is not None:
        prepare(args)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args.func, args)


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
