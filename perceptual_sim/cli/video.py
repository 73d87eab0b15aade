"""``perceptual-sim video A B``: per-frame distances between two videos (or frame folders) and tLPIPS flicker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .options import add_image_options, add_model_options, confirm, load_model, positive_int, safe, torch_device
from .results import add_outputs, check_outputs, model_line, write_csv, write_json


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "video", description="Distance between frame t of A and frame t of B for every t, their mean and worst "
        "frames, and temporal flicker (tLPIPS: the mean over t of |d(B_t, B_t+1) - d(A_t, A_t+1)|, 0 when B changes "
        "from frame to frame as A does). A and B are video files (decoded by PyAV: "
        'pip install "perceptual-sim[video]") or folders of frames (sorted by name, numbers in order). Frame '
        "counts and sizes must match. Each frame is embedded once.")
    p.add_argument("a", type=Path, metavar="A", help="reference video or frame folder")
    p.add_argument("b", type=Path, metavar="B", help="video or frame folder compared with A")
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--batch-size", type=positive_int, default=32, help="frames per forward pass (default 32)")
    add_outputs(p, "write a row per frame: frame, distance, flicker_a, flicker_b (to the next frame)")
    p.add_argument("--plot", type=Path, metavar="OUT.png",
                   help="write a PNG plot of the distance and of both videos' flicker over time, worst frames circled")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --json / --plot files")
    p.set_defaults(func=run, resize=False)
    return p


def run(args: argparse.Namespace) -> int:
    from ..generative import video
    from ..pictures import save_plot

    check_outputs(args, ("--csv", "--json", "--plot"))
    device = torch_device(args.device)
    r = video(args.a, args.b, model=load_model(args, device), mode=args.mode, device=device, batch_size=args.batch_size,
              max_pixels=args.max_pixels)

    def flick(v: Any, t: int) -> float | str:
        return float(v[t]) if t < len(v) else ""

    write_csv(args.csv, ["frame", "distance", "flicker_a", "flicker_b"],
              [[t, float(d), flick(r.flicker_a, t), flick(r.flicker_b, t)] for t, d in enumerate(r.distances)],
              r.info, args.force)
    write_json(args.json, {**r.info, "a": safe(str(args.a)), "b": safe(str(args.b)), "frames": r.frames,
                           "mean": r.mean, "tlpips": r.tlpips, "worst": [{"frame": t, "distance": d} for t, d in r.worst],
                           "distances": r.distances.tolist(), "flicker_a": r.flicker_a.tolist(),
                           "flicker_b": r.flicker_b.tolist()}, args.force)
    if args.plot is not None:
        series = {"distance A_t to B_t": r.distances}
        if len(r.flicker_a):
            series |= {"flicker A (t to t+1)": r.flicker_a, "flicker B (t to t+1)": r.flicker_b}
        save_plot(args.plot, series, title=safe(f"{args.a.name} vs {args.b.name}: mean {r.mean:.4g}, "
                                               f"tLPIPS {r.tlpips:.4g}"), xlabel="frame",
                  ylabel=f"{r.info['model']} ({r.info['mode']})", marks=[t for t, _ in r.worst], overwrite=args.force)
        confirm(args.plot, f"{r.frames} frames")
    print(f"frames  {r.frames}")
    print(f"mean    {r.mean:.6g}")
    print("worst   " + ", ".join(f"frame {t} {d:.4g}" for t, d in r.worst))
    print(f"tLPIPS  {r.tlpips:.6g} (flicker A {r.flicker_a.mean() if len(r.flicker_a) else 0:.4g}, "
          f"B {r.flicker_b.mean() if len(r.flicker_b) else 0:.4g})")
    model_line(r.info)
    return 0
