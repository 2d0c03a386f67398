"""Where the shipped files live.

The package is installed editable from its repository (see README), and the
Kipoi layout puts weights/ and example/ at the repository root, beside the
package, so defaults resolve from here.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO_ROOT / "weights"
EXAMPLE_DIR = REPO_ROOT / "example"
# The project's shared public data (hg19 chr22, VCFs, Roadmap RNA-seq, TF list, motifs): next to the
# repository by default; CHROMDRAGONN_SHARED points elsewhere (a clone in another place). Only the
# tests, the benchmarks and the training defaults read it; prediction needs none of it.
SHARED_DIR = Path(os.environ.get("CHROMDRAGONN_SHARED", REPO_ROOT.parent / "shared"))
SHARED_DATA = SHARED_DIR / "data"
MODEL_YAML = REPO_ROOT / "model.yaml"

GENE_PANEL = WEIGHTS_DIR / "gene_panel.tsv"
# TPM of the panel genes in the 56 Roadmap epigenomes (RPKM converted to TPM; see weights/README.md).
SHIPPED_EXPRESSION = WEIGHTS_DIR / "roadmap_expression_tpm.tsv.gz"
# Mean accessibility over the training contexts, as a bigWig over the hg19 chr22 slice.
MEAN_BIGWIG = WEIGHTS_DIR / "mean_accessibility_chr22.bw"
FOLDS_FILE = WEIGHTS_DIR / "folds.tsv"
# Roadmap's group, colour and name of the 56 shipped epigenomes (the atlas plot's colours).
CONTEXT_GROUPS = WEIGHTS_DIR / "roadmap_context_groups.tsv"
