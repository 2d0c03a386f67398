"""Convert an original ChromDragoNN stage-2 checkpoint into this package's weights format.

    python -m chromdragonn.convert ORIGINAL_CHECKPOINT OUT_DIR [--genes GENES_FILE] [--half]

writes ``OUT_DIR/model.with_mean.pt`` (or ``model.no_mean.pt``) through
:func:`chromdragonn.nn.weights.save_weights` and ``OUT_DIR/gene_panel.tsv``, and
prints the md5 and what it wrote.  The checkpoint is read through the
allow-list unpickler of :mod:`chromdragonn.nn.original`.

The gene order is not stored in an original checkpoint: it is the order of the
``genes`` list of the RNA joblib the model was trained with.  ``--genes`` takes
that joblib (read through a restricted unpickler: only numpy arrays, lists and
dicts) or a text file with one gene per line.  Without it, the genes are named
``gene_0001`` ... and a warning says so.
"""
from __future__ import annotations

import argparse
import gzip
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.outputs.atomic import atomic_outputs

log = logging.getLogger(__name__)

JOBLIB_SUFFIXES = (".joblib", ".jl", ".jbl", ".pkl", ".pickle")
MISSING_ENSEMBL_ID = "."
UNKNOWN_FILL = 0.0  # arcsinh(TPM) used for a panel gene that a user's table lacks, when nothing better is known


# --- gene lists --------------------------------------------------------------

def _restricted_joblib_globals() -> dict:
    from joblib.numpy_pickle import NumpyArrayWrapper

    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed = {
        "joblib.numpy_pickle.NumpyArrayWrapper": NumpyArrayWrapper,
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{module}._reconstruct"] = multiarray._reconstruct
        allowed[f"{module}.scalar"] = multiarray.scalar
    return allowed


def _load_joblib_restricted(path: Path):
    """joblib.load through an unpickler that only builds numpy arrays, dtypes and builtins containers."""
    from joblib.numpy_pickle import NumpyUnpickler
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    allowed = _restricted_joblib_globals()

    class RestrictedUnpickler(NumpyUnpickler):
        # joblib routes the nested pickle of object arrays through this find_class too.
        def find_class(self, module, name):
            full = f"{module}.{name}"
            if full in allowed:
                return allowed[full]
            raise pickle.UnpicklingError(f"global {full} is not on the allow-list")

    with open(path, "rb") as fh:
        with _validate_fileobject_and_memmap(fh, str(path), None) as (fobj, _):
            if isinstance(fobj, str):
                raise ChromDragoNNError(f"{path}: joblib file from joblib < 0.10 (arrays in companion files); "
                                        "give the gene list as a text file, one gene per line")
            return RestrictedUnpickler(str(path), fobj, True).load()


def _genes_from_object(obj, path: Path) -> list[str]:
    if isinstance(obj, dict):
        if "genes" not in obj:
            raise ChromDragoNNError(f"{path}: the joblib holds a dict without a 'genes' entry "
                                    f"(keys: {', '.join(map(str, obj))})")
        obj = obj["genes"]
    if isinstance(obj, np.ndarray) and obj.ndim == 1:
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)) and all(isinstance(g, (str, np.str_)) for g in obj):
        return [str(g) for g in obj]
    raise ChromDragoNNError(f"{path}: the joblib's genes are a {type(obj).__name__}, not a list of names; "
                            "give the gene list as a text file, one gene per line")


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(2)
    if len(head) < 2:
        return False
    # pickle protocol >= 2; joblib's zlib stream (a valid zlib header, so a text
    # line starting with "x" is not taken for one); gzip unless named .gz
    zlib_header = head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0
    return head[:1] == b"\x80" or zlib_header or (head == b"\x1f\x8b" and path.suffix != ".gz")


def read_gene_list(path: str | os.PathLike) -> list[str]:
    """The ordered gene list: an RNA joblib (its ``genes``) or a text file, one gene per line.

    Text: blank lines and lines starting with ``#`` are skipped; a line with
    whitespace inside, or a repeated gene, is an error naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"gene list not found: {path}")
    if path.suffix.lower() in JOBLIB_SUFFIXES or _looks_like_pickle(path):
        try:
            obj = _load_joblib_restricted(path)
        except ChromDragoNNError:
            raise
        except pickle.UnpicklingError as exc:
            raise ChromDragoNNError(f"{path}: refused by the restricted unpickler: {exc}") from None
        except Exception as exc:  # truncated, not a joblib, ...
            raise ChromDragoNNError(f"{path}: cannot read as a joblib file: {type(exc).__name__}: {exc}") from None
        genes = _genes_from_object(obj, path)
        where = {}
        for i, g in enumerate(genes, start=1):
            if g in where:
                raise ChromDragoNNError(f"{path}: gene {g} appears twice (entries {where[g]} and {i})")
            where[g] = i
        return genes
    opener = gzip.open if path.suffix == ".gz" else open
    genes: list[str] = []
    seen: dict[str, int] = {}
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                name = line.strip()
                if not name or name.startswith("#"):
                    continue
                if len(name.split()) != 1:
                    raise ChromDragoNNError(f"{path}:{lineno}: expected one gene name per line, got {name!r}")
                if name in seen:
                    raise ChromDragoNNError(f"{path}:{lineno}: gene {name} already listed on line {seen[name]}")
                seen[name] = lineno
                genes.append(name)
    except UnicodeDecodeError:
        raise ChromDragoNNError(f"{path}: not a text file of gene names (and not a joblib)") from None
    if not genes:
        raise ChromDragoNNError(f"{path}: no gene names in the file")
    return genes


def placeholder_genes(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"gene_{i:0{width}d}" for i in range(1, n + 1)]


def panel_rows(genes: Sequence[str], known_panel: str | os.PathLike | None = paths.GENE_PANEL):
    """(symbols, ensembl_ids, fill values) for a gene panel TSV.

    A gene found in ``known_panel`` (the shipped panel, by symbol or Ensembl
    ID) takes its Ensembl ID and fill value from there.  Otherwise an
    ``ENSG...`` name is its own Ensembl ID, other names get ``.``, and the fill
    value is 0.0.  Returns (symbols, ids, fills, n_known).
    """
    lookup: dict[str, tuple[str, str, float]] = {}
    if known_panel is not None and Path(known_panel).is_file():
        from chromdragonn.inputs.expression import read_gene_panel

        df = read_gene_panel(known_panel)
        for sym, ens, fill in df.itertuples(index=False):
            for key in (sym, ens.split(".")[0] if isinstance(ens, str) else None):
                if isinstance(key, str) and key:
                    lookup.setdefault(key, (sym, ens, float(fill)))
    symbols, ids, fills, n_known = [], [], [], 0
    for g in genes:
        hit = lookup.get(g) or lookup.get(g.split(".")[0])
        if hit is not None:
            sym, ens, fill = hit
            symbols.append(sym)
            ids.append(ens if isinstance(ens, str) and ens else MISSING_ENSEMBL_ID)
            fills.append(fill)
            n_known += 1
        else:
            symbols.append(g)
            ids.append(g.split(".")[0] if g.startswith("ENSG") else MISSING_ENSEMBL_ID)
            fills.append(UNKNOWN_FILL)
    return symbols, ids, fills, n_known


# --- conversion --------------------------------------------------------------

def convert_checkpoint(original: str | os.PathLike, out_dir: str | os.PathLike,
                       genes_file: str | os.PathLike | None = None, half: bool = False,
                       with_mean: bool | None = None) -> dict:
    """Convert ``original`` into ``out_dir``; return {"weights", "md5", "gene_panel", "config", ...}.

    Everything is read and checked before anything is written; each output is
    written to ``<name>.partial`` and renamed.
    """
    from chromdragonn.inputs.expression import write_gene_panel
    from chromdragonn.nn.original import load_original_model
    from chromdragonn.nn.weights import save_weights

    model, _args, info = load_original_model(original, with_mean=with_mean)
    n = model.n_genes
    if genes_file is not None:
        genes = read_gene_list(genes_file)
        if len(genes) != n:
            raise ChromDragoNNError(f"{genes_file}: {len(genes)} genes listed, but {original} takes {n} expression inputs")
        placeholder = False
    else:
        genes = placeholder_genes(n)
        placeholder = True
        log.warning("no --genes given: the %d expression inputs are named %s..%s; the original gene order "
                    "is the 'genes' list of the RNA joblib the model was trained with", n, genes[0], genes[-1])
    symbols, ids, fills, n_known = panel_rows(genes)

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ChromDragoNNError(f"output directory {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"model.{'with_mean' if model.with_mean else 'no_mean'}.pt"
    panel_path = out_dir / "gene_panel.tsv"
    # Both files are written under temporary names and renamed together at the
    # end, so a failure leaves neither a half-written file nor a weights file
    # without its panel.
    with atomic_outputs(weights_path, panel_path) as (tmp_weights, tmp_panel):
        md5 = save_weights(model, tmp_weights, genes, half=half)
        write_gene_panel(tmp_panel, symbols, ids, fills)
    return {"weights": weights_path, "md5": md5, "gene_panel": panel_path, "config": model.config,
            "n_genes": n, "n_known_genes": n_known, "placeholder_genes": placeholder, "half": half,
            "checkpoint_info": info}


def _report(result: dict, original) -> str:
    cfg = result["config"]
    lines = [
        f"read {original}: n_genes={cfg.n_genes} with_mean={cfg.with_mean} dropout={cfg.dropout}"
        + "".join(f" {k}={result['checkpoint_info'][k]}" for k in ("epoch", "acc")
                  if k in result["checkpoint_info"]),
        f"wrote {result['weights']} ({'float16' if result['half'] else 'float32'} tensors)",
        f"md5 {result['md5']}  {result['weights'].name}",
        f"wrote {result['gene_panel']} ({result['n_genes']} genes"
        + (", placeholder names" if result["placeholder_genes"] else "")
        + f"; {result['n_known_genes']} with Ensembl ID and fill value from the shipped panel, "
        f"{result['n_genes'] - result['n_known_genes']} with fill_arcsinh_tpm {UNKNOWN_FILL})",
    ]
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="python -m chromdragonn.convert",
        description="Convert an original ChromDragoNN stage-2 checkpoint (model_best.pth.tar) into "
                    "weights this package loads. The checkpoint is read through an allow-list unpickler.")
    parser.add_argument("original", metavar="ORIGINAL_CHECKPOINT", help="original model_best.pth.tar")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory for model.<with_mean|no_mean>.pt and gene_panel.tsv")
    parser.add_argument("--genes", metavar="GENES_FILE",
                        help="the ordered gene list of the model: the original RNA joblib (its 'genes') "
                             "or a text file, one gene per line (default: placeholder names gene_0001..)")
    parser.add_argument("--half", action="store_true", help="store tensors as float16 (half the size)")
    mean = parser.add_mutually_exclusive_group()
    mean.add_argument("--with-mean", dest="with_mean", action="store_const", const=True, default=None,
                      help="the checkpoint has the mean-accessibility input (only needed when its args do not say)")
    mean.add_argument("--no-mean", dest="with_mean", action="store_const", const=False,
                      help="the checkpoint has no mean-accessibility input (only needed when its args do not say)")
    return parser


def run(args: argparse.Namespace) -> int:
    result = convert_checkpoint(args.original, args.out_dir, genes_file=args.genes, half=args.half,
                                with_mean=args.with_mean)
    print(_report(result, args.original))
    return 0


def add_cli(subparsers, common=None) -> None:
    """Register ``chromdragonn convert`` (same arguments as ``python -m chromdragonn.convert``)."""
    parser = subparsers.add_parser("convert", help="convert an original ChromDragoNN checkpoint")
    build_parser(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    from chromdragonn.cli import run_command, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
