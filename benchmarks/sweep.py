"""Score the checkpoints of training runs on the offline proxies, or on the human yardsticks
(all three modes).

    python benchmarks/sweep.py --images /tmp/tin/val --runs /work/runs/resnet6-w025 ... --out benchmarks/sweep
    python benchmarks/sweep.py --human --runs runs/r6-w025-pm1 ... --epochs 1 2 4 6 8 10 --out benchmarks/sweep

Proxies: appends to OUT/sweep.csv and draws OUT/proxy_vs_top1.png and OUT/proxy_vs_step.png.
``--human``: agreement with the material-appearance triplets (selection and held-out parts, 64 and
256 px) and the psychophysics mean (64 and 256 px, ``--per-family`` triplets per family), appended
to OUT/human_sweep.csv, drawn as OUT/human_vs_top1.png. Both are resumable (rows already there are
skipped; proxy rows only if they were scored under the current shift protocol) and need matplotlib for the plots. ``--epochs`` scores only the checkpoints at those
epochs. With ``--watch S`` it keeps going beside a training run: every S seconds it scores the
checkpoints written since (stop it with Ctrl-C; the CSV and plots are current after every checkpoint).
``--feature-blur S`` scores the checkpoints exported with that card setting (a row per checkpoint
and blur; the plots show unblurred rows).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import torch

from perceptual_sim.cli.options import feature_blur, format_feature_blur
from perceptual_sim.lab.evaluate.metrics import NetMetric
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL, judged_proxy_set, score
from perceptual_sim.lab.train import checkpoints, export
from perceptual_sim.metric import PerceptualDistance

FIELDS = ["run", "step", "epoch", "val_top1", "feature_blur", "mode", "2afc", "flips_1", "flips_2", "flips_3",
          "monotonicity", "shift_protocol"]
HUMAN_FIELDS = ["run", "step", "epoch", "val_top1", "feature_blur", "mode", "human_selection_64", "human_held_out_64",
                "human_selection_256", "human_held_out_256", "psych_64", "psych_256"]
MATERIALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"


class Human:
    """Human triplets + psychophysics at 64 and 256 px, the psych triplets generated once."""

    def __init__(self, per_family: int) -> None:
        self.per_family, self.cache = per_family, {}

    def __call__(self, model: PerceptualDistance) -> dict[str, dict[str, str]]:
        from perceptual_sim.lab.evaluate import psych, triplets

        metric = NetMetric(model)
        tri = triplets.score_metric(metric, MATERIALS / "triplets_train.csv", MATERIALS / "renders", sizes=[64, 256])
        ps = psych.score_metric(metric, sizes=[64, 256], per_family=self.per_family, cache=self.cache)
        return {mode: {f"human_{part}_{size}": f"{tri['scores'][str(size)][mode][part]['score']:.5f}"
                       for size in (64, 256) for part in ("selection", "held_out")}
                | {f"psych_{size}": f"{ps['mean'][str(size)][mode]:.5f}" for size in (64, 256)}
                for mode in metric.modes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, help="natural images for the proxies (not with --human)")
    ap.add_argument("--human", action="store_true", help="score on the human yardsticks instead of the proxies")
    ap.add_argument("--per-family", type=int, default=50, help="psychophysics triplets per family (--human)")
    ap.add_argument("--epochs", type=float, nargs="+", default=None, help="score only checkpoints at these epochs")
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/sweep"))
    ap.add_argument("--triplets", type=int, default=2000)
    ap.add_argument("--mono-images", type=int, default=100)
    ap.add_argument("--feature-blur", type=feature_blur, default=0.0, metavar="SIGMA",
                    help="export the checkpoints with this feature_blur: one sigma, or one per stage (default 0)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--watch", type=float, default=0, metavar="S",
                    help="after scoring, look for new checkpoints every S seconds until interrupted")
    args = ap.parse_args()
    blur = format_feature_blur(args.feature_blur)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.human and args.images is None:
        ap.error("--images is required for the proxies (or pass --human)")
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / ("human_sweep.csv" if args.human else "sweep.csv")
    fields = HUMAN_FIELDS if args.human else FIELDS
    done = set()
    if table.is_file():
        with open(table) as f:
            reader = csv.DictReader(f)
            if reader.fieldnames and reader.fieldnames != fields:
                ap.error(f"{table} has the columns {reader.fieldnames}, this version writes {fields}; "
                         "move it aside (it was written by an older version) or pass another --out")
            done = {(r["run"], int(r["step"])) for r in reader if r["feature_blur"] == blur
                    and (args.human or r["shift_protocol"] == SHIFT_PROTOCOL)}
    if args.human:
        judge = Human(args.per_family)
    else:
        data = judged_proxy_set(args.images, triplets=args.triplets, mono_images=args.mono_images)

        def judge(model: PerceptualDistance) -> dict[str, dict[str, str]]:
            return {mode: {"2afc": f"{s['2afc']:.5f}", "flips_1": f"{s['shift_flips']['1']:.5f}",
                           "flips_2": f"{s['shift_flips']['2']:.5f}", "flips_3": f"{s['shift_flips']['3']:.5f}",
                           "monotonicity": f"{s['monotonicity']:.5f}", "shift_protocol": SHIFT_PROTOCOL}
                    for mode, s in score(NetMetric(model), data, progress=False).items()}

    def wanted(rec: dict) -> bool:
        return args.epochs is None or any(abs(rec["epoch"] - e) < 1e-3 for e in args.epochs)

    with open(table, "a", newline="") as f:
        writer = csv.DictWriter(f, fields)
        if f.tell() == 0:
            writer.writeheader()
        while True:
            todo = [(run, rec) for run in args.runs for rec in checkpoints(run)
                    if (run.name, rec["step"]) not in done and wanted(rec)]
            if not todo and not args.watch:
                break
            if not todo:
                time.sleep(args.watch)
                continue
            for run, rec in todo:
                t0 = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    export(run, rec["step"], "candidate", Path(tmp), feature_blur=args.feature_blur)
                    model = PerceptualDistance.from_pretrained(str(Path(tmp) / "candidate.json"))
                scores = judge(model)
                for mode, values in scores.items():
                    writer.writerow({"run": run.name, "step": rec["step"], "epoch": f"{rec['epoch']:.4f}",
                                     "val_top1": f"{rec['val_top1']:.4f}", "feature_blur": blur,
                                     "mode": mode, **values})
                f.flush()
                done.add((run.name, rec["step"]))
                key = "human_selection_64" if args.human else "2afc"
                best = max(scores.items(), key=lambda kv: float(kv[1][key]))
                print(f"{run.name} step {rec['step']} top-1 {100 * rec['val_top1']:.1f}%: best {key} "
                      f"{100 * float(best[1][key]):.2f} ({best[0]}) [{time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
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
    with open(table) as f:  # a checkpoint re-scored under a newer shift protocol: its last row counts
        rows = list({(r["run"], r["step"], r["mode"]): r for r in csv.DictReader(f) if r["feature_blur"] == "0"}
                    .values())
    runs = sorted({r["run"] for r in rows})
    modes = ["spatial", "style", "meanpool"]
    if table.name == "human_sweep.csv":
        plot_human(rows, runs, out, plt)
        return
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


def plot_human(rows: list[dict[str, str]], runs: list[str], out: Path, plt) -> None:
    """Human agreement (selection part) and psych mean against top-1, per size, spatial mode."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    panels = [("human_selection_64", "human triplets, selection, 64 px"),
              ("human_selection_256", "human triplets, selection, 256 px"),
              ("psych_64", "psychophysics mean, 64 px"), ("psych_256", "psychophysics mean, 256 px")]
    for ax, (key, title) in zip(axes, panels):
        for run in runs:
            pts = sorted((float(r["val_top1"]), float(r[key])) for r in rows if r["run"] == run and r["mode"] == "spatial")
            if pts:
                ax.plot([100 * p[0] for p in pts], [100 * p[1] for p in pts], marker="o", ms=3, label=run)
        ax.set_title(title + " (spatial)")
        ax.set_xlabel("Tiny-ImageNet val top-1 (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("agreement (x100)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "human_vs_top1.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
