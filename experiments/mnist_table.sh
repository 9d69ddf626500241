#!/usr/bin/env bash
# The README's first MNIST results table: three prior/guide pairs, same budget, same data.
# Usage: bash experiments/mnist_table.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   DATA_ROOT: folder holding MNIST/raw/ (default: ../shared/data)
# Each run trains up to 100 epochs (early stopping on the validation ELBO, patience 20), then
# scores its best checkpoint on the first EVAL_LIMIT test images (default 2000; EVAL_LIMIT=null for
# all 10,000, about 30 CPU-minutes per model on one core): the IWAE log-likelihood with K = 5000
# and the ELBO, on the same images. The three runs go in parallel, one thread each.
set -euo pipefail
root=${1:-../shared/data}
shift || true
out=${OUT_DIR:-runs/mnist_table}
limit=${EVAL_LIMIT:-2000}
mkdir -p "$out"
common=(experiment=mnist_core "data.root=$root" "trainer.eval_limit=$limit")  # conf/experiment/
run() {  # name, overrides...
  local name=$1; shift
  OMP_NUM_THREADS=1 pyro-mvae train "${common[@]}" "run_dir=$out/$name" "$@" "${EXTRA[@]}" \
    > "$out/$name.log" 2>&1
}
EXTRA=("$@")
run standard_gaussian prior=standard guide=gaussian &
run mixture_gaussian prior=mixture guide=gaussian &
run factorized_relaxed prior=factorized_mixture guide=relaxed_mixture &
wait
python "$(dirname "$0")/results_table.py" "$out"/*/report.json
