#!/usr/bin/env bash
# The GPU checks of issue 5 on a lent GPU machine (no internet, a short lease), run from the
# repo root, with a bundle from deploy/offline/pack.sh at BUNDLE (default .dev):
#
#   DEEPNETS_GIT_COMMIT=<sha> STEPS="tests throughput overhead reproduce" DEADLINE_S=568 \
#       bash bench/gpu_session.sh                                  # one call of up to 600 s
#   DEEPNETS_GIT_COMMIT=<sha> STEPS=reproduce DEADLINE_S=300 bash bench/gpu_session.sh
#
# A device call lasts at most 600 s: DEADLINE_S cuts the reproduction so that the whole call
# ends inside it (at ef7e2ec on an H100, with throughput and MODELS=resnet18,vgg16,resnet101 as
# well, the first line took 491 s, 278 s of them reproducing);
# the second line, run at once on the still-warm machine, resumes the reproduction. Everything unpacked or trained stays outside the
# repository (DEST, RUNS), so a later call on the same warm machine finds it even if it carries
# the bundle again (a carried folder replaces its copy there), and `reproduce` resumes.
#
# Steps, each logged to $OUT/session.log (OUT: what comes back, default ./gpu-session):
#   tests       pytest -m gpu: the captured training step against eager steps, GoogLeNet,
#               a failed capture, a whole `deepnets train --gpu --compile step_graph` run
#   throughput  bench/throughput.py: NCHW, channels_last, bf16 and compile=$COMPILE
#   share       bench/gpu_share.py: resnet18 processes sharing the GPU, eager and $COMPILE
#   share-mps   the graphed sharing under NVIDIA MPS (processes' kernels side by side instead
#               of in turns), if the machine runs it; not in the default STEPS
#   overhead    bench/overhead.py --device cuda --epochs 8: bare loop vs engine vs Ray Train,
#               OVERHEAD_ROUNDS (3) fresh-process runs of each. A guess, not measured: ~90 s a
#               round (a child ~8 s of start-up + 8 x 1.6 s, a Ray run ~20 s + 8 x 1.7 s, 3 settles)
#   reproduce   jobs/reproduce.py --fidelity $FIDELITY --together, stopped by SIGINT after
#               REPRO_S seconds, or earlier so that the whole script ends by DEADLINE_S
#               seconds after its start (it saves; the same step again resumes), then the report,
#               the images/s of all trials together with the time that projects for the
#               40 rows' 20.7 M images, and the per-trial phases (bench/run_rate.py)
# Settings: COMPILE (step_graph), FIDELITY (full_graphed), SPACES (all six), REPRO_S (300),
# DEADLINE_S (none: for one call holding every step, a little under the call's timeout),
# SHARE_EAGER (the eager processes counts, 1,5; empty skips them), SHARE_PROCS (1,2,3),
# TESTS_S, THROUGHPUT_S, OVERHEAD_S (each step's time limit, 240 s; overhead's 330 s),
# OVERHEAD_ROUNDS (3),
# MODELS (resnet18,vgg16,googlenet,resnet101), DEST (/tmp/deepnets-offline), RUNS
# (/tmp/deepnets-runs), DEEPNETS_GIT_COMMIT (the commit measured: the device gets no .git).
set -uo pipefail

bundle=${BUNDLE:-.dev}
out=${OUT:-gpu-session}
steps=${STEPS:-tests throughput share overhead}
compile=${COMPILE:-step_graph}
fidelity=${FIDELITY:-full_graphed}
spaces=${SPACES:-mnist_resnet,mnist_googlenet,mnist_vgg,cifar10_resnet,cifar10_vgg,cifar10_googlenet}
models=${MODELS:-resnet18,vgg16,googlenet,resnet101}
runs=${RUNS:-/tmp/deepnets-runs}
mkdir -p "$out"
log=$out/session.log
export PYTHONUNBUFFERED=1 DEEPNETS_GIT_COMMIT=${DEEPNETS_GIT_COMMIT:-unknown}
settings=$(bash deploy/offline/install.sh "$bundle" "${DEST:-/tmp/deepnets-offline}") || exit 1
eval "$settings"

pack_report() {  # the device tool brings back files at most 2 folders down: one archive
    if [ -d "$out/report" ]; then
        tar czf "$out/report.tar.gz" -C "$out" report && rm -rf "$out/report"
    fi
}
trap pack_report EXIT

step() {  # run one named step's command, timed, into the log
    echo "=== $1 ($(date -u +%H:%M:%S))" | tee -a "$log"
    shift
    local start=$SECONDS
    "$@" 2>&1 | tee -a "$log"
    echo "=== rc ${PIPESTATUS[0]}, $((SECONDS - start)) s" | tee -a "$log"
}

with_mps() {  # run "$@" under this call's own MPS daemon (pipes under /tmp), quit after even
    # if the command is killed; the GPU's settings (compute mode, MIG) are left as they are
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then
        trap 'echo quit | nvidia-cuda-mps-control; pack_report' EXIT
        "$@"
        echo quit | nvidia-cuda-mps-control
        trap pack_report EXIT
    else
        echo "MPS did not start" | tee -a "$log"
    fi
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}

repro_seconds() {  # REPRO_S, less whatever would run past DEADLINE_S (leaving 60 s for the
    # sweep to save after SIGINT, 45 s for the report and rates, 5 s to pack the report)
    local seconds=${REPRO_S:-300}
    if [ -n "${DEADLINE_S:-}" ]; then
        local left=$((DEADLINE_S - SECONDS - 110))
        [ "$left" -lt "$seconds" ] && seconds=$left
    fi
    echo "$seconds"
}

reproduce() {
    local seconds
    seconds=$(repro_seconds)
    if [ "$seconds" -lt 60 ]; then
        echo "=== reproduce skipped: ${seconds} s left before DEADLINE_S" | tee -a "$log"
        return
    fi
    step reproduce timeout -s INT -k 60 "$seconds" python3 jobs/reproduce.py \
        --fidelity "$fidelity" --together --storage "$runs" --spaces "$spaces" \
        --out "$out/report"
    step report timeout 30 python3 jobs/report.py "$runs"/repro-"$fidelity"-* --out "$out/report"
    # The six report spaces at full fidelity train 20.7 M images (40 rows): the projection.
    step rates timeout 10 python3 bench/run_rate.py --total-images 20.7e6 \
        "$runs"/repro-"$fidelity"-*
    step phases timeout 5 python3 bench/run_rate.py --phases "$runs"/repro-"$fidelity"-*
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)"
} 2>&1 | tee -a "$log"
for name in $steps; do
    case $name in
    tests) step tests timeout -k 10 "${TESTS_S:-240}" \
        python3 -m pytest -q -m gpu -p no:cacheprovider tests ;;
    throughput) step throughput timeout -k 10 "${THROUGHPUT_S:-240}" \
        python3 bench/throughput.py --models "$models" --compile-mode "$compile" --steps 30 ;;
    share)
        if [ -n "${SHARE_EAGER-1,5}" ]; then
            step share-eager python3 bench/gpu_share.py --models resnet18 \
                --procs "${SHARE_EAGER-1,5}" --seconds 5
        fi
        step "share-$compile" python3 bench/gpu_share.py --models resnet18 \
            --procs "${SHARE_PROCS:-1,2,3}" \
            --seconds 5 --compile "$compile" ;;
    share-mps) with_mps step share-mps python3 bench/gpu_share.py --models resnet18 \
        --procs 1,3,5 --seconds 5 --compile "$compile" ;;
    overhead) step overhead timeout -k 10 "${OVERHEAD_S:-330}" \
        python3 bench/overhead.py --device cuda --epochs 8 --rounds "${OVERHEAD_ROUNDS:-3}" ;;
    reproduce) reproduce ;;
    *) echo "unknown step $name" | tee -a "$log" ;;
    esac
done
