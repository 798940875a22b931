#!/usr/bin/env bash
# The one prepared check for the day a GPU machine is lent (issue 9): at most ~8 minutes.
#
#   bash bench/gpu_check.sh            # on the GPU machine, from the repository root
#
# Steps (each with its own time limit; the sum is 8 minutes):
#   1. install the cuda12 extra (pip install -e ".[cuda12,test]"; skipped with a note when
#      offline and CuPy + cnnx already import)
#   2. the GPU probe: cnnx must see a usable GPU
#   3. pytest -m gpu with CNNX_REQUIRE_GPU=1 (no usable GPU is an error, never a skip)
#   4. cnnx train --device cuda (the README's first command, on the GPU)
#   5. MNIST CNN on the GPU: real t10k images ($CNNX_DATA_DIR/mnist), 8,000 to train and
#      2,000 to validate, 3 epochs; plus one epoch on CPU and GPU from one seed, compared
#   6. bench/bench_mnist.py --device cuda (cnnx only; the CPU figures are in the docs)
# and prints one summary table. Exit status 0 only if every step passed.
#
# Environment: PYTHON (default python3), CNNX_DATA_DIR (default ../shared/data when
# present), GPU_CHECK_QUICK=1 (tiny sizes: for checking this script itself, e.g. on the
# CuPy stand-in with PYTHONPATH=tests/support/fakecupy).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
PY="${PYTHON:-python3}"
if [[ "$PY" == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"; fi
logs="$(mktemp -d)"
if [ -z "${CNNX_DATA_DIR:-}" ]; then
  for candidate in "$repo/shared/data" "$repo/../shared/data" /work/shared/data; do
    if [ -d "$candidate/mnist" ]; then
      CNNX_DATA_DIR="$(cd "$candidate" && pwd)"
      break
    fi
  done
fi
export CNNX_DATA_DIR="${CNNX_DATA_DIR:-}"
echo "CNNX_DATA_DIR=${CNNX_DATA_DIR:-(unset: the MNIST steps will fail)}"
quick="${GPU_CHECK_QUICK:-0}"
# Steps change directory, so relative PYTHONPATH entries are made absolute first.
if [ -n "${PYTHONPATH:-}" ]; then
  PYTHONPATH="$("$PY" -c 'import os, sys; print(os.pathsep.join(
    os.path.abspath(p) for p in sys.argv[1].split(os.pathsep)))' "$PYTHONPATH")"
  export PYTHONPATH
fi

rows=()
failed=0

# run_step NAME LIMIT_SECONDS COMMAND...: run, keep the log, note PASS/FAIL, time and detail.
run_step() {
  local name="$1" limit="$2"
  shift 2
  local log="$logs/${#rows[@]}.log" start status detail
  echo "== [gpu_check] $name (limit ${limit}s)"
  start=$(date +%s)
  # The steps are shell functions, so timeout runs them through bash (exported below).
  if timeout "$limit" bash -c '"$@"' _ "$@" >"$log" 2>&1; then status=PASS; else status=FAIL; fi
  tail -n 15 "$log"
  detail="$(grep -E '^(DETAIL |=* ?[0-9]+ (passed|failed|error))' "$log" | tail -n 1 | sed 's/^DETAIL //')"
  if [ "$status" = FAIL ] && grep -q '^SKIP ' "$log"; then
    status=SKIP
    detail="$(grep '^SKIP ' "$log" | tail -n 1 | sed 's/^SKIP //')"
  fi
  [ "$status" = FAIL ] && failed=1
  rows+=("$name|$status|$(($(date +%s) - start))|${detail:0:90}")
}

install_extra() {
  if [ "$quick" = 1 ]; then
    echo "SKIP quick mode: nothing installed"
    return 1
  fi
  if "$PY" -m pip install --quiet -e ".[cuda12,test]"; then
    echo "DETAIL pip install -e .[cuda12,test] done"
    return 0
  fi
  if "$PY" -c "import cupy, cnnx" 2>/dev/null; then
    echo "SKIP pip failed (offline?); CuPy and cnnx already import"
  fi
  return 1
}

probe() {
  "$PY" - <<'EOF'
import cnnx
count, reason, names = cnnx.backends.gpu_status()
import cupy
print(f"cupy {cupy.__version__} from {cupy.__file__}")
if count == 0:
    raise SystemExit(f"no usable GPU: {reason}")
print(f"DETAIL {count} GPU(s): {', '.join(names)}; cupy {cupy.__version__}")
EOF
}

gpu_tests() {
  CNNX_REQUIRE_GPU=1 "$PY" -m pytest -m gpu -q -p no:randomly -p no:cacheprovider
}

train_cli() {
  local dir
  dir="$(mktemp -d)"
  local out
  out="$(cd "$dir" && "$PY" -m cnnx train --device cuda --quiet 2>&1)" || {
    echo "$out"
    return 1
  }
  echo "$out"
  echo "DETAIL $(echo "$out" | grep -E '^(device|val accuracy)' | tr -s ' ' | paste -sd ';')"
}

mnist_gpu() {
  GPU_CHECK_QUICK="$quick" "$PY" - <<'EOF'
import os
import time

import numpy as np

import cnnx
from cnnx import optim
from cnnx.datasets.mnist import load_mnist

quick = os.environ.get("GPU_CHECK_QUICK") == "1"
X, y = load_mnist("test", download=False)  # the t10k files under $CNNX_DATA_DIR/mnist
n_train, n_val, epochs = (512, 256, 1) if quick else (8000, 2000, 3)
Xt, yt, Xv, yv = X[:n_train], y[:n_train], X[n_train : n_train + n_val], y[n_train : n_train + n_val]

# One epoch from one seed on the CPU and on the GPU: the losses agree within float32 tolerance.
losses = {}
for spec in ("cpu", "cuda"):
    model = cnnx.models.get("mnist_cnn", seed=0)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    history = cnnx.fit(model, opt, (Xt[:1024], yt[:1024]), epochs=1, batch_size=128, device=spec)
    losses[spec] = history.final.loss
print(f"one-epoch loss cpu {losses['cpu']:.6f} cuda {losses['cuda']:.6f}")
np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)

model = cnnx.models.get("mnist_cnn", seed=0)
opt = optim.Adam(model.named_parameters(), lr=1e-3)
start = time.perf_counter()
history = cnnx.fit(
    model, opt, (Xt, yt), (Xv, yv), epochs=epochs, batch_size=128, device="cuda"
)
seconds = time.perf_counter() - start
for record in history:
    print(record)
accuracy = history.final.val_accuracy
print(
    f"DETAIL val acc {accuracy:.4f} after {epochs} epochs on {n_train} images, {seconds:.1f} s; "
    f"cpu/gpu 1-epoch loss {losses['cpu']:.5f}/{losses['cuda']:.5f}"
)
if not quick and accuracy < 0.9:
    raise SystemExit(f"MNIST validation accuracy {accuracy:.4f} < 0.90")
EOF
}

bench_gpu() {
  local extra=()
  if [ "$quick" = 1 ]; then extra=(--samples 512 --epochs 1 --batch-sizes 64); fi
  local out
  out="$("$PY" bench/bench_mnist.py --device cuda --no-torch --rounds 1 --epochs 3 \
    --data-root "${CNNX_DATA_DIR:-/nonexistent}/mnist" "${extra[@]}" 2>&1)" || {
    echo "$out"
    return 1
  }
  echo "$out"
  # One "batch B: N samples/s" per table row (the table's 5th column).
  echo "DETAIL $(echo "$out" | grep -E '^\| cnnx' | awk -F'|' '{gsub(/ /, "", $4); gsub(/ /, "", $6);
    printf "batch %s: %s samples/s; ", $4, $6}')"
}

export PY quick
export -f install_extra probe gpu_tests train_cli mnist_gpu bench_gpu

nvidia-smi 2>/dev/null | head -n 15 || echo "(nvidia-smi not available)"
run_step "install cuda12 extra" 120 install_extra
run_step "GPU probe" 15 probe
run_step "pytest -m gpu (CNNX_REQUIRE_GPU=1)" 150 gpu_tests
run_step "cnnx train --device cuda" 45 train_cli
run_step "MNIST CNN on the GPU" 60 mnist_gpu
run_step "bench_mnist.py --device cuda" 90 bench_gpu

echo
echo "# gpu_check summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)); logs in $logs"
printf '%-36s %-5s %6s  %s\n' "step" "result" "sec" "detail"
for row in "${rows[@]}"; do
  IFS='|' read -r name status secs detail <<<"$row"
  printf '%-36s %-5s %6s  %s\n' "$name" "$status" "$secs" "$detail"
done
exit "$failed"
