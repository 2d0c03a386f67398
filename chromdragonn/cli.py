"""The ``chromdragonn`` command: every subcommand, one shared option set, one error rule.

Each subcommand lives in the module that does its work (listed in :data:`SUBCOMMAND_MODULES`);
that module exposes ``add_cli(subparsers, common)``, which registers the subcommand (taking
``common``, the shared model-input options, as a parent parser where it needs them) and sets
``func`` (a callable taking the parsed args and returning an exit status).  A new command is one
new module and one entry in that list.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from chromdragonn.errors import ChromDragoNNError

SUBCOMMAND_MODULES = ["chromdragonn.predict", "chromdragonn.variants", "chromdragonn.ism", "chromdragonn.track",
                      "chromdragonn.atlas", "chromdragonn.attribute", "chromdragonn.tf_drivers", "chromdragonn.learned_motifs",
                      "chromdragonn.convert"]


def common_options() -> argparse.ArgumentParser:
    """The options every prediction command shares: sequence, contexts, RNA-seq, model, mean track, device."""
    p = OneLineParser(add_help=False)
    p.add_argument("--fasta", required=True, help="hg19 FASTA, plain or bgzipped")
    p.add_argument("--contexts", required=True, help="comma-separated context names, e.g. E003,E116,E123")
    p.add_argument("--expression", default=None,
                   help="your own RNA-seq table (genes x contexts); its contexts can then be named")
    p.add_argument("--expression-units", default="tpm", choices=["tpm", "rpkm"],
                   help="units of --expression: tpm (default) or rpkm (converted to TPM over the table's genes)")
    p.add_argument("--model", "--weights", dest="model", nargs="+", default=None,
                   help="'ensemble' (default: the 5 folds of model.yaml), a shipped model's name "
                        "(encode_dnase_chr22: real DNase-seq, 4 contexts, 5.95 Mb of hg19 chr22), a fold number 0-4, "
                        "a Kipoi model folder, or weights file(s), several averaged (space- or comma-separated)")
    p.add_argument("--mean-bigwig", default=None,
                   help="mean-accessibility bigWig (default: the chosen model's own track, e.g. the shipped one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def model_option(args) -> str | None:
    """``--model`` as one string (its values comma-joined), or None for the default."""
    return ",".join(args.model) if args.model else None


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors on one ``error:`` line like every other error of the package."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="chromdragonn",
        description="Chromatin accessibility from DNA sequence and TF expression (ChromDragoNN).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = common_options()
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_cli(sub, common)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s: %(message)s")
    # kipoiseq registers its own Kipoi dataloader descriptions on import, and kipoi's
    # parser warns about their (valid) postprocessing fields; that is not the user's business.
    logging.getLogger("kipoi_utils.external.related.mixins").setLevel(logging.ERROR)


def run_command(func, args) -> int:
    """Run a subcommand; bad input becomes one ``error:`` line and exit status 2; SIGINT and SIGTERM
    end it with 130 and 143 after the outputs' clean-up has run (:mod:`chromdragonn.outputs.atomic`)."""
    from chromdragonn.outputs.atomic import Terminated, sigterm_raises

    try:
        with sigterm_raises():
            return int(func(args) or 0)
    except ChromDragoNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output written", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated (SIGTERM); no output written", file=sys.stderr)
        return 143


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
