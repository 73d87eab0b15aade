"""``python -m perceptual_sim.cli`` (as ``torchrun ... -m perceptual_sim.cli`` runs it): the command line."""

import sys

from . import main

sys.exit(main())
