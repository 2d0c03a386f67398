#!/usr/bin/env bash
# Keep a finished fold in the repository (training/README.md, "Folds trained in successive sessions"):
# its weights, evaluation and histories (export-fold), and the variant truth rows of both of its
# models (the no-mean model is not kept, so its truth check runs now, while the run folder holds it).
#
#   bash training/keep_fold.sh CONFIG FOLD [RULE_VERSION]
#   bash training/keep_fold.sh training/configs/benchmark_v2.yaml 1 2
#
# Then commit training/runs/<config stem>/fold<FOLD>/ and timings.json.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: bash training/keep_fold.sh CONFIG FOLD [RULE_VERSION]}
fold=${2:?usage: bash training/keep_fold.sh CONFIG FOLD [RULE_VERSION]}
rule=${3:-2}
stem=$(basename "$config" .yaml)
kept=training/runs/$stem/fold$fold
scratch=tmp/$stem/weights_fold$fold
py=.venv/bin/python
[ -x "$py" ] || py=python

$py -m chromdragonn.training export-fold --config "$config" --fold "$fold"
$py -m chromdragonn.training export --config "$config" --folds "$fold" --ship-no-mean "$fold" \
    --weights-dir "$scratch" --no-yaml
for model in with_mean no_mean; do
  $py benchmarks/bench_variants.py truth --folds "$fold" --weights-dir "$scratch" --rule-version "$rule" \
      --model "$model" --rows-out "$kept/eval/truth_rule${rule}_$model.tsv" | grep "^Median"
done
echo "kept $kept; commit it with training/runs/$stem/timings.json"
