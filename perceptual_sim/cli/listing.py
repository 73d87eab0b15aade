"""``perceptual-sim list``: the bundled models, and the LPIPS references ``download`` makes (answers without torch)."""

from __future__ import annotations

import argparse
from typing import Any

from ..models import registry


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("list", description="List the bundled models and where they are.")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    cards, folder = registry.list_models(), registry.bundled_dir()
    if not cards:
        print(f"no bundled models (looked in {folder}); pass --model a card .json, a model folder "
              "or hf-hub:ORG/NAME")
        return 0
    print(f"bundled models (in {folder}):")
    for card in cards:
        default = " [default]" if card.name == registry.DEFAULT_MODEL else ""
        print(f"  {card.one_line()}{default}")
    downloaded = registry.downloaded_dir()
    print(f"references that `perceptual-sim download NAME` makes (LPIPS v0.1, the EfficientNet-Lite0 teacher; "
          f"in {downloaded}):")
    for name in registry.DOWNLOADABLE:
        done = (downloaded / name / f"{name}.json").is_file()
        print(f"  {name}{' (downloaded)' if done else ''}")
    return 0
