"""Score every checkpoint of training runs on the offline proxies (all three modes).

    python benchmarks/sweep.py --images /tmp/tin/val --runs /work/runs/resnet6-w025 ... --out benchmarks/sweep

Appends to OUT/sweep.csv (resumable: rows already there are skipped) and draws
OUT/proxy_vs_top1.png and OUT/proxy_vs_step.png (needs matplotlib). With ``--watch S`` it
keeps going beside a training run: every S seconds it scores the checkpoints written since
(stop it with Ctrl-C; the CSV and plots are current after every checkpoint).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

from perceptual_sim.evaluate.metrics import NetMetric
from perceptual_sim.evaluate.proxy import judged_proxy_set, score
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.train import checkpoints, export

FIELDS = ["run", "step", "epoch", "val_top1", "mode", "2afc", "flips_1", "flips_2", "flips_3", "monotonicity"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/sweep"))
    ap.add_argument("--triplets", type=int, default=2000)
    ap.add_argument("--mono-images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--watch", type=float, default=0, metavar="S",
                    help="after scoring, look for new checkpoints every S seconds until interrupted")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "sweep.csv"
    done = set()
    if table.is_file():
        with open(table) as f:
            done = {(r["run"], int(r["step"])) for r in csv.DictReader(f)}
    data = judged_proxy_set(args.images, triplets=args.triplets, mono_images=args.mono_images)
    with open(table, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if not done:
            writer.writeheader()
        while True:
            todo = [(run, rec) for run in args.runs for rec in checkpoints(run) if (run.name, rec["step"]) not in done]
            if not todo and not args.watch:
                break
            if not todo:
                time.sleep(args.watch)
                continue
            for run, rec in todo:
                t0 = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    export(run, rec["step"], "candidate", Path(tmp))
                    model = PerceptualDistance.from_pretrained(str(Path(tmp) / "candidate.json"))
                scores = score(NetMetric(model), data, progress=False)
                for mode, s in scores.items():
                    writer.writerow({"run": run.name, "step": rec["step"], "epoch": f"{rec['epoch']:.4f}",
                                     "val_top1": f"{rec['val_top1']:.4f}", "mode": mode,
                                     "2afc": f"{s['2afc']:.5f}", "flips_1": f"{s['shift_flips']['1']:.5f}",
                                     "flips_2": f"{s['shift_flips']['2']:.5f}",
                                     "flips_3": f"{s['shift_flips']['3']:.5f}",
                                     "monotonicity": f"{s['monotonicity']:.5f}"})
                f.flush()
                done.add((run.name, rec["step"]))
                best = max(scores.items(), key=lambda kv: kv[1]["2afc"])
                print(f"{run.name} step {rec['step']} top-1 {100 * rec['val_top1']:.1f}%: best 2AFC "
                      f"{100 * best[1]['2afc']:.2f} ({best[0]}) [{time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
                if args.watch:
                    plot(table, args.out)
    plot(table, args.out)
    return 0


def plot(table: Path, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return
    with open(table) as f:
        rows = list(csv.DictReader(f))
    runs = sorted({r["run"] for r in rows})
    modes = ["spatial", "style", "meanpool"]
    for xkey, fname, label in (("val_top1", "proxy_vs_top1.png", "Tiny-ImageNet val top-1"),
                               ("epoch", "proxy_vs_step.png", "epoch")):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
        for ax, mode in zip(axes, modes):
            for run in runs:
                pts = sorted((float(r[xkey]), float(r["2afc"])) for r in rows if r["run"] == run and r["mode"] == mode)
                if pts:
                    ax.plot([p[0] * (100 if xkey == "val_top1" else 1) for p in pts], [100 * p[1] for p in pts],
                            marker="o", ms=3, label=run)
            ax.set_title(f"{mode} distance")
            ax.set_xlabel(label + (" (%)" if xkey == "val_top1" else ""))
            if xkey == "epoch":
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("reference-judge 2AFC (x100)")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
