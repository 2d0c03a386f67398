#!/usr/bin/env bash
# `kipoi predict` on the shipped example: 20 hg19 chr22 intervals in three Roadmap contexts
# (E003 H1, E116 GM12878, E123 K562), written once as TSV and once as HDF5.
#
#   source .venv/bin/activate
#   bash docs/usage_examples/example_kipoi.sh [MODEL_FOLDER]    # default: this repository
#
# Paths are relative to the model folder; outputs go to its output/.
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
mkdir -p output

kipoi predict . --source dir \
  --dataloader_args '{"intervals_file": "example/intervals.bed",
                      "fasta_file": "example/hg19_chr22_1-22000000.fa.gz",
                      "cell_types": "E003,E116,E123"}' \
  --keep_metadata \
  -o output/example_kipoi.tsv output/example_kipoi.h5
