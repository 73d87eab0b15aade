"""Choose, per bundled name, the checkpoint and mode that agree best with people, and export it
into ``weights/`` (card + safetensors) with its scores in the card.

    python benchmarks/select_models.py --human benchmarks/sweep/human_sweep.csv --proxy benchmarks/sweep/sweep.csv \
        --pick resnet6-es=runs/r6-w05-pm1,runs/r6-w1 --pick resnet6-w025=runs/r6-w025-pm1

Criterion: the mean of the human-triplet agreement on the *selection* part (64 and 256 px) and
the psychophysics mean (64 and 256 px). The held-out part is never used to choose (it would stop
being held out); it is reported. Hard constraint: in every mode, at most 5% of the proxy set's
2AFC decisions flip under a 1, 2 or 3 px shift (from ``--proxy``, the rows of ``sweep.py``;
the flips need no judge; only rows scored under the current shift protocol count). The LPIPS-judged proxy 2AFC is carried into the card as a
regression check only. Candidates within ``TIE`` (0.1 points) of the best count as tied, below
what the criterion resolves (one psych triplet moves it 0.03): the one with the fewest FLOPs per
256 px pair wins, then the earlier checkpoint, then by feature blur. ``--pick
NAME=RUN1,RUN2`` chooses across several runs; a checkpoint scored with several ``feature_blur``
settings (``sweep.py --feature-blur``) is a candidate per setting, exported with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from functools import cache
from pathlib import Path

from models_table import gflops  # benchmarks/models_table.py, beside this script

from perceptual_sim.cli.options import feature_blur, format_feature_blur
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL
from perceptual_sim.lab.train import export
from perceptual_sim.metric import PerceptualDistance

MAX_FLIPS = 0.05
TIE = 0.001
"""Criterion difference (a fraction; 0.1 points x100) below which candidates count as tied."""
SUMMARIES = {
    "k22_resnet": "K22 ResNet-6 (width {width}) trained on Tiny-ImageNet at 64 px{aug}, stopped at epoch {epoch:.2f} "
                  "({top1:.1f}% val top-1), chosen by agreement with human judgments and psychophysics",
    "vit": "Narrow ViT (patch {patch_size}, dim {embed_dim}, {depth} blocks) trained on Tiny-ImageNet at 64 px{aug}, "
           "stopped at epoch {epoch:.2f} ({top1:.1f}% val top-1), chosen by agreement with human judgments and "
           "psychophysics",
}


def human_score(row: dict[str, str]) -> float:
    """Mean of (human selection agreement, psych mean), each averaged over 64 and 256 px."""
    human = (float(row["human_selection_64"]) + float(row["human_selection_256"])) / 2
    psych = (float(row["psych_64"]) + float(row["psych_256"])) / 2
    return (human + psych) / 2


Key = tuple[str, int, str]
"""A candidate: (run, step, feature_blur as sweep.py writes it)."""


def key(row: dict[str, str]) -> Key:
    return row["run"], int(row["step"]), format_feature_blur(feature_blur(row["feature_blur"]))


def choose(human: list[dict[str, str]], proxy: dict[Key, dict[str, dict[str, str]]], cost: Callable[[Key], float],
           max_flips: float = MAX_FLIPS) -> tuple[dict[str, str], dict[str, dict[str, str]], list[str]]:
    """(best row, its proxy rows by mode, why other candidates were refused); ``cost`` breaks ties."""
    refused = []
    by_ckpt: dict[Key, list[dict[str, str]]] = defaultdict(list)
    for r in human:
        by_ckpt[key(r)].append(r)
    allowed = []
    for k in sorted(by_ckpt):
        name = f"{k[0]} step {k[1]}" + (f" feature_blur {k[2]}" if k[2] != "0" else "")
        flips = proxy.get(k)
        if flips is None:
            refused.append(f"{name}: no shift-flip rows (run sweep.py on it)")
            continue
        worst = max(float(m[f"flips_{s}"]) for m in flips.values() for s in (1, 2, 3))
        if worst > max_flips:
            refused.append(f"{name}: {100 * worst:.1f}% flips under shifts")
            continue
        allowed.extend(by_ckpt[k])
    if not allowed:
        raise SystemExit("error: no checkpoint meets the shift constraint:\n  " + "\n  ".join(refused))
    top = max(map(human_score, allowed))
    tied = [r for r in allowed if human_score(r) >= top - TIE]
    best = min(tied, key=lambda r: (cost(key(r)), *key(r)[1:], -human_score(r)))
    for r in tied:
        if key(r) != key(best) and human_score(r) > human_score(best):
            refused.append(f"{r['run']} step {r['step']} feature_blur {key(r)[2]} {r['mode']}: "
                           f"criterion {100 * human_score(r):.2f}, tied with the chosen one and costlier")
    return best, proxy[key(best)], refused


def gflops_256(run: Path, step: int, blur: str) -> float:
    """GFLOPs of one 256 px pair for checkpoint ``step`` of ``run`` exported with ``blur``."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            export(run, step, "candidate", Path(tmp), feature_blur=feature_blur(blur))
        except ValueError as exc:  # export says what is missing
            raise SystemExit(f"error: step {step} of {run} ties with the best candidate and its FLOPs break the tie, "
                             f"but it cannot be exported ({exc}); restore the run or leave it out of --pick") from None
        return gflops(PerceptualDistance.from_pretrained(str(Path(tmp) / "candidate.json")), 256)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--human", type=Path, required=True, help="human_sweep.csv of sweep.py --human")
    ap.add_argument("--proxy", type=Path, required=True, help="sweep.csv of sweep.py (shift flips)")
    ap.add_argument("--pick", action="append", required=True, metavar="NAME=RUN")
    ap.add_argument("--max-flips", type=float, default=MAX_FLIPS,
                    help=f"the shift constraint: largest share of flipped decisions allowed (default {MAX_FLIPS})")
    ap.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    args = ap.parse_args()
    with open(args.human) as f:
        human = list(csv.DictReader(f))
    proxy: dict[Key, dict[str, dict[str, str]]] = defaultdict(dict)
    with open(args.proxy) as f:
        for r in csv.DictReader(f):
            if r["shift_protocol"] == SHIFT_PROTOCOL:
                proxy[key(r)][r["mode"]] = r
    for pick in args.pick:
        name, _, runs = pick.partition("=")
        paths = {Path(run).name: Path(run) for run in runs.split(",")}
        mine = [r for r in human if r["run"] in paths]
        if not mine:
            raise SystemExit(f"error: no rows for runs {sorted(paths)} in {args.human}")
        best, flips, refused = choose(mine, proxy, cache(lambda k, paths=paths: gflops_256(paths[k[0]], *k[1:])), args.max_flips)
        run_path, step, blur, mode = paths[best["run"]], int(best["step"]), key(best)[2], best["mode"]
        recipe = json.loads((run_path / "recipe.json").read_text())
        aug = f", photometric augmentation {recipe['photometric']:g}" if recipe.get("photometric") else ""
        if recipe.get("shift_consistency"):
            aug += f", shift consistency {recipe['shift_consistency']:g}"
        aug += f"; feature blur sigma {blur}{' per stage' if ',' in blur else ''} (spatial mode)" if blur != "0" else ""
        fmt = {"width": 1.0, **recipe["arch_args"], "epoch": float(best["epoch"]),
               "top1": 100 * float(best["val_top1"]), "aug": aug}
        rows = {r["mode"]: r for r in mine if key(r) == key(best)}
        scores = {
            "human_triplets": {m: {k: float(v) for k, v in r.items() if k.startswith("human_")} for m, r in rows.items()},
            "psych": {m: {k: float(v) for k, v in r.items() if k.startswith("psych_")} for m, r in rows.items()},
            "proxy": {m: {k: float(v) for k, v in r.items() if k in ("2afc", "flips_1", "flips_2", "flips_3",
                                                                      "monotonicity")} for m, r in flips.items()},
            "protocol": "human_triplets: material-appearance 2AFC (Lagunas et al. 2019), selection / held-out split "
                        "by reference (perceptual-sim eval triplets); psych: perceptual-sim eval psych "
                        "(100 per family for reference rows, 50 in the sweep); proxy: 2000 Tiny-ImageNet val "
                        "triplets judged by LPIPS-Alex-lin and LPIPS-VGG-lin (a regression check only); flips: "
                        f"shift protocol {SHIFT_PROTOCOL} (ST-LPIPS: crop 3 columns, move p0 and p1 1-3 px)",
        }
        card = export(run_path, step, name, args.dest, default_mode=mode, feature_blur=feature_blur(blur), summary=SUMMARIES[recipe["arch"]].format(**fmt),
                      overwrite=True, scores=scores,
                      data="Tiny-ImageNet, 202-class copy (101,000 train images, 64 x 64; val 10,100)")
        for line in refused:
            print(f"{name}: refused {line}")
        print(f"{name}: {run_path.name} step {step}{f' feature_blur {blur}' if blur != '0' else ''} (epoch {float(best['epoch']):.2f}, top-1 "
              f"{100 * float(best['val_top1']):.1f}%), mode {mode}, criterion {100 * human_score(best):.2f}, "
              f"sha256 {card.sha256[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
