"""The lab beside the library: training (:mod:`.train`, :mod:`.distill`), the evaluation harnesses
(:mod:`.evaluate`) and their commands (:mod:`.cli`: ``perceptual-sim train``, ``perceptual-sim eval``).

The lab uses the library; nothing outside this package imports it (the command line names its two
commands and imports them only when they run).
"""
