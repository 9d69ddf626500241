#!/usr/bin/env bash
# Results rows for the VampPrior, the Real-NVP flow prior and the flow guide (MNIST in the
# README), trained with the budget of experiments/core_table.sh (experiment=core: up to 100
# epochs, early stopping with patience 20, the same data protocol and networks), scored on the
# first EVAL_LIMIT test images (default 2000) with K = 5000. The three runs go in parallel, one
# thread each, into runs/<data>_more_priors/ (OUT_DIR).
# Usage: [DATA=NAME] bash experiments/more_priors.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   DATA: the data set by name (default mnist; see experiments/common.sh).
#   VAMP_COMPONENTS: pseudo-inputs of the VampPrior (default 500, the prior's own default;
#   each costs the encoder a pass per step: 500 take ~30 s per epoch on one CPU core).
set -euo pipefail
source "$(dirname "$0")/common.sh" more_priors "$@"  # data, out, run
limit=${EVAL_LIMIT:-2000}
common=(experiment=core "${data_args[@]}" "trainer.eval_limit=$limit")  # conf/experiment/core.yaml
run vamp_gaussian prior=vamp "prior.components=${VAMP_COMPONENTS:-500}" guide=gaussian \
    trainer.eval_chunk_size=20 &
run flow_gaussian prior=flow guide=gaussian &
run mixture_flow prior=mixture guide=flow &
wait
python "$(dirname "$0")/results_table.py" "$out"/*/report.json
