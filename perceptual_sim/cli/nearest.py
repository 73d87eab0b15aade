"""``perceptual-sim nearest GENERATED TRAINING --top K``: each generated image's nearest training
images (did the model copy its training set?)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .options import add_image_options, add_model_options, confirm, load_model, positive_int, safe, torch_device
from .results import add_outputs, check_outputs, fail_code, folder, list_failed, model_line, write_csv, write_json

SHOWN_ROWS = 10
"""Generated images shown with their neighbours in the report (those with the closest neighbour)."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "nearest", description="For each image of GENERATED (searched recursively), its K nearest images of "
        "TRAINING and their distances: a generated image at a distance near 0 from a training image is a copy. "
        "Each image is embedded once; training images are compared in chunks (bounded memory), exactly or "
        "through a FAISS index whose candidates are re-ranked by their exact distances. Files that fail are "
        "listed and left out (exit code 1). Outputs are checked before any work and written atomically.")
    p.add_argument("generated", type=folder, metavar="GENERATED", help="the generated images")
    p.add_argument("training", type=folder, metavar="TRAINING", help="the training images")
    p.add_argument("--top", type=positive_int, default=5, metavar="K", help="neighbours per image (default 5)")
    p.add_argument("--index", choices=("exact", "faiss"), default="exact",
                   help="exact: every pair; faiss: candidates from a FAISS index of PCA-reduced features, re-ranked "
                        'exactly (pip install "perceptual-sim[nearest]"; default exact)')
    p.add_argument("--candidates", type=positive_int, default=None,
                   help="with --index faiss: candidates per image re-ranked exactly (default max(4 K, 20))")
    p.add_argument("--chunk", type=positive_int, default=4096,
                   help="training images embedded and compared at a time (bounds memory; default 4096)")
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--batch-size", type=positive_int, default=64, help="generated images per forward pass (default 64)")
    add_outputs(p, "write a row per neighbour: generated, rank, training, distance")
    p.add_argument("--report", type=Path, metavar="FILE.html",
                   help="write one offline HTML page: the generated images closest to a training image beside "
                        "their neighbours, and a sortable table of every generated image")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --json / --report files")
    p.set_defaults(func=run, resize=False)
    return p


def run(args: argparse.Namespace) -> int:
    from ..generative import nearest

    check_outputs(args, ("--csv", "--json", "--report"))
    if args.candidates is not None and args.index != "faiss":
        from .options import UsageError

        raise UsageError("--candidates applies to --index faiss")
    device = torch_device(args.device)
    r = nearest(args.generated, args.training, k=args.top, model=load_model(args, device), mode=args.mode, device=device,
                batch_size=args.batch_size, index=args.index, candidates=args.candidates, chunk=args.chunk,
                max_pixels=args.max_pixels, errors="record")
    list_failed(r.failed)
    rows = [[str(g), rank + 1, str(r.training[int(j)]), float(d)] for g, idx, dist in zip(r.generated, r.indices,
            r.distances) for rank, (j, d) in enumerate(zip(idx, dist))]
    write_csv(args.csv, ["generated", "rank", "training", "distance"], rows, r.info, args.force)
    write_json(args.json, {**r.info, "generated": safe(str(args.generated)), "training": safe(str(args.training)),
                           "k": args.top, "index": r.index, "memory_bound_bytes": r.memory_bound,
                           "neighbours": [{"generated": safe(str(g)), "training": [safe(str(r.training[int(j)]))
                                           for j in idx], "distances": [float(d) for d in dist]}
                                          for g, idx, dist in zip(r.generated, r.indices, r.distances)],
                           "failed": [{"file": safe(f), "error": safe(e)} for f, e in r.failed]}, args.force)
    if args.report is not None:
        _report(args, r)
        confirm(args.report, f"{len(r.generated)} generated images")
    first = r.distances[:, 0]
    closest = int(first.argmin())
    print(f"generated {len(r.generated)} against {len(r.training)} training images, k {r.indices.shape[1]}, "
          f"index {r.index}, {len(r.failed)} failed")
    print(f"nearest  mean {first.mean():.6g}, min {first[closest]:.6g}  {safe(str(r.generated[closest]))} ~ "
          f"{safe(str(r.training[int(r.indices[closest, 0])]))}")
    print(f"memory  about {r.memory_bound / 2**20:.0f} MiB of features and distances")
    model_line(r.info)
    return fail_code(r.failed)


def _report(args: argparse.Namespace, r: Any) -> None:
    from ..images import decode_image
    from ..pictures import figure, write_page

    def picture(path: Any, caption: str) -> str:
        return figure(decode_image(path, max_pixels=args.max_pixels).pixels, caption)

    order = r.distances[:, 0].argsort(kind="stable")
    shown = []
    for i in order[:SHOWN_ROWS]:
        cells = [picture(r.generated[i], f"generated: {safe(str(r.generated[i]))}")]
        cells += [picture(r.training[int(j)], f"#{rank + 1} {d:.4g}: {safe(str(r.training[int(j)]))}")
                  for rank, (j, d) in enumerate(zip(r.indices[i], r.distances[i]))]
        shown.append(f'<div class="pair"><h3>nearest {r.distances[i, 0]:.6g}</h3><div class="row">{"".join(cells)}'
                     "</div></div>")
    first = r.distances[:, 0]
    summary = (f"<table><tr><th>generated</th><td>{len(r.generated)}</td></tr><tr><th>training</th>"
               f"<td>{len(r.training)}</td></tr><tr><th>k</th><td>{r.indices.shape[1]}</td></tr><tr><th>index</th>"
               f"<td>{r.index}</td></tr><tr><th>nearest distance: mean</th><td>{first.mean():.6g}</td></tr>"
               f"<tr><th>min</th><td>{first.min():.6g}</td></tr><tr><th>failed files</th><td>{len(r.failed)}</td>"
               "</tr></table>")
    heading = f"Closest to a training image ({min(SHOWN_ROWS, len(order))} of {len(order)})"
    write_page(args.report, title=safe(f"{args.generated} against {args.training}"),
               info={"generated": safe(str(args.generated)), "training": safe(str(args.training)), **r.info},
               sections=[("Summary", summary), (heading, "\n".join(shown))],
               headers=[("#", True), ("generated", False), ("nearest training image", False), ("distance", True)],
               rows=[[(str(i + 1), i + 1), (safe(str(g)), None), (safe(str(r.training[int(idx[0])])), None),
                      (f"{dist[0]:.6g}", float(dist[0]))] for i, (g, idx, dist) in
                     enumerate(zip(r.generated, r.indices, r.distances))], overwrite=args.force)
