"""Benchmark harnesses: BAPPS (2AFC, PS, JND), full-reference IQA correlations, human
triplet judgments, settled psychophysics and the LPIPS-judged proxies.

Image pairs are scored by :mod:`perceptual_sim.pairs`; the ``eval`` commands are
:mod:`perceptual_sim.cli.eval`.
"""

from __future__ import annotations

from .bapps import jnd_map, score_bapps, two_afc_score
from .iqa import correlations, score_iqa
from .psych import score_psych
from .triplets import score_triplets

__all__ = ["correlations", "jnd_map", "score_bapps", "score_iqa", "score_psych", "score_triplets", "two_afc_score"]
