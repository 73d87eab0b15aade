"""What the generative commands (``diversity``, ``nearest``, ``systems``, ``video``) share: output
checks before any work, CSV / JSON writing (atomic), the listing of failed files, the model line."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import check_output, write_output
from .options import UsageError, cell, confirm, safe

SUFFIXES = {"--csv": (".csv",), "--json": (".json",), "--report": (".html", ".htm"), "--plot": (".png",)}


def check_outputs(args: argparse.Namespace, flags: Sequence[str]) -> None:
    """Refuse, before any work, outputs that exist (without --force), clash, or have a wrong suffix
    (a report is .html, a plot .png)."""
    given = {flag: getattr(args, flag[2:]) for flag in flags if getattr(args, flag[2:]) is not None}
    for flag, path in given.items():
        check_output(path, args.force, flag)
        if flag in ("--report", "--plot") and path.suffix.lower() not in SUFFIXES[flag]:
            raise UsageError(f"{flag} {path}: give a file name ending in {SUFFIXES[flag][0]}")
    if len({p.resolve() for p in given.values()}) < len(given):
        raise UsageError(f"{' and '.join(given)} must name different files")


def add_outputs(p: argparse.ArgumentParser, csv_help: str, *, json_help: str = "write the result as JSON") -> None:
    p.add_argument("--csv", type=Path, metavar="FILE", help=csv_help + " (each row names model, mode, sha256, version)")
    p.add_argument("--json", type=Path, metavar="FILE", help=json_help + " (with model, mode, sha256, version)")


def write_csv(path: Path | None, header: Sequence[str], rows: Sequence[Sequence[Any]], info: dict[str, Any],
              force: bool) -> None:
    """Rows with the model's provenance appended to each; text cells spreadsheet-safe."""
    if path is None:
        return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*header, "model", "mode", "sha256", "version"])
    for row in rows:
        writer.writerow([repr(v) if isinstance(v, float) else v if isinstance(v, int) else cell(v) for v in row]
                        + [cell(info["model"]), info["mode"], info["sha256"], info["version"]])
    write_output(path, text.getvalue(), force, "--csv")
    confirm(path, f"{len(rows)} rows")


def write_json(path: Path | None, result: dict[str, Any], force: bool) -> None:
    if path is not None:
        write_output(path, json.dumps(result, indent=2, allow_nan=False) + "\n", force, "--json")
        confirm(path)


def list_failed(failed: Sequence[tuple[str, str]]) -> None:
    """The files that could not be used, on stderr (as ``dirs`` lists its failed pairs)."""
    from .dirs import _list_paths

    _list_paths("files that could not be used (left out)", [why for _, why in failed], prefix="error")


def model_line(info: dict[str, Any]) -> None:
    print(f"model   {info['model']} (mode {info['mode']}, sha256 {info['sha256'][:12]}, version {info['version']})")


def folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def fail_code(failed: Sequence[Any]) -> int:
    return 1 if failed else 0


def say(message: str) -> None:
    print(safe(message), file=sys.stderr)

