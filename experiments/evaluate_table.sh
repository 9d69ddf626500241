#!/usr/bin/env bash
# Score the runs of experiments/core_table.sh on their whole test set (MNIST: 10,000 images) with
# K = 5000: eval.json, per-image estimates, k̂ and figures in each run directory, then one table.
# Usage: bash experiments/evaluate_table.sh [RUNS_DIR]   (default runs/mnist_table; about 30
# CPU-minutes per MNIST run on one core)
set -euo pipefail
out=${1:-runs/mnist_table}
for run in "$out"/standard_gaussian "$out"/mixture_gaussian "$out"/factorized_relaxed; do
  OMP_NUM_THREADS=1 pyro-mvae evaluate "$run" -K "${K:-5000}" > "$run.eval.log" 2>&1 &
done
wait
cat "$out"/*.eval.log
pyro-mvae compare "$out"/standard_gaussian "$out"/mixture_gaussian "$out"/factorized_relaxed
