"""``perceptual-sim systems REF SYS_A [SYS_B ...]``: which system's outputs are closer to the references."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .options import (
    UsageError,
    add_image_options,
    add_model_options,
    confirm,
    load_model,
    positive_int,
    safe,
    torch_device,
)
from .results import add_outputs, check_outputs, fail_code, folder, list_failed, model_line, write_csv, write_json

SHOWN_ROWS = 5
"""Images shown in the report where the first two systems differ most."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "systems", description="Score each system's image against the reference at the same relative path "
        "(every reference needs an image in every system), and compare the systems pair by pair: the paired "
        "difference of mean distances with a 95% bootstrap interval over images (negative: the first is closer "
        "to the references), and the share of images where each is closer. Reference features are computed once. "
        "Files that fail are listed and their images left out of every system (exit code 1).")
    p.add_argument("reference", type=folder, metavar="REF", help="reference images")
    p.add_argument("systems", type=folder, nargs="+", metavar="SYS", help="one folder of outputs per system")
    p.add_argument("--names", default=None, metavar="A,B,...",
                   help="comma-separated names of the systems (default: their folder names)")
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    add_outputs(p, "write a row per image: image, then one distance per system")
    p.add_argument("--report", type=Path, metavar="FILE.html",
                   help="write one offline HTML page: the comparisons, the images where the first two systems "
                        "differ most, and a sortable table with a column per system")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --json / --report files")
    p.set_defaults(func=run, resize=False)
    return p


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..generative import compare_systems

    check_outputs(args, ("--csv", "--json", "--report"))
    names = None if args.names is None else [n.strip() for n in args.names.split(",")]
    if names is not None and (len(names) != len(args.systems) or not all(names) or len(set(names)) < len(names)):
        raise UsageError(f"--names {args.names!r}: give {len(args.systems)} distinct, non-empty names, one per system")
    labels = names or [s.name or str(s) for s in args.systems]
    if len(set(labels)) < len(labels):
        raise UsageError(f"the system folders share a name ({', '.join(labels)}); name them with --names A,B,...")
    device = torch_device(args.device)
    r = compare_systems(args.reference, args.systems, names=labels, model=load_model(args, device), mode=args.mode, device=device,
                        batch_size=args.batch_size, resamples=args.resamples, max_pixels=args.max_pixels,
                        errors="record")
    list_failed(r.failed)
    write_csv(args.csv, ["image", *r.systems], [[n, *("" if np.isnan(d) else float(d) for d in row)]
                                                for n, row in zip(r.names, r.distances)], r.info, args.force)
    write_json(args.json, {**r.info, "reference": safe(str(args.reference)),
                           "systems": {n: safe(str(s)) for n, s in zip(r.systems, args.systems)}, "means": r.means,
                           "comparisons": r.comparisons,
                           "images": [{"image": safe(n), "distances": {s: None if np.isnan(d) else float(d)
                                                                       for s, d in zip(r.systems, row)}}
                                      for n, row in zip(r.names, r.distances)],
                           "failed": [{"file": safe(f), "error": safe(e)} for f, e in r.failed]}, args.force)
    if args.report is not None:
        _report(args, r)
        confirm(args.report)
    for name in r.systems:
        print(f"{name:<12} mean {r.means[name]:.6g}")
    for c in r.comparisons:
        lo, hi = c["interval"]
        print(f"{c['a']} - {c['b']}: {c['difference']:+.6g} (95% interval {lo:+.6g} to {hi:+.6g}); closer: "
              f"{c['a']} {c['a_wins']:.1%}, {c['b']} {c['b_wins']:.1%}, ties {c['ties']:.1%} of {c['images']} images")
    model_line(r.info)
    return fail_code(r.failed)


def _report(args: argparse.Namespace, r: Any) -> None:
    import numpy as np

    from ..images import decode_image
    from ..pictures import figure, write_page

    def picture(path: Path, caption: str) -> str:
        return figure(decode_image(path, max_pixels=args.max_pixels).pixels, caption)

    table = "".join(f"<tr><th>{safe(c['a'])} &minus; {safe(c['b'])}</th><td>{c['difference']:+.6g}</td>"
                    f"<td>{c['interval'][0]:+.6g} to {c['interval'][1]:+.6g}</td><td>{c['a_wins']:.1%}</td>"
                    f"<td>{c['b_wins']:.1%}</td><td>{c['ties']:.1%}</td></tr>" for c in r.comparisons)
    means = "".join(f"<tr><th>{safe(n)}</th><td>{m:.6g}</td></tr>" for n, m in r.means.items())
    sections = [("Mean distance to the references (lower is closer)", f"<table>{means}</table>")]
    if r.comparisons:
        head = "<tr><th>a &minus; b</th><th>mean</th><th>95% interval</th><th>a closer</th><th>b closer</th><th>ties</th></tr>"
        sections.append(("Paired differences", f"<table>{head}{table}</table>"))
        diff = r.distances[:, 0] - r.distances[:, 1]
        order = [int(i) for i in np.argsort(-np.abs(np.nan_to_num(diff, nan=0.0)), kind="stable")[:SHOWN_ROWS]
                 if not np.isnan(diff[i])]
        shown = []
        for i in order:
            name = r.names[i]
            cells = [picture(args.reference / name, f"reference: {safe(name)}")]
            cells += [picture(folder / name, f"{safe(s)}: {r.distances[i, k]:.4g}")
                      for k, (s, folder) in enumerate(zip(r.systems, args.systems))]
            shown.append(f'<div class="pair"><h3>{safe(name)}: {safe(r.systems[0])} &minus; {safe(r.systems[1])} = '
                         f'{diff[i]:+.4g}</h3><div class="row">{"".join(cells)}</div></div>')
        sections.append((f"Where {r.systems[0]} and {r.systems[1]} differ most", "\n".join(shown) or "<p>None.</p>"))
    headers = [("#", True), ("image", False), *((s, True) for s in r.systems)]
    rows = [[(str(i + 1), i + 1), (safe(n), None), *(("" if np.isnan(d) else f"{d:.6g}", None if np.isnan(d) else float(d))
                                                     for d in row)] for i, (n, row) in enumerate(zip(r.names, r.distances))]
    write_page(args.report, title=safe(f"{', '.join(r.systems)} against {args.reference}"),
               info={"reference": safe(str(args.reference)), **{f"system {n}": safe(str(s)) for n, s in
                                                                 zip(r.systems, args.systems)}, **r.info},
               sections=sections, headers=headers, rows=rows, overwrite=args.force)
