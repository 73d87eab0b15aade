"""The lab's commands, ``perceptual-sim train`` and ``perceptual-sim eval`` (registered in :mod:`perceptual_sim.cli`)."""
