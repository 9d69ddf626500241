#!/usr/bin/env bash
# The GPU checks behind the CUDA numbers of README.md and docs/guide/devices.md, in three stages:
#   bash experiments/cuda_check.sh tests OUT            # the tests parametrised by device, on cuda
#   bash experiments/cuda_check.sh train OUT DATA_ROOT  # standard VAE on MNIST, then IWAE-5000 of all 10,000 test images
#   bash experiments/cuda_check.sh bench OUT DATA_ROOT  # bench_svi --levers, bench_compile --cudagraphs, bench_iwae
# Each stage writes its log under OUT; `train` leaves its run in RUN (default OUT/run), which the
# bench stage reads.
# EPOCHS (default 10), DEVICE (default cuda; cpu for a dry run of the commands) and EXTRA (more
# overrides of the training) are read from the environment. The training follows experiment=core (MLP 784-300-300-40, B = 100, Adam 1e-3) with
# fewer epochs and a 3-epoch β warm-up.
set -uo pipefail
stage=$1 out=$2 root=${3:-../shared/data}
device=${DEVICE:-cuda} epochs=${EPOCHS:-10} run=${RUN:-$2/run}
mkdir -p "$out"
case $stage in
tests)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
    python -m pytest -q -p no:cacheprovider -n 4 -k "$device" tests/infer/test_iwae.py tests/infer/test_ais.py \
        tests/infer/test_compiled.py tests/infer/test_compiled_training.py tests/training/test_devices.py \
        tests/training/test_resume.py 2>&1 | tee "$out/tests.log"
    ;;
train)
    python -m pyro_mvae.cli train experiment=core route=standard_gaussian data=mnist "data.root=$root" \
        "device=$device" "trainer.epochs=$epochs" trainer.warmup_epochs=3 trainer.eval_limit=null \
        trainer.progress=false "run_dir=$run" ${EXTRA:-} 2>&1 | tee "$out/train.log"
    python -c "import json, sys; r = json.load(open(sys.argv[1])); print({k: r[k] for k in \
        ('test_iwae_ll', 'test_iwae_ll_se', 'n_test', 'K', 'eval_seconds', 'train_seconds', 'epochs_run')})" \
        "$run/report.json" | tee -a "$out/train.log"
    ;;
bench)
    python experiments/bench_svi.py --data-root "$root" --device "$device" --models standard --levers \
        --rounds 3 2>&1 | tee "$out/bench_svi.log"
    graphs=$([ "$device" = cuda ] && echo --cudagraphs)
    python experiments/bench_compile.py "$run" --device "$device" --threads 1 --rounds 3 $graphs 2>&1 \
        | tee "$out/bench_compile.log"
    python experiments/bench_iwae.py "$run" --device "$device" --images 200 --chunks 100 500 2500 5000 2>&1 \
        | tee "$out/bench_iwae.log"
    ;;
*)
    echo "stage must be tests, train or bench" >&2; exit 2 ;;
esac
