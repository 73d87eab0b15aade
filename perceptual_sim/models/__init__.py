"""Models as data: what a model string means, and the files behind it.

- :mod:`.archs`: the architectures a card may name and the bounds on their arguments (no torch);
- :mod:`.card`: the model card, read and checked, and its tensor file;
- :mod:`.registry`: a model string to a card and a tensor file, and :func:`~.registry.load`, which
  builds it and evicts a Hub download that fails its checks;
- :mod:`.hub`: the Hugging Face Hub (download, eviction, push).

It stands on the ground floor: it imports nothing of the package but :mod:`perceptual_sim.files` and the
version, builds no module, and needs torch only to read or write tensors. The nn.Module
(:mod:`perceptual_sim.metric`) builds from a card and knows nothing of the Hub;
:mod:`perceptual_sim.convert` makes cards of the LPIPS and EfficientNet reference weights.
"""
