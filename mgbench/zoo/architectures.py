"""MusicGen decoder shapes: the published sizes (shared/paper/README.md) and the tiny offline one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderShape:
    """The size of a MusicGen decoder, and the weights it multiplies per generated token."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    codebooks: int = 4
    vocab: int = 2048
    text_tokens: int = 24  # typical prompt length in T5 tokens

    @property
    def weights(self) -> int:
        """Decoder weights multiplied per generated token: self-attention (4 d^2), cross-attention query and
        output (2 d^2; its keys and values are cached), MLP, codebook heads."""
        per_layer = 6 * self.hidden**2 + 2 * self.hidden * self.ffn
        return self.layers * per_layer + self.codebooks * self.vocab * self.hidden

    @property
    def cross_kv_weights(self) -> int:
        """Weights applied once per text token: the cross-attention key and value projections."""
        return self.layers * 2 * self.hidden**2


#: hub names of the published checkpoints, by size
HUB_NAMES = {
    "small": "facebook/musicgen-small",
    "medium": "facebook/musicgen-medium",
    "large": "facebook/musicgen-large",
}
REAL_SIZES = tuple(HUB_NAMES)
SHAPES = {"small": DecoderShape(24, 1024, 4096, 16), "medium": DecoderShape(48, 1536, 6144, 24),
          "large": DecoderShape(48, 2048, 8192, 32), "tiny": DecoderShape(4, 64, 256, 4)}
SHAPES["toy"] = SHAPES["tiny"]  # the toy world's MusicGen: the tiny shapes, trained
#: decoder layers per size
NUM_LAYERS = {size: shape.layers for size, shape in SHAPES.items()}


@dataclass(frozen=True)
class ModelFacts:
    """What validating and planning a run need of a MusicGen, read off its configuration: no weights loaded."""

    shape: DecoderShape
    frame_rate: int  # codec frames per second
    sample_rate: int
    max_positions: int  # the decoder's positional table: frames + codebooks - 1 must fit

    @classmethod
    def of_config(cls, config) -> "ModelFacts":
        """The facts of a ``MusicgenConfig``."""
        d = config.decoder
        shape = DecoderShape(d.num_hidden_layers, d.hidden_size, d.ffn_dim, d.num_attention_heads, d.num_codebooks,
                             d.vocab_size)
        return cls(shape, config.audio_encoder.frame_rate, config.audio_encoder.sampling_rate,
                   d.max_position_embeddings)

    @property
    def num_layers(self) -> int:
        return self.shape.layers

    @property
    def num_codebooks(self) -> int:
        return self.shape.codebooks

    def steps(self, seconds: float) -> int:
        """Decode steps of a clip of ``seconds``: its frames plus the delay pattern's codebooks - 1."""
        return round(seconds * self.frame_rate) + self.num_codebooks - 1
