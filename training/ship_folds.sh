#!/usr/bin/env bash
# Replace the shipped fold models with the five folds kept under training/runs/<config stem>/ and regenerate
# everything measured with them that a script can regenerate: steps 1, 3, 4 and README.md's printed outputs
# (step 5) of training/README.md, "Replacing the shipped fold models". Step 2 (SHIPPED_RULE_VERSION and the
# shipped-model tests' figures) and the rest of step 5 (the figures quoted in README.md's prose,
# weights/README.md and docs/) stay by hand: the script
# refuses to start until SHIPPED_RULE_VERSION names the rule the folds were trained on, and ends by
# listing what is left.
#
#   bash training/ship_folds.sh CONFIG RULE_VERSION [SUMMARY.md]
#   bash training/ship_folds.sh training/configs/benchmark_v2.yaml 2 tmp/summary.md
#
# Each step logs its wall time to tmp/<config stem>/ship.log; run it in the background and commit when it ends
# (benchmark v2, 2026-11-30: 24.8 minutes on 2 shared cores; the steps' times are in training/REPORT.md, fold-4 section).
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash training/ship_folds.sh CONFIG RULE_VERSION [SUMMARY.md]"
config=${1:?$usage}
rule=${2:?$usage}
summary=${3:-}
stem=$(basename "$config" .yaml)
kept=training/runs/$stem
py=.venv/bin/python
[ -x "$py" ] || py=$(command -v python3 || command -v python)
log=tmp/$stem/ship.log

# checks first: all folds kept (with their truth rows), the rule constant set, the summary readable, R for the
# README's R example (its output is refreshed last)
n_folds=$($py -c "import sys; from chromdragonn.training.config import load_config; print(load_config(sys.argv[1]).n_folds)" "$config")
for ((f = 0; f < n_folds; f++)); do
  for need in "fold$f.with_mean.pt" eval/metrics.json "eval/truth_rule${rule}_no_mean.tsv"; do
    [ -f "$kept/fold$f/$need" ] || { echo "error: $kept/fold$f/$need missing: keep fold $f first (training/keep_fold.sh)" >&2; exit 2; }
  done
done
shipped=$($py -c "from chromdragonn.training.simulate import SHIPPED_RULE_VERSION as v; print(v)")
if [ "$shipped" != "$rule" ]; then
  echo "error: SHIPPED_RULE_VERSION is $shipped in chromdragonn/training/simulate.py; set it to $rule first (step 2)" >&2
  exit 2
fi
if [ -n "$summary" ] && [ ! -f "$summary" ]; then echo "error: $summary: no such summary file" >&2; exit 2; fi
if ! Rscript -e 'library(reticulate)' >/dev/null 2>&1; then
  echo "error: Rscript with reticulate is needed to refresh the README's R example output (setup.sh installs it)" >&2
  exit 2
fi
mkdir -p "tmp/$stem"

step() {  # step NAME COMMAND...: run, and log its wall time
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$log" >&2  # to stderr: a step's own stdout may be redirected
  "$@"
  echo "   $name: $((SECONDS - t0)) s" | tee -a "$log" >&2
}

echo "# $(date -u +%FT%TZ) bash training/ship_folds.sh $*" >> "$log"
step export $py -m chromdragonn.training export --config "$config" --fp16-from "$kept"
step report $py -m chromdragonn.training report --config "$config" --run-dir "$kept" ${summary:+--summary "$summary"}
step background $py scripts/make_variant_background.py
step truth_with_mean $py benchmarks/bench_variants.py truth
step truth_no_mean $py benchmarks/bench_variants.py truth --from-rows "$kept"/fold*/eval/truth_rule"${rule}"_no_mean.tsv \
    --section truth_no_mean
# the recorded commands of benchmarks/RESULTS.md; the no-mean sections score fold 0's unshipped no-mean
# model as trained (fp32), which keep_fold.sh left in tmp/<stem>/weights_fold0/
nomean=tmp/$stem/weights_fold0/fold0.no_mean.pt
step tf_truth $py benchmarks/bench_attributions.py tf-truth --candidates 2000 --bins 100
step learned_motifs $py benchmarks/bench_learned_motifs.py --fold 0 --contexts E007,E027,E062 --max-bins 600
# tests/test_learned_motifs.py scores the first 200 of the bins the benchmark picks for E007
step test_bins sh -c 'head -n 200 tmp/learned_motifs_truth/E007.bins.bed > tests/data/E007_rule_specific_bins.bed'
if [ -f "$nomean" ]; then
  step tf_truth_no_mean $py benchmarks/bench_attributions.py tf-truth --candidates 2000 --bins 100 --folds 0 \
      --weights "$nomean" --section tf_drivers_truth_no_mean
  step learned_motifs_no_mean $py benchmarks/bench_learned_motifs.py --fold 0 --contexts E007,E027,E062 --max-bins 600 \
      --weights "$nomean" --work tmp/lm_truth_nomean --section learned_motifs_truth_no_mean
else
  echo "note: $nomean is gone: the no-mean sections of benchmarks/RESULTS.md (tf_drivers_truth_no_mean," \
       "learned_motifs_truth_no_mean) still describe the rule-v1 model; rerun keep_fold.sh for fold 0 or mark them" | tee -a "$log"
fi
step readme_outputs $py scripts/refresh_readme_outputs.py   # README.md's printed outputs (setup, Python, R, ClinVar)

cat <<EOF | tee -a "$log"
Done. Left by hand (training/README.md, "Replacing the shipped fold models"):
  - the figures of tests/test_training_shipped.py and tests/test_variants.py::test_diff_correlates_with_the_simulated_truth,
    and tests/test_learned_motifs.py::test_trained_fold_learns_the_rules_e007_motifs if fold 0's motifs changed;
  - the figures in README.md's prose (truth medians, the models' AUPRC), weights/README.md,
    docs/variant_effects.md, docs/attributions.md;
  - then the whole test suite, and commit.
EOF
