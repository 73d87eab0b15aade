"""Nearest training images at scale: 10k generated against 100k training images (Tiny-ImageNet, 64 px),
exact against FAISS-retrieved and exactly re-ranked, time and peak memory, recall@K.

    python benchmarks/nearest_scale.py --tin /tmp/tin --json benchmarks/nearest_scale.json \
        --markdown benchmarks/nearest_scale.md

'Generated': the 10,000 validation images' first half (5,000) and every 20th training image
(5,000: copies of training images, whose nearest neighbour must be themselves at distance 0).
'Training': the first 100,000 training images in order of path. Each index runs in a fresh process (one intra-op thread),
which reports its wall time and peak resident memory (``ru_maxrss``); recall@K is the share of the
exact K nearest that FAISS finds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from perceptual_sim.generative import nearest
gen, train, index, k, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], int(sys.argv[4]), sys.argv[5]
start = time.perf_counter()
r = nearest(gen, train, k=k, index=index, device="cpu", batch_size=256)
seconds = time.perf_counter() - start
np.savez(out, indices=r.indices, distances=r.distances)
print(json.dumps({"index": index, "seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "memory_bound_mib": r.memory_bound / 2**20, "failed": len(r.failed), "info": r.info}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tin", type=Path, default=Path("/tmp/tin"))
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    train = sorted(str(f) for f in (args.tin / "train").glob("*/*.JPEG"))[:100_000]
    val = sorted(str(f) for f in (args.tin / "val").glob("*/*.JPEG"))
    copies = train[::20]
    gen = val[: 10_000 - len(copies)] + copies
    assert len(train) == 100_000 and len(gen) == 10_000, (len(train), len(gen))
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "gen.json").write_text(json.dumps(gen))
        (Path(tmp) / "train.json").write_text(json.dumps(train))
        for index in ("exact", "faiss"):
            out = Path(tmp) / f"{index}.npz"
            done = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / "gen.json"), str(Path(tmp) / "train.json"),
                                   index, str(args.k), str(out)], check=True, capture_output=True, text=True)
            runs[index] = json.loads(done.stdout.strip().splitlines()[-1])
            print(runs[index], file=sys.stderr)
        import numpy as np

        from perceptual_sim.generative import recall_at_k

        exact, faiss = np.load(Path(tmp) / "exact.npz"), np.load(Path(tmp) / "faiss.npz")
        first = len(gen) - len(copies)
        own = np.array([train.index(c) for c in copies])
        result = {
            "command": "python benchmarks/nearest_scale.py --tin /tmp/tin --json benchmarks/nearest_scale.json "
                       "--markdown benchmarks/nearest_scale.md",
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, 2-core CPU, 1 intra-op thread, "
                       f"torch {__import__('torch').__version__}, faiss {__import__('faiss').__version__}",
            "generated": len(gen), "training": len(train), "k": args.k, "runs": runs,
            "recall_at_k": recall_at_k(exact["indices"], faiss["indices"]),
            "recall_at_1": float(np.mean(exact["indices"][:, 0] == faiss["indices"][:, 0])),
            "copies_found_at_rank_1": {idx: float(np.mean(r["indices"][first:, 0] == own)) for idx, r in
                                       (("exact", exact), ("faiss", faiss))},
            "copies_distance_max": float(exact["distances"][first:, 0].max()),
            "max_rank1_distance_difference": float(np.abs(exact["distances"][:, 0] - faiss["distances"][:, 0]).max()),
        }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        e, f = runs["exact"], runs["faiss"]
        args.markdown.write_text(
            f"# nearest: 10k generated x 100k training (Tiny-ImageNet, 64 px)\n\n"
            f"`{result['command']}`; {result['date']}; {result['machine']}; model {e['info']['model']} "
            f"({e['info']['mode']}), K = {args.k}.\n\n"
            "| index | time (s) | peak RSS (MiB) | stated bound (MiB) |\n|---|---|---|---|\n"
            f"| exact (chunked) | {e['seconds']:.0f} | {e['peak_mib']:.0f} | {e['memory_bound_mib']:.0f} |\n"
            f"| faiss (PCA-256 flat L2, 20 candidates, exact re-rank) | {f['seconds']:.0f} | {f['peak_mib']:.0f} | "
            f"{f['memory_bound_mib']:.0f} |\n\n"
            f"FAISS recall@{args.k} against exact: {result['recall_at_k']:.4f} (recall@1 {result['recall_at_1']:.4f}). "
            f"Generated copies of training images found as their own nearest at rank 1: exact "
            f"{result['copies_found_at_rank_1']['exact']:.4f}, faiss {result['copies_found_at_rank_1']['faiss']:.4f} "
            f"(largest copy distance {result['copies_distance_max']:.3g}).\n")


if __name__ == "__main__":
    main()
