#!/usr/bin/env bash
# Train the same model (mixture prior, C = 10; MNIST in the README) with every route for the
# gradient of the component choice, same budget each, then print their test IWAE
# log-likelihoods and epoch times. Runs go into runs/<data>_gradient_routes/ (OUT_DIR).
# Usage: [DATA=NAME] bash experiments/gradient_routes.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   DATA: the data set by name (default mnist; see experiments/common.sh).
#   EPOCHS (default 5), EVAL_LIMIT (test images scored, default 500), K (default 5000).
set -euo pipefail
source "$(dirname "$0")/common.sh" gradient_routes "$@"  # data, out, run
common=(experiment=gradient_routes "${data_args[@]}"  # conf/experiment/gradient_routes.yaml
        "trainer.epochs=${EPOCHS:-5}" "trainer.tau_anneal_epochs=${EPOCHS:-5}"
        "trainer.eval_limit=${EVAL_LIMIT:-500}" "trainer.eval_samples=${K:-5000}")
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
