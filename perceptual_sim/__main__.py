"""``python -m perceptual_sim``: the ``perceptual-sim`` command line."""

import sys

from .cli import main

sys.exit(main())
