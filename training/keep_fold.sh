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
[ -x "$py" ] || py=$(command -v python3 || command -v python)

$py -m chromdragonn.training export-fold --config "$config" --fold "$fold"
# the with-mean file as shipped (fp16), folds.tsv and the mean track; the no-mean model as trained (fp32:
# it is not shipped, and its fp16 copy can miss the 1e-3 tolerance, as fold 0's 2,000-step one did)
$py -m chromdragonn.training export --config "$config" --folds "$fold" --weights-dir "$scratch" --no-yaml >/dev/null
run_dir=$($py -c "import sys; from chromdragonn.training.config import load_config; print(load_config(sys.argv[1]).run_dir)" "$config")
cp "$run_dir/fold$fold/stage2_no_mean/weights.pt" "$scratch/fold$fold.no_mean.pt"
for model in with_mean no_mean; do
  $py benchmarks/bench_variants.py truth --folds "$fold" --weights-dir "$scratch" --rule-version "$rule" \
      --model "$model" --rows-out "$kept/eval/truth_rule${rule}_$model.tsv" | grep "^Median"
done
echo "kept $kept; commit it with training/runs/$stem/timings.json"
