"""Peak memory and time of one large pair, tiled (the default ``batch_pixels``) and not (outside CI).

    python benchmarks/tiling_memory.py --size 4096 --json benchmarks/tiling_memory.json

Each configuration runs in a fresh process, which loads the model, makes two random
SIZE x SIZE float32 images in [0, 1], then scores the pair once without gradients. Reported:
the process's peak resident memory (``ru_maxrss``), the part of it above the moment the inputs
existed (what scoring added), the wall time, and the distance, whose relative difference from
the untiled one is the tiling error.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from perceptual_sim import PerceptualDistance

model, size, batch_pixels, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
m = PerceptualDistance.from_pretrained(model, batch_pixels=batch_pixels or None)
with torch.inference_mode():
    m(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), mode=mode)  # warm-up: one-off allocations
g = torch.Generator().manual_seed(0)
x = torch.rand(1, 3, size, size, generator=g)
y = torch.randn(x.shape, generator=g).mul_(0.1).add_(x).clamp_(0, 1)  # in place: no temporaries
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the runtime, the model and the two inputs
start = time.perf_counter()
with torch.inference_mode():
    d = float(m(x, y, mode=mode)[0])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"distance": d, "seconds": seconds, "peak_mib": peak / 1024, "added_mib": (peak - base) / 1024,
                  "budget": m._budget(x.device), "threads": torch.get_num_threads()}))
"""


def run(model: str, size: int, batch_pixels: int, mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(size), str(batch_pixels), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet6-pa")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--mode", default="spatial")
    p.add_argument("--batch-pixels", type=int, nargs="+", default=[0, 1 << 20, 1 << 26],
                   help="configurations; 0 = the default (2**18 on CPU); 2**26 scores a 4096 px pair in one pass")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for bp in args.batch_pixels:
        r = run(args.model, args.size, bp, args.mode)
        r["tiled"] = 2 * args.size**2 > r["budget"]
        rows.append(r)
    untiled = [r for r in rows if not r["tiled"]]
    print(f"{args.model}, {args.mode}, one {args.size} x {args.size} pair (inputs: 2 x "
          f"{3 * 4 * args.size**2 / 2**20:.0f} MiB float32), {platform.processor() or platform.machine()}, "
          f"{rows[0]['threads']} threads\n")
    print("| batch_pixels | tiled | peak RSS (MiB) | added by scoring (MiB) | seconds | distance | rel. diff |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        diff = f"{abs(r['distance'] / untiled[0]['distance'] - 1):.1e}" if untiled else "-"
        print(f"| {r['budget']:,} | {'yes' if r['tiled'] else 'no'} | {r['peak_mib']:,.0f} | {r['added_mib']:,.0f} | "
              f"{r['seconds']:.1f} | {r['distance']:.6g} | {diff} |")
    if args.json is not None:
        args.json.write_text(json.dumps({"model": args.model, "size": args.size, "mode": args.mode, "rows": rows},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
