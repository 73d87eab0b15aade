"""Choose distilled students by people, cross-validated over materials, from distill_sweep.py's scores.

    python benchmarks/select_students.py --scores benchmarks/distill/scores.jsonl \
        --pick resnet6-pa=runs/ds-w16-d1221-t4-sc015 --pick resnet6-pa-w025=runs/ds-w16-d111-t3-sc015 \
        --teacher efficientnet-lite0 --out benchmarks/distill/selection.json --plot benchmarks/distill

Criterion: the material triplets' 2AFC agreement, mean of 64 and 256 px, pooled over the triplets of
the materials used to choose, minus the psychophysics shortfall: the sum over families and sizes of
how far each falls below ``--floor`` (a floor for every family, in the criterion's units). Gate: at
most ``--max-flips`` of the proxy's decisions flipped by a 1-3 px shift (with ``--shift-check``, a
candidate that ``shift_check.py`` measured again is gated on the flips pooled over both sets, 12,000
triplets). Cross-validation:
the 100 reference materials fall into 5 folds of 20 (by salted sha256 of the name); in each fold the
candidate is chosen on the other four and scored on it, so each material's score comes from a choice
that never saw it (out-of-fold). Intervals: 1,000 bootstrap resamples of the materials. The final
pick is the choice on all five folds; its out-of-fold score is the honest estimate of what the
procedure does on materials it has not seen. Candidates are the checkpoints of one recipe (one seed) and
scored models (e.g. a bundled model at several viewing conditions); the script never chooses among seeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

SIZES = ("64", "256")
FOLDS = 5
SALT = "perceptual_sim/material-folds-v1"
PROXY_TRIPLETS = 2000
"""Triplets of the proxy set behind distill_sweep.py's flips."""


def folds(refs: list[str]) -> dict[str, int]:
    order = sorted(refs, key=lambda r: hashlib.sha256(f"{SALT}/{r}".encode()).hexdigest())
    return {r: i % FOLDS for i, r in enumerate(order)}


def agreement(row: dict, refs: set[str] | None = None) -> float:
    """Mean over sizes of the agreement pooled over the triplets of ``refs`` (all when None)."""
    out = []
    for s in SIZES:
        per = row["triplets"][s]
        keep = [v for r, v in per.items() if refs is None or r in refs]
        out.append(sum(v[0] for v in keep) / sum(v[1] for v in keep))
    return float(np.mean(out))


def worst_family(row: dict) -> float:
    return min(v for s in SIZES for v in row["psych"][s].values())


def shortfall(row: dict, floor: float) -> float:
    """Sum over psychophysics families and sizes of how far each score falls below ``floor``."""
    return sum(max(0.0, floor - v) for s in SIZES for v in row["psych"][s].values())


def bootstrap(per_ref: dict[str, dict[str, list[float]]], refs: list[str], reps: int = 1000,
              seed: int = 0) -> tuple[float, float]:
    """95% interval of the size-averaged pooled agreement under resampling of materials."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(reps, len(refs)))
    means = []
    for s in SIZES:
        sums = np.array([per_ref[s][r][0] for r in refs])
        counts = np.array([per_ref[s][r][1] for r in refs])
        means.append(sums[idx].sum(1) / counts[idx].sum(1))
    lo, hi = np.quantile(np.mean(means, 0), [0.025, 0.975])
    return float(lo), float(hi)


def cross_validate(cands: list[dict], refs: list[str], fold_of: dict[str, int], floor: float,
                   max_flips: float) -> dict:
    """Choose in each fold on the other folds; the out-of-fold per-material sums of the choices."""
    pool = [c for c in cands if max(c["flips"].values()) <= max_flips]
    gated = bool(pool)
    pool = pool or cands  # no candidate meets the shift constraint: say so, and choose among all

    def criterion(c: dict, refs_: set[str] | None = None) -> tuple[float, int]:
        return agreement(c, refs_) - shortfall(c, floor), -c.get("step", 0)

    chosen, oof = [], {s: {} for s in SIZES}
    for k in range(FOLDS):
        train = {r for r in refs if fold_of[r] != k}
        pick = max(pool, key=lambda c: criterion(c, train))
        chosen.append(pick["key"])
        for s in SIZES:
            for r in refs:
                if fold_of[r] == k:
                    oof[s][r] = pick["triplets"][s][r]
    final = max(pool, key=criterion)
    per_size = {s: sum(v[0] for v in oof[s].values()) / sum(v[1] for v in oof[s].values()) for s in SIZES}
    return {"gated": gated, "fold_choices": chosen, "final": final["key"], "oof_per_ref": oof,
            "oof": {**per_size, "mean": float(np.mean(list(per_size.values())))},
            "oof_ci": bootstrap(oof, refs)}


def paired(a: dict[str, dict[str, list[float]]], b: dict[str, dict[str, list[float]]], refs: list[str]) -> dict:
    """Difference of size-averaged agreement a - b with a paired bootstrap interval over materials."""
    diff = {s: {r: [a[s][r][0] - b[s][r][0], a[s][r][1]] for r in refs} for s in SIZES}
    point = float(np.mean([sum(v[0] for v in diff[s].values()) / sum(v[1] for v in diff[s].values()) for s in SIZES]))
    return {"difference": point, "ci": bootstrap(diff, refs)}


def pool_flips(by_key: dict[str, dict], path: Path) -> None:
    """Replace the flips of every row that ``shift_check.py`` measured again (same name, weights and mode)
    with the estimate pooled over both proxy sets, weighted by their triplets (the first kept as ``flips_proxy``)."""
    n = PROXY_TRIPLETS
    for check in (json.loads(line) for line in path.read_text().splitlines() if line.strip()):
        row = by_key.get(check["model"])
        if row is None or row["sha256"] != check["sha256"] or row["mode"] != check["mode"] or "flips_proxy" in row:
            continue  # not a candidate's row, or already pooled (the first check of a model counts)
        row["flips_proxy"] = row["flips"]
        row["flips"] = {k: round((v * n + check["flips"][k] * check["triplets"]) / (n + check["triplets"]), 5)
                        for k, v in row["flips"].items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", type=Path, default=Path("benchmarks/distill/scores.jsonl"))
    ap.add_argument("--pick", action="append", default=[], metavar="NAME=CANDIDATE[,CANDIDATE...]",
                    help="candidates: runs (every scored checkpoint) and reference keys of the scores file")
    ap.add_argument("--teacher", default="efficientnet-lite0")
    ap.add_argument("--floor", type=float, default=0.95, help="every psychophysics family at least this")
    ap.add_argument("--max-flips", type=float, default=0.05)
    ap.add_argument("--shift-check", type=Path, default=None, metavar="JSONL",
                    help="shift_check.py's rows: those candidates are gated on the flips pooled over both sets")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/distill/selection.json"))
    ap.add_argument("--plot", type=Path, default=None, help="folder for human_vs_fidelity.png")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.scores.read_text().splitlines() if line.strip()]
    by_key = {r["key"]: r for r in rows}  # a key scored twice: the last line counts
    if args.shift_check:
        pool_flips(by_key, args.shift_check)
    refs = sorted(next(iter(by_key.values()))["triplets"]["64"])
    fold_of = folds(refs)
    teacher = by_key.get(args.teacher)
    result: dict = {"floor": args.floor, "max_flips": args.max_flips, "folds": FOLDS, "salt": SALT, "picks": {},
                    "references": {}}
    for key, row in by_key.items():
        if row["kind"] == "reference":
            result["references"][key] = {"material": {s: agreement({"triplets": {x: row["triplets"][s] for x in SIZES}})
                                                      for s in SIZES} | {"mean": agreement(row)},
                                         "ci": bootstrap(row["triplets"], refs), "worst_family": worst_family(row),
                                         "psych_mean": {s: float(np.mean(list(row["psych"][s].values()))) for s in SIZES},
                                         "flips": row["flips"]}
    for spec in args.pick:
        name, _, runs = spec.partition("=")
        wanted = {Path(x).name if "/" in x else x for x in runs.split(",")}
        cands = [r for r in by_key.values()
                 if (r["kind"] == "checkpoint" and r["run"] in wanted) or (r["kind"] == "reference" and r["key"] in wanted)]
        if not cands:
            ap.error(f"--pick {spec}: no scored checkpoints of those runs in {args.scores}")
        cv = cross_validate(cands, refs, fold_of, args.floor, args.max_flips)
        final = by_key[cv["final"]]
        entry = {**{k: v for k, v in cv.items() if k != "oof_per_ref"}, "candidates": sorted(c["key"] for c in cands),
                 "final_psych": final["psych"], "final_flips": final["flips"], "final_worst_family": worst_family(final),
                 **({"final_flips_2000": final["flips_proxy"]} if "flips_proxy" in final else {}),
                 "final_shortfall": shortfall(final, args.floor)}
        if teacher is not None:
            entry["oof_minus_teacher"] = paired(cv["oof_per_ref"], teacher["triplets"], refs)
        result["picks"][name] = entry
        tag = "" if cv["gated"] else " (no candidate meets the shift constraint)"
        print(f"{name}: {cv['final']}{tag}; out-of-fold material {100 * cv['oof']['64']:.1f} / {100 * cv['oof']['256']:.1f} "
              f"(mean {100 * cv['oof']['mean']:.1f} [{100 * cv['oof_ci'][0]:.1f}, {100 * cv['oof_ci'][1]:.1f}]); "
              f"fold choices {cv['fold_choices']}; worst psych family {100 * worst_family(final):.1f}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(by_key, args.plot)
    return 0


PLOT_REFERENCES = (("efficientnet-lite0", "black"), ("efficientnet-lite0-ppd60", "grey"), ("resnet6-pa", "tab:red"),
                   ("resnet6-pa-ppd60-fb05", "tab:brown"), ("lpips-alex", "tab:purple"))
"""Reference rows drawn as horizontal lines (when scored); ``resnet6-pa`` is the row scored without a
viewing condition (0.5's default), ``resnet6-pa-ppd60-fb05`` 0.6's."""


def plot(by_key: dict[str, dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted({r["run"] for r in by_key.values() if r["kind"] == "checkpoint"})
    panels = [("material triplets, 64 px", lambda r: agreement({"triplets": {s: r["triplets"]["64"] for s in SIZES}})),
              ("material triplets, 256 px", lambda r: agreement({"triplets": {s: r["triplets"]["256"] for s in SIZES}})),
              ("psychophysics mean (64 and 256 px)", lambda r: np.mean([np.mean(list(r["psych"][s].values())) for s in SIZES])),
              ("weakest psychophysics family", worst_family)]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.4))
    for ax, (title, value) in zip(axes, panels):
        for run in runs:
            pts = sorted((r["fidelity"], value(r)) for r in by_key.values() if r.get("run") == run)
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", ms=3, label=run)
        for (key, colour) in PLOT_REFERENCES:
            if key in by_key:
                ax.axhline(100 * value(by_key[key]), ls="--", lw=1, color=colour, label=key)
        ax.invert_xaxis()
        ax.set_title(title)
        ax.set_xlabel("distance to the teacher's maps on val images (closer ->)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("agreement with people (x100)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / "human_vs_fidelity.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
