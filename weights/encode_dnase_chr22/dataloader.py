"""Kipoi dataloader for ChromDragoNN (``defined_as: dataloader.py::ChromDragoNNDataset``).

Thin on purpose: reading and checking the inputs is the package's (chromdragonn/inputs/),
the same code every ``chromdragonn`` command uses.
"""
import logging
import os
import sys

# kipoi executes this file without setting __file__, from inside the model folder.
_HERE = os.path.dirname(os.path.abspath(globals()["__file__"])) if "__file__" in globals() else os.getcwd()
try:
    import chromdragonn  # noqa: F401  (installed: pip install -e .)
except ImportError:  # a model folder used without installing the package beside it
    sys.path.insert(0, _HERE)

import numpy as np
from kipoi.data import Dataset
from kipoi.metadata import GenomicRanges

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.expression import parse_contexts
from chromdragonn.inputs.genome import Genome, MeanAccessibility, centered_window, one_hot, read_bed
from chromdragonn.inputs.session import expression_source
from chromdragonn.kipoi.compat import adapt_kipoi_cli, apply_kipoi_compat

apply_kipoi_compat()
adapt_kipoi_cli()
logger = logging.getLogger(__name__)


def _shipped(name, package_default):
    """A file shipped in this model folder's weights/, else the package's copy (None if neither exists)."""
    local = os.path.join(_HERE, "weights", name)
    if os.path.isfile(local):
        return local
    return str(package_default) if os.path.isfile(package_default) else None


class ChromDragoNNDataset(Dataset):
    """One item per BED interval: its 1,000 bp one-hot window, the TF expression of every
    requested context, and (when a track is available) the mean accessibility of the central 200 bp.

    Args:
      intervals_file: BED (any width; resized to 1,000 bp around the centre).
      fasta_file: FASTA, plain or bgzipped.
      cell_types: list or comma-separated string of context names.
      expression_file: optional genes x contexts RNA-seq table (adds or replaces contexts).
      expression_units: "tpm" or "rpkm" (for expression_file).
      mean_bigwig: mean-accessibility bigWig (default weights/mean_accessibility_chr22.bw when it exists).
      gene_panel: ordered TF panel (default weights/gene_panel.tsv).
    """

    def __init__(self, intervals_file, fasta_file, cell_types, expression_file=None, expression_units="tpm",
                 mean_bigwig=None, gene_panel=None):
        self.contexts = parse_contexts(cell_types)
        gene_panel = gene_panel or _shipped(paths.GENE_PANEL.name, paths.GENE_PANEL)
        if gene_panel is None:
            raise ChromDragoNNError(f"gene panel not found: {paths.GENE_PANEL}")
        shipped = _shipped(paths.SHIPPED_EXPRESSION.name, paths.SHIPPED_EXPRESSION)
        source = expression_source(expression_file, expression_units, gene_panel=gene_panel, shipped=shipped)
        self.expression = source.matrix(self.contexts)  # (C, G), the same for every interval
        self.cell_types = ",".join(self.contexts)

        self.genome = Genome(fasta_file)
        self.bed = read_bed(intervals_file)
        if len(self.bed) == 0:
            raise ChromDragoNNError(f"BED file {intervals_file} has no intervals")
        # Check every interval up front, so a bad record fails before any prediction is written.
        self._fasta_chrom = {}
        for chrom, start, end, name in self.bed[["chrom", "start", "end", "name"]].itertuples(index=False):
            if chrom not in self._fasta_chrom:
                self._fasta_chrom[chrom] = self.genome.resolve(chrom)
            self.genome.check_interval(chrom, start, end, f"{intervals_file}: interval {name}")

        mean_bigwig = mean_bigwig or _shipped(paths.MEAN_BIGWIG.name, paths.MEAN_BIGWIG)
        self.mean = MeanAccessibility(mean_bigwig) if mean_bigwig else None
        if self.mean is not None:
            for chrom in self._fasta_chrom:
                self.mean.resolve(chrom)
        else:
            logger.info("no mean-accessibility bigWig given or shipped: batches carry no mean_acc "
                        "(needed only by models with the mean input)")

    def __len__(self):
        return len(self.bed)

    def __getitem__(self, idx):
        row = self.bed.iloc[idx]
        window = centered_window(row["chrom"], int(row["start"]), int(row["end"]))
        seq = self.genome.fetch(self._fasta_chrom[row["chrom"]], window.start, window.end)
        inputs = {"seq": one_hot(seq), "expression": self.expression.copy()}
        if self.mean is not None:
            inputs["mean_acc"] = np.array([self.mean.value(row["chrom"], window.start, window.end)],
                                          dtype=np.float32)
        ranges = GenomicRanges(chr=row["chrom"], start=window.start, end=window.end, id=row["name"], strand="*")
        return {"inputs": inputs, "metadata": {"ranges": ranges, "cell_types": self.cell_types}}
