#!/usr/bin/env bash
# Results rows for the VampPrior, the Real-NVP flow prior and the flow guide on MNIST, trained
# with the budget of experiments/mnist_table.sh (up to 100 epochs, early stopping with patience
# 20, the same data protocol and networks), scored on the first EVAL_LIMIT test images
# (default 2000) with K = 5000. The three runs go in parallel, one thread each.
# Usage: bash experiments/mnist_more_priors.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   VAMP_COMPONENTS: pseudo-inputs of the VampPrior (default 500, the prior's own default;
#   each costs the encoder a pass per step: 500 take ~30 s per epoch on one CPU core).
set -euo pipefail
root=${1:-../shared/data}
shift || true
out=${OUT_DIR:-runs/mnist_more_priors}
limit=${EVAL_LIMIT:-2000}
mkdir -p "$out"
common=(experiment=mnist_core "data.root=$root" "trainer.eval_limit=$limit")  # conf/experiment/
run() {  # name, overrides...
  local name=$1; shift
  OMP_NUM_THREADS=1 pyro-mvae train "${common[@]}" "run_dir=$out/$name" "$@" "${EXTRA[@]}" \
    > "$out/$name.log" 2>&1
}
EXTRA=("$@")
run vamp_gaussian prior=vamp "prior.components=${VAMP_COMPONENTS:-500}" guide=gaussian \
    trainer.eval_chunk_size=20 &
run flow_gaussian prior=flow guide=gaussian &
run mixture_flow prior=mixture guide=flow &
wait
python "$(dirname "$0")/results_table.py" "$out"/*/report.json
