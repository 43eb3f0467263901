#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one run (CI has none, so these are run by hand):
#   1. GPU bakes of every bundled material, in the background, default settings but a fixed time
#      budget (GPU_BAKE_MINUTES each; all six share the GPU, which gave each about 4100 iterations in
#      3 minutes on an H200), into $OUT/baked/;
#   2. meanwhile, the tests that exercise the device's own code paths: CoopVec against loop
#      decoders (tests/test_neural_slang.py, tests/test_render_neural.py), device selection;
#   3. after the bakes, side by side in one quiet run: the stage at 1920x1080 with reference
#      materials, neural with the loop MLP path and neural with CoopVec (ms/spp each), and the
#      material-shading micro-benchmark (tools/bench_shading.py) on both MLP paths.
# Every step has a deadline inside GPU_CHECK_SECONDS; a failing step does not stop the others.
#
#     OUT=out/gpu-check bash tools/gpu_check.sh          # a venv with neumat's packages active
set -u
OUT=${OUT:-out/gpu-check}
BUDGET=${GPU_CHECK_SECONDS:-540}
BAKE_MINUTES=${GPU_BAKE_MINUTES:-3}
SPP=${GPU_CHECK_SPP:-64}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
START=$SECONDS
left() { echo $(( BUDGET - (SECONDS - START) )); }
step() {  # step NAME SECONDS CMD...: run CMD with a timeout of min(SECONDS, time left), logged
    local name=$1 limit=$2; shift 2
    local t=$(left); (( t < limit )) && limit=$t
    if (( limit < 10 )); then echo "== $name: skipped, out of time" | tee -a "$LOG"; return; fi
    echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout -s INT -k 15 "$limit" "$@" >>"$LOG" 2>&1
    echo "== $name: exit $? after $(( SECONDS - t0 )) s" | tee -a "$LOG"
}

export PYTHONUNBUFFERED=1 NEUMAT_DEVICE=${NEUMAT_DEVICE:-nvidia}
step sysinfo 60 python -m neumat sysinfo
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >>"$LOG" 2>&1

# 1. Bakes in the background; their logs go to $OUT/baked/<name>.log.
mkdir -p "$OUT/baked"
pids=()
for toml in assets/materials/*.toml; do
    name=$(basename "$toml" .toml)
    timeout -s INT -k 30 $(( BAKE_MINUTES * 60 + 180 )) python -m neumat bake "$toml" -o "$OUT/baked" \
        --time-budget "$BAKE_MINUTES" -q >"$OUT/baked/$name.log" 2>&1 &
    pids+=($!)
done
echo "== bakes started: ${#pids[@]} materials, ${BAKE_MINUTES} min each" | tee -a "$LOG"

# 2. Device tests, while the bakes run (correctness only; their times are not reported).
step tests 240 python -m pytest -q -p no:cacheprovider -k "not cpu_device" \
    tests/test_device.py tests/test_neural_slang.py tests/test_render_neural.py

for p in "${pids[@]}"; do wait "$p"; done
echo "== bakes done at $(( SECONDS - START )) s" | tee -a "$LOG"
for f in "$OUT"/baked/*.log; do echo "-- $f"; tail -n 4 "$f"; done >>"$LOG"
for r in "$OUT"/baked/*.neumat/report/report.md; do
    echo "-- $r"; sed -n '/^| configuration/,/^Mean FLIP/p' "$r"; grep -E "training_s|seconds_per_step" "$r"
done >>"$LOG" 2>&1

# 3. Timings, nothing else running.
for mode in reference neural-loop neural-coopvec; do
    case $mode in
        reference) args=(--mode reference) ;;
        neural-loop) args=(--mode neural --mlp loop) ;;
        neural-coopvec) args=(--mode neural --mlp coopvec) ;;
    esac
    step "stage $mode" 120 python -m neumat render stage "${args[@]}" --spp "$SPP" --width 1920 \
        -o "$OUT/stage-$mode.png"
done
for mlp in loop coopvec; do
    # N = 25 takes the loop path minutes to compile (each material's weights are its code).
    step "bench_shading $mlp" 120 python tools/bench_shading.py --mlp "$mlp" --scalability 1,8 --repeats 5 \
        --json "$OUT/bench_shading_$mlp.json"
done
echo "== total $(( SECONDS - START )) s" | tee -a "$LOG"
grep -E "^== |ms/spp|passed|failed|error" "$LOG" | tail -n 40
