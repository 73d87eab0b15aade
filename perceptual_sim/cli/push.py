"""``perceptual-sim push MODEL ORG/NAME``: check a model's weights, then upload it to a Hub repo."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "push", description="Check a model's weights, then upload card.json, model.safetensors and a README to the Hub "
                    "repo ORG/NAME (created if missing). Uses huggingface_hub's token: HF_TOKEN or "
                    "`hf auth login`; tokens are never taken on the command line.")
    p.add_argument("model", metavar="MODEL", help="bundled name, card NAME.json, or a folder with card.json + model.safetensors")
    p.add_argument("repo_id", metavar="ORG/NAME", help="the Hub model repo")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..metric import PerceptualDistance
    from ..models import hub

    hub.check_repo_id(args.repo_id)
    model = PerceptualDistance.from_pretrained(args.model)  # the weights pass every check before any upload
    commit = hub.push(model.card, model.weights_path, args.repo_id, revision=args.revision, private=args.private,
                      message=args.message)
    print(f"pushed {args.model} to {args.repo_id} (commit {commit})")
    print(f"load it with: --model hf-hub:{args.repo_id}@{commit}")
    return 0
