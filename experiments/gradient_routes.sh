#!/usr/bin/env bash
# Train the same model (mixture prior, C = 10) on MNIST with every route for the gradient of the
# component choice, same budget each, then print their test IWAE log-likelihoods and epoch times.
# Usage: bash experiments/gradient_routes.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   EPOCHS (default 5), EVAL_LIMIT (test images scored, default 500), K (default 5000).
set -euo pipefail
root=${1:-../shared/data}
shift || true
out=${OUT_DIR:-runs/gradient_routes}
mkdir -p "$out"
common=(experiment=mnist_gradient_routes "data.root=$root"  # conf/experiment/mnist_gradient_routes.yaml
        "trainer.epochs=${EPOCHS:-5}" "trainer.tau_anneal_epochs=${EPOCHS:-5}"
        "trainer.eval_limit=${EVAL_LIMIT:-500}" "trainer.eval_samples=${K:-5000}")
run() {  # name, overrides...
  local name=$1; shift
  OMP_NUM_THREADS=1 pyro-mvae train "${common[@]}" "run_dir=$out/$name" "$@" "${EXTRA[@]}" \
    > "$out/$name.log" 2>&1
}
EXTRA=("$@")
run relaxed guide=relaxed_mixture guide.straight_through=false objective=trace &
run straight_through guide=relaxed_mixture guide.straight_through=true objective=trace
wait
run score_function guide=discrete_mixture guide.baseline=none objective=tracegraph &
run decaying_average guide=discrete_mixture guide.baseline=decaying_average objective=tracegraph
wait
run neural_baseline guide=discrete_mixture guide.baseline=neural objective=tracegraph &
run enumeration guide=discrete_mixture objective=enum
wait
python "$(dirname "$0")/results_table.py" "$out"/*/report.json
