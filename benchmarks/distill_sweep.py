"""Score distillation checkpoints and reference models on the human yardsticks and the shift
constraint, one JSON line per candidate, for :mod:`select_students` to cross-validate.

    python benchmarks/distill_sweep.py --runs runs/ds-* --refs efficientnet-lite0 lpips-alex resnet6-pa \
        --out benchmarks/distill/scores.jsonl

References ``stlpips-alex`` and ``stlpips-vgg`` are ST-LPIPS, scored through
:class:`stlpips_reference.STLPIPS` (their rows' ``sha256`` is that of the wheel's ``.pth``); any
other reference is loaded with :meth:`PerceptualDistance.from_pretrained`.

Each line holds, for the candidate's default (spatial) mode: the material triplets' 2AFC agreement
summed per reference material (sum and count, 64 and 256 px, so that folds over materials and
bootstrap intervals can be computed later), the psychophysics score per family (64 and 256 px,
``--per-family`` triplets each), and the proxy's 2AFC and shift flips at 1-3 px (crop protocol,
2,000 Tiny-ImageNet val triplets judged by LPIPS-Alex and -VGG). Candidates already in the file
are skipped, so the sweep resumes and can run beside the training (``--watch S``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from stlpips_reference import STLPIPS  # benchmarks/stlpips_reference.py, beside this script

from perceptual_sim import __version__
from perceptual_sim.lab.distill import export
from perceptual_sim.lab.evaluate import psych, triplets
from perceptual_sim.lab.evaluate.metrics import NetMetric
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL, judged_proxy_set, score
from perceptual_sim.metric import PerceptualDistance

MATERIALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"
SIZES = (64, 256)


def per_reference(metric: NetMetric | STLPIPS, tri: triplets.Triplets) -> dict[str, dict[str, list[float]]]:
    """{size: {reference: [sum of 2AFC agreements, triplets]}} for the metric's first mode."""
    out = {}
    for size in SIZES:
        d = triplets.triplet_distances(metric, tri, MATERIALS / "renders", size)
        d_a, d_b = d[metric.modes[0]]
        agree = triplets.two_afc(d_a, d_b, tri.p_b)
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        for r, v in zip(tri.ref, agree):
            sums[r][0] += float(v)
            sums[r][1] += 1
        out[str(size)] = {r: [round(s, 6), n] for r, (s, n) in sorted(sums.items())}
    return out


def judge(metric: NetMetric | STLPIPS, tri, proxy, per_family: int, cache: dict) -> dict:
    """The scores of one line, for the metric's first mode."""
    mode = metric.modes[0]
    ps = psych.score_metric(metric, sizes=list(SIZES), per_family=per_family, cache=cache)
    px = score(metric, proxy, progress=False)[mode]
    return {
        "mode": mode,
        "triplets": per_reference(metric, tri),
        "psych": {str(s): {f: round(e["scores"][str(s)][mode]["score"], 5) for f, e in ps["families"].items()}
                  for s in SIZES},
        "proxy_2afc": round(px["2afc"], 5),
        "flips": {k: round(v, 5) for k, v in px["shift_flips"].items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="*", default=[])
    ap.add_argument("--refs", nargs="*", default=[], metavar="MODEL",
                    help="model strings (or stlpips-alex, stlpips-vgg) scored as references")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/distill/scores.jsonl"))
    ap.add_argument("--per-family", type=int, default=100)
    ap.add_argument("--images", type=Path, default=Path("/tmp/tin/val"), help="natural images for the proxy")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--watch", type=float, default=0, metavar="S", help="look for new checkpoints every S seconds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.is_file():
        done = {json.loads(line)["key"] for line in args.out.read_text().splitlines() if line.strip()}
    tri = triplets.read_triplets(MATERIALS / "triplets_train.csv")
    proxy = judged_proxy_set(args.images)
    cache: dict = {}

    def write(row: dict) -> None:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        done.add(row["key"])

    for ref in args.refs:
        key = Path(ref).stem if ref.endswith(".json") else ref  # a card file: its name
        if key in done:
            continue
        t0 = time.time()
        if ref.startswith("stlpips-"):
            metric = STLPIPS(ref.removeprefix("stlpips-"))
            sha256 = metric.sha256
        else:
            model = PerceptualDistance.from_pretrained(ref)
            metric, sha256 = NetMetric(model, modes=(model.mode,)), model.card.sha256
        write({"key": key, "kind": "reference", "model": key, "sha256": sha256,
               **judge(metric, tri, proxy, args.per_family, cache), "package_version": __version__,
               "shift_protocol": SHIFT_PROTOCOL, "date": time.strftime("%Y-%m-%d")})
        print(f"{ref}: scored in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    while True:
        todo = []
        for run in args.runs:
            for rec_file in sorted(run.glob("step-*.json")):
                rec = json.loads(rec_file.read_text())
                if f"{run.name}:{rec['step']}" not in done:
                    todo.append((run, rec))
        if not todo:
            if not args.watch:
                return 0
            time.sleep(args.watch)
            continue
        todo.sort(key=lambda item: (item[1]["step"] / json.loads((item[0] / "recipe.json").read_text())["steps"],
                                    item[0].name), reverse=True)  # the last checkpoints first
        for run, rec in todo:
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                export(run, rec["step"], "candidate", Path(tmp))
                model = PerceptualDistance.from_pretrained(str(Path(tmp) / "candidate.json"))
            recipe = json.loads((run / "recipe.json").read_text())
            write({"key": f"{run.name}:{rec['step']}", "kind": "checkpoint", "run": run.name, "step": rec["step"],
                   "steps": recipe["steps"], "fidelity": rec["fidelity"], "arch_args": recipe["arch_args"],
                   **judge(NetMetric(model, modes=(model.mode,)), tri, proxy, args.per_family, cache),
                   "package_version": __version__,
                   "shift_protocol": SHIFT_PROTOCOL, "date": time.strftime("%Y-%m-%d")})
            t = np.mean([v[0] / v[1] for v in json.loads(args.out.read_text().splitlines()[-1])["triplets"]["64"].values()])
            print(f"{run.name}:{rec['step']}: scored in {time.time() - t0:.0f}s (material @64 per-ref mean {100 * t:.1f})",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
