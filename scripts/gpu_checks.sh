#!/usr/bin/env bash
# GPU checks and benchmarks, run from the repository root on a CUDA machine:
#   scripts/gpu_checks.sh OUT_DIR [tests|bench|pretrain|all]
# tests:    the CUDA-vs-CPU test suite (pytest -m gpu tests/gpu)
# bench:    objective (ours vs Algorithm 1 as written, with the memory-traffic floor) and PTv3 backbone
#           (paper config, bf16, 4 x 100k points; fp32 and encoder-decoder too)
# pretrain: DOS pretraining throughput at the paper's model and batch (PTv3 paper config, batch 16, bf16)
#           on the mini synthetic nuScenes-like data, generated on the machine
# Works with an installed `dos` or from the checkout alone (PYTHONPATH=.); uses `python3` unless PYTHON is set.
set -euo pipefail
OUT=${1:?usage: scripts/gpu_checks.sh OUT_DIR [tests|bench|pretrain|all]}
WHAT=${2:-all}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
$PYTHON - <<'EOF' | tee "$OUT/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
for name in ("flash_attn", "spconv", "torch_scatter"):
    import importlib.util
    print(name, "installed" if importlib.util.find_spec(name) else "not installed")
EOF

if [[ $WHAT == tests || $WHAT == all ]]; then
    $PYTHON -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log" || echo "gpu tests FAILED (see $OUT/gpu_tests.log)"
fi

if [[ $WHAT == bench || $WHAT == all ]]; then
    # 1M x 4096 is left out: Algorithm 1 as written needs several 16 GB buffers there
    $PYTHON -m dos bench objective --device cuda --points 100000 1000000 --prototypes 1024 --repeats 5 \
        --out "$OUT/objective_cuda_k1024.json"
    $PYTHON -m dos bench objective --device cuda --points 100000 --prototypes 4096 --repeats 5 \
        --out "$OUT/objective_cuda_k4096.json"
    $PYTHON -m dos bench backbone --device cuda --repeats 5 --out "$OUT/backbone_cuda_bf16.json"
    $PYTHON -m dos bench backbone --device cuda --repeats 5 --fp32 --out "$OUT/backbone_cuda_fp32.json"
    $PYTHON -m dos bench backbone --device cuda --repeats 5 --decoder --out "$OUT/backbone_cuda_bf16_decoder.json"
fi

if [[ $WHAT == pretrain || $WHAT == all ]]; then
    DATA=${DATA:-/tmp/dos-mini-data}
    $PYTHON -m dos data generate --scale mini --out "$DATA"
    RUN=/tmp/dos-gpu-pretrain
    rm -rf "$RUN"
    $PYTHON -m dos pretrain dos/config/pretrain/dos_outdoor.yaml --out "$RUN" \
        --set data.format=synthetic-lidar --set data.root="$DATA/synthetic-nuscenes" --set data.cache=true \
        --set train.batch_size=16 --set train.max_steps=${STEPS:-60} --set train.log_every=10 \
        --set train.checkpoint_every=1000 --set train.num_workers=8 --set train.bf16=true 2>&1 | tee "$OUT/pretrain.log"
    cp "$RUN/summary.json" "$OUT/pretrain_summary.json"
    cp "$RUN/history.csv" "$OUT/pretrain_history.csv"
fi
