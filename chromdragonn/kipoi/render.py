"""The Kipoi definition files (model.yaml, dataloader.yaml) and small Kipoi compatibility fixes.

The root ``model.yaml`` and ``dataloader.yaml`` are generated here, so the
weights list, their md5s, the gene-panel size and the mean-input switch can
never disagree with the files they describe::

    python -m chromdragonn.kipoi.render [--out-dir .] WEIGHTS.pt [WEIGHTS.pt ...]

``write_model_dir`` builds a complete, self-contained Kipoi model folder (the
training export and the tests use it).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Sequence

import yaml

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW
from chromdragonn.outputs.atomic import PARTIAL_SUFFIX, atomic_output
from chromdragonn.scores import kipoi_veff_scoring_functions

logger = logging.getLogger(__name__)

DOI = "10.1093/bioinformatics/btz352"
AUTHORS = ["Surag Nair", "Daniel S. Kim", "Jacob Perricone", "Anshul Kundaje"]
# What model.py and dataloader.py import (directly or through chromdragonn); pins come from requirements.txt.
MODEL_PACKAGES = ["torch", "numpy", "pandas", "PyYAML", "kipoi", "kipoiseq", "pyfaidx", "biopython",
                  "pyBigWig", "h5py"]
DEFAULT_TRAINED_ON = (
    "Simulated accessibility labels (a documented, seeded generative rule: real JASPAR motif matches weighted "
    "by real TF expression, plus, in benchmark v2, a smooth field along the chromosome shared by all contexts; "
    "see training/REPORT.md) over 200 bp bins of the real hg19 "
    "chr22 slice 16.05-22 Mb, with the real RNA-seq (arcsinh TPM) of the 56 Roadmap Epigenomics "
    "epigenomes; five folds of held-out contexts. Not trained on measured DNase-seq.")
ROOT_FILES = ["model.py", "dataloader.py"]

SEQ_DOC = "One-hot DNA (A, C, G, T; N is all zeros), 1,000 bp centred on the interval (hg19)."
EXPRESSION_DOC = ("arcsinh(TPM) of the gene-panel TFs (weights/gene_panel.tsv, in that order), one row per "
                  "requested cell context, in the order of cell_types.")
MEAN_DOC = ("Mean accessibility of the central 200 bp bin over the training contexts (from the "
            "mean_bigwig track).")
TARGET_DOC = "P(accessible) of the interval's central 200 bp bin in each requested context, in the order of cell_types."


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def _dump(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100, default_flow_style=False)


def pip_pins(names: Sequence[str] = MODEL_PACKAGES,
             requirements: str | os.PathLike = paths.REPO_ROOT / "requirements.txt") -> list[str]:
    """``name==version`` for each package: the pin in requirements.txt, else the installed version."""
    pins: dict[str, str] = {}
    req = Path(requirements)
    if req.is_file():
        for line in req.read_text().splitlines():
            m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
            if m:
                pins[m.group(1).lower()] = f"{m.group(1)}=={m.group(2)}"
    out = []
    for name in names:
        if name.lower() in pins:
            out.append(pins[name.lower()])
            continue
        try:
            out.append(f"{name}=={importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            out.append(name)
    return out


def render_model_yaml(weights: list[str], md5s: list[str], n_genes: int, with_mean: bool, title: str,
                      description_extra: str = "", *, trained_on: str = DEFAULT_TRAINED_ON,
                      gene_panel: str = "weights/gene_panel.tsv") -> str:
    """The text of a self-documenting model.yaml; weights and gene_panel are relative to the model folder."""
    if len(weights) != len(md5s) or not weights:
        raise ChromDragoNNError(f"{len(weights)} weights files but {len(md5s)} md5s")
    ensemble = len(weights) > 1
    doc = (
        f"{title}\n\n"
        "ChromDragoNN (Nair et al., Bioinformatics 2019) predicts whether a 200 bp bin of DNA is accessible "
        "(a DNase-seq peak) in a cell context that the model describes only by the expression of "
        f"{n_genes:,} transcription factors (arcsinh TPM), so it predicts for cell types it was never trained "
        "on. A ResNet reads 1,000 bp of sequence centred on the bin; its 4,200 features are joined with the "
        "TF expression" + (" and the bin's mean accessibility across the training contexts" if with_mean else "")
        + " and passed through two fully connected layers.\n\n"
        "Inputs per interval: seq (1000, 4); expression (C, G): one row per requested context"
        + ("; mean_acc (1,)" if with_mean else "") + ". Output per interval: C probabilities, one per "
        "context, in the order the contexts were requested (dataloader argument cell_types). The sequence "
        "trunk runs once per interval whatever C is.\n\n"
        + (f"The prediction is the mean of the probabilities of {len(weights)} fold models.\n\n" if ensemble else "")
        + "Contexts: the 56 Roadmap Epigenomics epigenomes of weights/roadmap_expression_tpm.tsv.gz "
        "(e.g. E003 H1, E116 GM12878, E123 K562), or any context of the user's own RNA-seq table "
        "(dataloader argument expression_file, genes x contexts, TPM or RPKM, genes by symbol or Ensembl ID)."
    )
    if description_extra:
        doc += "\n\n" + description_extra.strip()
    inputs = {
        "seq": {"shape": f"({WINDOW}, 4)", "special_type": "DNASeq", "doc": SEQ_DOC,
                "associated_metadata": "ranges"},
        "expression": {"shape": f"(None, {n_genes})", "doc": EXPRESSION_DOC},
    }
    if with_mean:
        inputs["mean_acc"] = {"shape": "(1,)", "doc": MEAN_DOC}
    model = {
        # kipoi 0.8.6 imports the model class with load_obj("module.Class"); the "file.py::Class"
        # form is understood for dataloaders only.
        "defined_as": "model.ChromDragoNNModel",
        "args": {
            "weights": list(weights),
            "md5s": list(md5s),
            "gene_panel": gene_panel,
            "n_genes": int(n_genes),
            "with_mean": bool(with_mean),
        },
        "default_dataloader": ".",
        "info": {
            "authors": [{"name": a} for a in AUTHORS],
            "doc": doc,
            "cite_as": f"https://doi.org/{DOI}",
            "trained_on": trained_on,
            "training_procedure": (
                "Stage 1: multi-task sequence-only ResNet over the training contexts. Stage 2: the multi-modal "
                "model initialised from stage 1, trunk tuned, 1 positive : 3 negatives per batch; checkpoint by "
                "validation AUPRC (see training/)."),
            "license": "MIT",
            "version": "0.1.0",
            "tags": ["DNA accessibility", "DNase-seq", "cell-type specific", "RNA-seq"],
        },
        "schema": {
            "inputs": inputs,
            "targets": {"name": "accessibility", "shape": "(None,)", "doc": TARGET_DOC},
        },
        "postprocessing": {"variant_effects": {
            "seq_input": ["seq"],
            # kipoi_veff's scores on P(accessible), from the package's score registry.
            "scoring_functions": kipoi_veff_scoring_functions(),
        }},
        "dependencies": {"pip": pip_pins()},
        "test": {"precision_decimal": 5},
    }
    header = ("# Generated by chromdragonn.kipoi.render.render_model_yaml; regenerate rather than edit:\n"
              "#   python -m chromdragonn.kipoi.render WEIGHTS.pt [...]\n")
    return header + _dump(model)


def render_dataloader_yaml(n_genes: int, with_mean: bool = True, example_dir: str = "example") -> str:
    """The text of dataloader.yaml (``defined_as: dataloader.py::ChromDragoNNDataset``); ``example_dir``:
    where the example inputs are, relative to the model folder."""
    outputs = {
        "seq": {"shape": f"({WINDOW}, 4)", "special_type": "DNASeq", "doc": SEQ_DOC,
                "associated_metadata": "ranges"},
        "expression": {"shape": f"(None, {n_genes})", "doc": EXPRESSION_DOC},
    }
    if with_mean:
        outputs["mean_acc"] = {"shape": "(1,)", "doc": MEAN_DOC + " Present when a mean_bigwig is given or shipped."}
    dl = {
        "type": "Dataset",
        "defined_as": "dataloader.py::ChromDragoNNDataset",
        "args": {
            "intervals_file": {
                "doc": ("BED file (plain or gzipped; chrom, start, end, optional name). Any width: each interval "
                        "is resized to 1,000 bp around its centre (kipoiseq Interval.resize). The name column, "
                        "or chrom:start-end, becomes the id in metadata/ranges. chr22 and 22 are the same "
                        "chromosome."),
                "example": f"{example_dir}/intervals.bed",
            },
            "fasta_file": {
                "doc": ("hg19 FASTA, plain or bgzipped (plain gzip is refused: bgzip it). The .fai (and .gzi) "
                        "index is built beside it when missing. Bases past a chromosome end are N."),
                "example": f"{example_dir}/hg19_chr22_1-22000000.fa.gz",
            },
            "cell_types": {
                "doc": ("Cell contexts to predict in: a list, or a comma-separated string, of names from the "
                        "shipped Roadmap table (E003 ... E128) or from expression_file. One output per context, "
                        "in this order."),
                "example": "E003,E116,E123,my_H1_sample",
            },
            "expression_file": {
                "doc": ("Optional RNA-seq table, genes x contexts (TSV or CSV, optionally gzipped): first column "
                        "gene symbol or Ensembl ID (version suffix ignored), then one column per context. Its "
                        "contexts are added to (or replace same-named) shipped ones. Panel TFs missing from it "
                        "are filled with the panel's fill_arcsinh_tpm (median over the 56 Roadmap epigenomes) "
                        "and counted in a warning."),
                "optional": True,
                "example": f"{example_dir}/user_rnaseq_tpm.tsv",
            },
            "expression_units": {
                "doc": "Units of expression_file: tpm (default) or rpkm (converted to TPM per context over all its genes).",
                "optional": True,
                "default": "tpm",
            },
            "mean_bigwig": {
                "doc": ("bigWig of mean accessibility across the training contexts, for models with the mean "
                        "input; the value is the mean over the window's central 200 bp (no data = 0). Default: "
                        "weights/mean_accessibility_chr22.bw when it exists."),
                "optional": True,
            },
            "gene_panel": {
                "doc": "Ordered TF panel of the weights (gene_symbol, ensembl_id, fill_arcsinh_tpm). Default: weights/gene_panel.tsv.",
                "optional": True,
            },
        },
        "info": {
            "authors": [{"name": "chromdragonn contributors"}],
            "doc": ("Reads BED intervals, cuts 1,000 bp of one-hot hg19 sequence around each, and attaches the TF "
                    "expression (arcsinh TPM, gene-panel order) of every requested cell context and, when a "
                    "track is available, the mean accessibility of the central 200 bp."),
            "license": "MIT",
        },
        "output_schema": {
            "inputs": outputs,
            "metadata": {
                "ranges": {"type": "GenomicRanges",
                           "doc": "The 1,000 bp window (0-based start, end; chrom as in the BED; id = BED name)."},
                "cell_types": {"type": "str", "doc": "The requested contexts, comma-joined, in output order."},
            },
        },
        "postprocessing": {"variant_effects": {"bed_input": ["intervals_file"]}},
        "dependencies": {"pip": pip_pins()},
    }
    header = ("# Generated by chromdragonn.kipoi.render.render_dataloader_yaml; regenerate rather than edit:\n"
              "#   python -m chromdragonn.kipoi.render WEIGHTS.pt [...]\n")
    return header + _dump(dl)


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_model_dir(out_dir: str | os.PathLike, weight_files: Sequence[str | os.PathLike], title: str,
                    description_extra: str = "", *, gene_panel: str | os.PathLike = paths.GENE_PANEL,
                    extra_files: Sequence[str | os.PathLike] = (), trained_on: str = DEFAULT_TRAINED_ON,
                    copy_example: bool = True, share_gene_panel: bool = False) -> Path:
    """A self-contained Kipoi model folder: model.py, dataloader.py, both yaml files, weights/.

    Weights files are copied to ``out_dir/weights/`` (unless already there), with the
    gene panel and ``extra_files`` (e.g. the shipped expression table, a mean bigWig);
    n_genes and with_mean are read from the weights, md5s computed.  With
    ``copy_example``, example/ is copied too, so ``kipoi test`` finds the example files.
    ``share_gene_panel``: a folder inside the repository (a named model under weights/)
    declares the repository's gene panel by a relative path instead of copying it, and its
    dataloader.yaml names the repository's example/ files.
    """
    from chromdragonn.nn.weights import load_model, md5sum

    out = Path(out_dir)
    wdir = out / "weights"
    wdir.mkdir(parents=True, exist_ok=True)
    for name in ROOT_FILES:
        if (out / name).resolve() != (paths.REPO_ROOT / name).resolve():
            shutil.copyfile(paths.REPO_ROOT / name, out / name)
    panel_ref = f"weights/{Path(gene_panel).name}"
    example_dir = "example"
    if share_gene_panel:
        panel_ref = os.path.relpath(Path(gene_panel).resolve(), out.resolve())
        example_dir = os.path.relpath(paths.EXAMPLE_DIR.resolve(), out.resolve())
    for f in ([] if share_gene_panel else [gene_panel]) + list(extra_files):
        f = Path(f)
        if (wdir / f.name).resolve() != f.resolve():
            shutil.copyfile(f, wdir / f.name)
    if copy_example and out.resolve() != paths.REPO_ROOT.resolve():
        (out / "example").mkdir(exist_ok=True)
        for f in sorted(paths.EXAMPLE_DIR.iterdir()):
            if f.is_file() and not f.name.endswith((".fai", ".gzi", PARTIAL_SUFFIX)):
                shutil.copyfile(f, out / "example" / f.name)
    rel, md5s, configs = [], [], set()
    for w in weight_files:
        w = Path(w)
        target = wdir / w.name
        if target.resolve() != w.resolve():
            shutil.copyfile(w, target)
        model, _ = load_model(target)
        configs.add((model.n_genes, model.with_mean))
        rel.append(f"weights/{w.name}")
        md5s.append(md5sum(target))
    if len(configs) != 1:
        raise ChromDragoNNError(f"weights files differ in gene count or mean input: {sorted(configs)}")
    n_genes, with_mean = configs.pop()
    _write_text(out / "model.yaml", render_model_yaml(rel, md5s, n_genes, with_mean, title, description_extra,
                                                      trained_on=trained_on, gene_panel=panel_ref))
    _write_text(out / "dataloader.yaml", render_dataloader_yaml(n_genes, with_mean, example_dir))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chromdragonn.kipoi.render",
                                     description="Write model.yaml and dataloader.yaml for weights files.")
    parser.add_argument("weights", nargs="+", help="weights files, relative to --out-dir (e.g. weights/fold0.with_mean.pt)")
    parser.add_argument("--out-dir", default=str(paths.REPO_ROOT), help="model folder (default: the repository root)")
    parser.add_argument("--title", default="ChromDragoNN: chromatin accessibility from DNA sequence and TF expression")
    parser.add_argument("--n-genes", type=int, help="when the weights files do not exist yet")
    parser.add_argument("--with-mean", choices=["yes", "no"], help="when the weights files do not exist yet")
    parser.add_argument("--md5", nargs="*", help="when the weights files do not exist yet (placeholders)")
    parser.add_argument("--description-extra", default="", help="a paragraph appended to info.doc")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    try:
        from chromdragonn.nn.weights import load_model, md5sum

        if all((out / w).is_file() for w in args.weights):
            loaded = [load_model(out / w)[0] for w in args.weights]
            n_genes, with_mean = loaded[0].n_genes, loaded[0].with_mean
            md5s = [md5sum(out / w) for w in args.weights]
        else:
            missing = [w for w in args.weights if not (out / w).is_file()]
            if args.n_genes is None or args.with_mean is None or not args.md5 or len(args.md5) != len(args.weights):
                raise ChromDragoNNError(
                    f"weights file(s) {', '.join(missing)} not found under {out}; to render for files that do "
                    "not exist yet give --n-genes, --with-mean and one --md5 per file")
            n_genes, with_mean, md5s = args.n_genes, args.with_mean == "yes", args.md5
        _write_text(out / "model.yaml", render_model_yaml(args.weights, md5s, n_genes, with_mean, args.title,
                                                                  args.description_extra))
        _write_text(out / "dataloader.yaml", render_dataloader_yaml(n_genes, with_mean))
    except ChromDragoNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'model.yaml'} and {out / 'dataloader.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
