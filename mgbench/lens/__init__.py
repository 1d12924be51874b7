"""The tuned lens (Belrose et al., 2023) for MusicGen's decoder.

``translators``: ``TunedLens``, one affine translator per layer that maps the layer's residual output to the
final layer's (identity at initialisation: the plain DecoderLens cut), applied by a forward hook, saved and
loaded as safetensors. ``training``: residual states recorded from the model's own generations and the
translators fitted to its final-layer token distributions (KL divergence, all codebooks). Imports ``model``
and the top-level helpers.
"""
