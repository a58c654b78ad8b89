#!/usr/bin/env bash
# The GPU checks of issue 5 in one call on a lent GPU machine (no internet, a short lease),
# from the repo root, with a bundle from deploy/offline/pack.sh at BUNDLE (default .dev):
#
#   STEPS="tests throughput share overhead reproduce" bash bench/gpu_session.sh
#
# Steps, each logged to $OUT/session.log (OUT: where output is kept, default ./gpu-session):
#   tests       pytest -m gpu: the captured training step against eager steps, GoogLeNet, a
#               whole `deepnets train --gpu --compile step_graph` run
#   throughput  bench/throughput.py: eager vs channels_last vs bf16 vs compile=$COMPILE
#   share       bench/gpu_share.py: processes sharing the GPU, eager and compile=$COMPILE
#   share-mps   (not in the default STEPS) the same under NVIDIA MPS, if the machine runs it
#   overhead    bench/overhead.py --device cuda: bare loop vs engine vs Ray Train
#   reproduce   jobs/reproduce.py --fidelity $FIDELITY --together for at most $REPRO_S seconds
#               (SIGINT: it saves; the same call again resumes), then its report and the
#               per-trial rates (bench/run_rate.py); runs kept in $BUNDLE/runs across calls
# Settings: COMPILE (step_graph), FIDELITY (full_graphed), SPACES (all six), REPRO_S (300),
# MODELS (resnet18,vgg16,googlenet,resnet101), DEEPNETS_GIT_COMMIT (the commit being measured:
# the device gets the tree without .git).
set -uo pipefail

bundle=${BUNDLE:-.dev}
out=${OUT:-gpu-session}
steps=${STEPS:-tests throughput share overhead reproduce}
compile=${COMPILE:-step_graph}
fidelity=${FIDELITY:-full_graphed}
spaces=${SPACES:-mnist_resnet,mnist_googlenet,mnist_vgg,cifar10_resnet,cifar10_vgg,cifar10_googlenet}
models=${MODELS:-resnet18,vgg16,googlenet,resnet101}
mkdir -p "$out"
log=$out/session.log
export PYTHONUNBUFFERED=1 DEEPNETS_GIT_COMMIT=${DEEPNETS_GIT_COMMIT:-unknown}
eval "$(bash deploy/offline/install.sh "$bundle")" || exit 1

step() {  # run one named step's command, timed, into the log
    echo "=== $1 ($(date -u +%H:%M:%S))" | tee -a "$log"
    shift
    local start=$SECONDS
    "$@" 2>&1 | tee -a "$log"
    echo "=== rc ${PIPESTATUS[0]}, $((SECONDS - start)) s" | tee -a "$log"
}

with_mps() {  # run "$@" with NVIDIA MPS, so processes' kernels run side by side, not in
    # turns; the daemon is this call's own (pipes under /tmp) and quits after; GPU settings
    # (compute mode, MIG) are left as they are
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then
        "$@"
        echo quit | nvidia-cuda-mps-control
    else
        echo "MPS did not start" | tee -a "$log"
    fi
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c \
    "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)"; } >> "$log"
for name in $steps; do
    case $name in
    tests) step tests python3 -m pytest -q -m gpu -p no:cacheprovider tests ;;
    throughput) step throughput python3 bench/throughput.py --models "$models" \
        --compile-mode "$compile" --steps 30 ;;
    share)
        step share-eager python3 bench/gpu_share.py --models resnet18 --procs 1,5 --seconds 5
        step "share-$compile" python3 bench/gpu_share.py --models resnet18 --procs 1,2,3 \
            --seconds 5 --compile "$compile" ;;
    share-mps) with_mps step share-mps python3 bench/gpu_share.py --models resnet18 \
        --procs 1,3,5 --seconds 5 --compile "$compile" ;;
    overhead) step overhead python3 bench/overhead.py --device cuda --epochs 4 ;;
    reproduce)
        runs=$bundle/runs
        step reproduce timeout -s INT "${REPRO_S:-300}" python3 jobs/reproduce.py \
            --fidelity "$fidelity" --together --storage "$runs" --spaces "$spaces" \
            --out "$out/report"
        step report python3 jobs/report.py "$runs"/repro-"$fidelity"-* --out "$out/report"
        step rates python3 bench/run_rate.py --phases "$runs"/repro-"$fidelity"-* ;;
    *) echo "unknown step $name" | tee -a "$log" ;;
    esac
done
# The device tool brings back at most 8 files, 2 folders down: the report goes as one archive.
if [ -d "$out/report" ]; then tar czf "$out/report.tar.gz" -C "$out" report && rm -rf "$out/report"; fi
