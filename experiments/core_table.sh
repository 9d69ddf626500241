#!/usr/bin/env bash
# The README's first results table (MNIST there): three prior/guide pairs, same budget, same data.
# Usage: [DATA=NAME] bash experiments/core_table.sh [DATA_ROOT] [EXTRA_OVERRIDES...]
#   DATA: the data set by name (default mnist; see experiments/common.sh), e.g.
#     DATA=omniglot bash experiments/core_table.sh ~/data
#     DATA=folder bash experiments/core_table.sh - data.path=~/my_images data.size=28
#   DATA_ROOT: folder holding its files, e.g. MNIST/raw/ (default: ../shared/data)
# Each run trains up to 100 epochs (experiment=core: early stopping on the validation ELBO,
# patience 20), then scores its best checkpoint on the first EVAL_LIMIT test images (default 2000;
# EVAL_LIMIT=null for all, about 30 CPU-minutes per MNIST model on one core): the IWAE
# log-likelihood with K = 5000 and the ELBO, on the same images. The three runs go in parallel,
# one thread each, into runs/<data>_table/ (OUT_DIR).
set -euo pipefail
source "$(dirname "$0")/common.sh" table "$@"  # data, out, run
limit=${EVAL_LIMIT:-2000}
common=(experiment=core "${data_args[@]}" "trainer.eval_limit=$limit")  # conf/experiment/core.yaml
run standard_gaussian prior=standard guide=gaussian &
run mixture_gaussian prior=mixture guide=gaussian &
run factorized_relaxed prior=factorized_mixture guide=relaxed_mixture &
wait
python "$(dirname "$0")/results_table.py" "$out"/*/report.json
