#!/usr/bin/env bash
# Issue 14's GPU figures, on a GPU machine that has PyTorch and
# JAX with CUDA but no TensorFlow, keras or keras-hub (see docs/performance.md).
#
# Prepare here, once, in the repository's root (wheels for the machine's
# Python 3.12; nanoGPT's model.py for the reference):
#
#   echo /.whl/ >> .git/info/exclude; echo /.nanogpt/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: \
#       --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl keras==3.15.1 keras-hub==0.32.0 namex optree kagglehub
#   mkdir -p .nanogpt && cp ../nanoGPT/model.py .nanogpt/
#
# then run `bash benchmarks/gpu_checks.sh` there, carrying .whl and .nanogpt.
# GPU_CHECKS_PARTS picks parts, in this order: `target1`, `images`, `gpt`,
# `generate`, `syncs`, default the last four. Each step is cut at LIMIT
# (240 s; `syncs` 420 s), so a part takes at most 480 s, `syncs` 420 s:
# split them over calls of at most 600 s, e.g. GPU_CHECKS_PARTS=images
# first. With little GPU time, `target1` alone measures issue 14's target
# 1 in at most 540 s (three steps of T1_LIMIT, 180 s; target1_*.jsonl).
# It writes JSON lines under $OUT (or build/gpu):
#   gpt_step_speed.jsonl  MiniGPT (fused blocks, on PyTorch also with the
#                         backend's block op off, and keras-hub blocks) against
#                         nanoGPT (torch.compile, bf16 autocast), nanoGPT's
#                         GPU recipe, JAX and PyTorch, mixed_bfloat16,
#                         then MiniGPT on PyTorch with jit_compile=True,
#                         then generating 500 characters (float32) on JAX
#                         and on PyTorch, eager and with jit_compile=True,
#                         and in mixed_bfloat16 on JAX and compiled
#                         PyTorch;
#   step_speed.jsonl      DCGAN and VAE images/s, JAX and PyTorch, each
#                         with Keras' batch-end dispatch async and sync,
#                         then PyTorch with jit_compile=True (each update
#                         one graph since 2026-12-02), without and with
#                         dynamo's guards on the layers;
#   host_syncs.jsonl      PyTorch's waits for the GPU per fit step (DCGAN,
#                         VAE, WGAN-GP, MiniGPT) and per generated
#                         character, eager and with jit_compile=True;
# and each step's stderr beside it. GPU_CHECKS_SMOKE=1 runs every step
# briefly (a check of the script itself, on any machine).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
# JAX takes 75 % of the GPU by default; nanoGPT runs in the same process
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.5
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    > "$OUT/gpu.txt" 2>&1
NANOGPT=()
if [ -f .nanogpt/model.py ]; then
    NANOGPT=(--nanogpt-dir .nanogpt --nanogpt-compile)
fi
RECIPE=gpu ROUNDS=30 BATCHES=40 LIMIT=240 CHARACTERS=500 SYNC_STEPS=6
SYNC_LIMIT=420 T1_LIMIT=180
if [ "${GPU_CHECKS_SMOKE:-0}" = 1 ]; then
    RECIPE=cpu ROUNDS=1 BATCHES=2 LIMIT=600 NANOGPT=() CHARACTERS=3
    SYNC_STEPS=1 T1_LIMIT=600
fi
PARTS=",${GPU_CHECKS_PARTS:-images,gpt,generate,syncs},"
# DCGAN and VAE images/s on JAX and PyTorch, then on PyTorch with
# jit_compile=True (each update one graph since 2026-12-02) and
# --layer-guards $3, into $OUT/$2.jsonl, each call limited to $1 s; the
# other arguments go to the first call
image_speeds() {
    local limit=$1 name=$2 guards=$3
    shift 3
    timeout "$limit" "$PY" benchmarks/step_speed.py --backends jax,torch \
        --batches "$BATCHES" "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.err"
    echo "$name: exit $?"
    timeout "$limit" "$PY" benchmarks/step_speed.py --backends torch \
        --jit-compile true --layer-guards "$guards" --batches "$BATCHES" \
        >> "$OUT/$name.jsonl" 2>> "$OUT/$name.err"
    echo "$name, torch.compile: exit $?"
}
if [[ $PARTS == *,target1,* ]]; then
    # issue 14's target 1 alone, for a session with little GPU time, at
    # most 3 x T1_LIMIT s: MiniGPT's GPU recipe in mixed_bfloat16 on JAX
    # and compiled PyTorch (training against nanoGPT, then generating 500
    # characters), then the DCGAN and the VAE
    timeout "$T1_LIMIT" "$PY" benchmarks/gpt_step_speed.py \
        --recipe "$RECIPE" --backends jax,torch --dtype mixed_bfloat16 \
        --rounds "$ROUNDS" --block-types fused --jit-compile true \
        --generate "$CHARACTERS" "${NANOGPT[@]}" \
        > "$OUT/target1_gpt.jsonl" 2> "$OUT/target1_gpt.err"
    echo "target1_gpt: exit $?"
    image_speeds "$T1_LIMIT" target1_step_speed default
fi
if [[ $PARTS == *,images,* ]]; then
    # --batch-end both: fit as it is (StopOnDivergence async_safe since
    # 2026-12-02), and with the batch-end logs read on fit's thread (before)
    # --layer-guards both: compiled PyTorch steps as the zoo compiles them
    # (without dynamo's guards on the layers, since 2026-12-03), then as
    # Keras does; on a PyTorch older than 2.13 (the lent machine had 2.11)
    # the zoo compiles as Keras does, and step_speed.py runs that once
    image_speeds "$LIMIT" step_speed both --batch-end both
fi
if [[ $PARTS == *,gpt,* ]]; then
    timeout "$LIMIT" "$PY" benchmarks/gpt_step_speed.py --recipe "$RECIPE" \
        --backends jax,torch --dtype mixed_bfloat16 --rounds "$ROUNDS" \
        --block-types fused,fused_keras_ops,keras_hub "${NANOGPT[@]}" \
        > "$OUT/gpt_step_speed.jsonl" 2> "$OUT/gpt_step_speed.err"
    echo "gpt_step_speed: exit $?"
    # PyTorch with jit_compile=True (torch.compile of Keras' step; one graph,
    # backward() included, since 2026-12-02): its first step holds the
    # compilation
    timeout "$LIMIT" "$PY" benchmarks/gpt_step_speed.py --recipe "$RECIPE" \
        --backends torch --dtype mixed_bfloat16 --rounds "$ROUNDS" \
        --block-types fused --jit-compile true \
        >> "$OUT/gpt_step_speed.jsonl" 2>> "$OUT/gpt_step_speed.err"
    echo "gpt_step_speed, torch.compile: exit $?"
fi
if [[ $PARTS == *,generate,* ]]; then
    # 500 characters, eager and with the sampling loop's steps compiled
    # (since 2026-12-02; the sampler's step too since 2026-12-03), against
    # JAX's compiled loop, in float32
    timeout "$LIMIT" "$PY" benchmarks/gpt_step_speed.py --recipe "$RECIPE" \
        --backends jax,torch --rounds 1 --block-types fused \
        --jit-compile default,true --generate "$CHARACTERS" \
        >> "$OUT/gpt_step_speed.jsonl" 2>> "$OUT/gpt_step_speed.err"
    echo "gpt_step_speed, generation: exit $?"
    # and under mixed_bfloat16, as a model trained in it generates (the
    # PyTorch steps compile there too since 2026-12-03)
    timeout "$LIMIT" "$PY" benchmarks/gpt_step_speed.py --recipe "$RECIPE" \
        --backends jax,torch --rounds 1 --block-types fused \
        --dtype mixed_bfloat16 --jit-compile true --generate "$CHARACTERS" \
        >> "$OUT/gpt_step_speed.jsonl" 2>> "$OUT/gpt_step_speed.err"
    echo "gpt_step_speed, generation in mixed_bfloat16: exit $?"
fi
if [[ $PARTS == *,syncs,* ]]; then
    # how often a PyTorch fit step or generated character waits for the
    # GPU (torch.cuda.set_sync_debug_mode), eager and compiled
    # (each row printed as it is counted; compiling WGAN-GP's step, the
    # last, is the slowest part)
    KERAS_BACKEND=torch timeout "$SYNC_LIMIT" "$PY" benchmarks/host_syncs.py \
        --n "$SYNC_STEPS" > "$OUT/host_syncs.jsonl" 2> "$OUT/host_syncs.err"
    echo "host_syncs: exit $?"
fi
cat "$OUT"/*.jsonl
