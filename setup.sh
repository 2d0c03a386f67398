#!/usr/bin/env bash
# Command 1 of 2: install everything, then predict accessibility of the shipped example
# intervals (example/intervals.bed, hg19 chr22) in three Roadmap contexts with the default model.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
mkdir -p output
.venv/bin/chromdragonn predict \
  --intervals example/intervals.bed \
  --fasta example/hg19_chr22_1-22000000.fa.gz \
  --contexts E003,E116,E123 \
  -o output/example_predictions.tsv
echo "[setup] predictions written to output/example_predictions.tsv:"
column -t -s $'\t' output/example_predictions.tsv | head -n 12
