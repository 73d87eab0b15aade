#!/usr/bin/env bash
# Correctness and speed of perceptual_sim on a CUDA machine, in one run.
#
#   benchmarks/gpu_check.sh [OUT_DIR] [--device cuda|cuda:K|cpu] [--quick]
#
# 1. Correctness (fails loudly: exit 1 and FAIL lines): every bundled model, plus random
#    ResNet-6 at full width and at 0.25 width with layer weights, in every mode, on natural-ish
#    images at 64 and 256 px, DEVICE against CPU float32:
#      - float32 with TF32 off:           |d - d_cpu| <= 1e-6 + 1e-4 |d_cpu| per distance
#        (also embed + pairwise N x M matrices);
#      - bfloat16 (precision="bfloat16"): max |d - d_cpu| <= 1e-2 max |d_cpu| (norm-wise);
#      - float32 with torch's defaults (cuDNN may use TF32): norm-wise 1e-2.
# 2. Speed: benchmarks/speed.py at 256 px, batches 64 and 256, against lpips-alex, in the
#    same process for all models (pairs/s, peak memory, GFLOP/s against measured peaks).
#
# Results go to OUT_DIR (default benchmarks/gpu_check_out): correctness.json, speed.md,
# speed.json, nvidia-smi.txt. --device cpu is a dry run of the same steps on the CPU
# (CPU against CPU, small sizes); --quick shrinks the speed run.
set -euo pipefail

OUT=benchmarks/gpu_check_out
DEVICE=cuda
QUICK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) OUT="$1"; shift ;;
    esac
done
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
if command -v nvidia-smi >/dev/null; then nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true; fi

echo "== correctness on $DEVICE against cpu float32"
DEVICE="$DEVICE" OUT="$OUT" HERE="$HERE" "$PYTHON" - <<'EOF'
import json
import os
import sys

import torch

sys.path.insert(0, os.environ["HERE"])
from speed import bfloat16_twin, distort, natural_images, relative_change  # noqa: E402

from perceptual_sim.distances import MODES  # noqa: E402
from perceptual_sim.metric import PerceptualDistance  # noqa: E402
from perceptual_sim.models.card import ModelCard  # noqa: E402
from perceptual_sim.models.registry import list_models  # noqa: E402

device = torch.device(os.environ["DEVICE"])
if device.type == "cuda" and not torch.cuda.is_available():
    sys.exit(f"FAIL: --device {device}: CUDA is not available (torch {torch.__version__})")


def random_model(width: float, layer_weights: bool) -> PerceptualDistance:
    torch.manual_seed(0)
    card = ModelCard(name=f"resnet6-w{width:g}{'-lin' if layer_weights else ''}-random", arch="k22_resnet",
                     arch_args={"width": width}, layer_weights=layer_weights)
    module = PerceptualDistance(card)
    if layer_weights:
        for w in module.layer_weights:
            w.data.uniform_(0, 1)
    return module


models = [PerceptualDistance.from_pretrained(card.name) for card in list_models()]
models += [random_model(1.0, False), random_model(0.25, True)]
torch.backends.cuda.matmul.allow_tf32 = False  # torch's default; cuDNN's default may be TF32
cudnn_default = torch.backends.cudnn.allow_tf32
results, failures = [], []


def check(model: str, what: str, got: torch.Tensor, want: torch.Tensor, rule: str) -> None:
    got, want = got.float().cpu(), want.float().cpu()
    change = relative_change(got, want)
    if rule == "elementwise 1e-4":
        ok = bool(((got - want).abs() <= 1e-6 + 1e-4 * want.abs()).all())
    else:
        ok = change["normwise"] <= 1e-2
    results.append({"model": model, "check": what, "rule": rule, "ok": ok, **change})
    line = (f"{'ok  ' if ok else 'FAIL'} {model:28s} {what:34s} max rel {change['max_rel']:.1e}, "
            f"norm-wise {change['normwise']:.1e} ({rule})")
    print(line, flush=True)
    if not ok:
        failures.append(line)


with torch.inference_mode():
    for cpu_model in models:
        name = cpu_model.card.name
        dev32 = PerceptualDistance.from_card(cpu_model.card, cpu_model.state_dict()).to(device)
        dev16 = bfloat16_twin(dev32)
        for size in (64, 256):
            x = natural_images(8, size, seed=size)
            y = distort(x, seed=size + 1)
            xd, yd = x.to(device), y.to(device)
            for mode in MODES:
                want = cpu_model(x, y, mode=mode)
                torch.backends.cudnn.allow_tf32 = False
                check(name, f"{size}px {mode} float32", dev32(xd, yd, mode=mode), want, "elementwise 1e-4")
                check(name, f"{size}px {mode} bfloat16", dev16(xd, yd, mode=mode), want, "norm-wise 1e-2")
                torch.backends.cudnn.allow_tf32 = cudnn_default
                check(name, f"{size}px {mode} float32 torch defaults", dev32(xd, yd, mode=mode), want,
                      "norm-wise 1e-2")
            torch.backends.cudnn.allow_tf32 = False
            fa, fb = cpu_model.embed(x), cpu_model.embed(y)
            da, db = dev32.embed(xd), dev32.embed(yd)
            for mode in MODES:
                check(name, f"{size}px {mode} pairwise float32", dev32.pairwise(da, db, mode=mode),
                      cpu_model.pairwise(fa, fb, mode=mode), "elementwise 1e-4")
            torch.backends.cudnn.allow_tf32 = cudnn_default

info = {"device": str(device), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
with open(os.path.join(os.environ["OUT"], "correctness.json"), "w", encoding="utf-8") as f:
    json.dump({**info, "results": results, "failures": failures}, f, indent=2)
if failures:
    print(f"\nFAIL: {len(failures)} of {len(results)} correctness checks missed:", file=sys.stderr)
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"all {len(results)} correctness checks passed")
EOF

echo "== speed on $DEVICE"
if [[ "$DEVICE" == cpu ]]; then
    SPEED=(--sizes 64 --batches 2 4 --repeats 1 --nxm 16 --loop-pairs 20)
elif [[ $QUICK == 1 ]]; then
    SPEED=(--sizes 256 --batches 64 --repeats 3 --nxm 64 --loop-pairs 200)
else
    SPEED=(--sizes 256 --batches 64 256 --repeats 10 --nxm 256 --loop-pairs 2000)
fi
"$PYTHON" "$HERE/speed.py" --device "$DEVICE" --random-widths 1 --lpips alex "${SPEED[@]}" \
    --json "$OUT/speed.json" | tee "$OUT/speed.md"
echo "wrote $OUT/correctness.json, $OUT/speed.md, $OUT/speed.json"
