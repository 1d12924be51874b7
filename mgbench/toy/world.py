"""The toy world's generative process: a prompt's clip as MusicGen audio codes, and as sound.

Each slot of the prompt template owns one codebook, and each word of a slot a block of 64 codes in
it (8 used): codebook 0 plays the instrument's notes, codebook 1 the genre's figures, codebook 2 the
mood's texture, codebook 3 the tempo's beat count. Notes and figures are fresh random draws among the
word's 8 codes every frame (so only the prompt, or many frames, say which word); a texture is held for
``TEMPO_FRAMES[tempo]`` frames. Only the block says the word: any order of a block's codes is a clip
of that word (which keeps what a model generates inside the world). A clip's codes are a pure
function of its slot words and a seed.

``Synth`` turns codes into sound frame by frame (20 ms each), so that a codec can learn it and a
classifier can hear the concepts: each instrument is a harmonic tone with its own register, timbre
and tremolo rate plus a noise band in its register; each genre a layer of its own (drum-like noise
bursts, bass, chords or pads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..concepts.concept_set import ConceptSet

FRAME_RATE, SAMPLE_RATE = 50, 32000
FRAME = SAMPLE_RATE // FRAME_RATE  # samples per frame
BLOCK, NOTES = 64, 8  # codes reserved per word; codes used per word
CODEBOOK_SLOTS = ("instrument", "genre", "mood", "tempo")  # codebook k holds slot CODEBOOK_SLOTS[k]
TEMPO_FRAMES = {"fast": 4, "medium to fast": 6, "medium": 8, "slow to medium": 10, "slow": 12}  # others: 8
#: per instrument (in slot order): lowest note (Hz), harmonic amplitudes, tremolo (Hz)
INSTRUMENTS = ((150.0, 1 / np.arange(1, 11), 3.0), (330.0, np.arange(1, 11) ** -2.5, 7.0),
               (700.0, np.arange(1, 11) ** -0.5, 11.0), (1500.0, (np.arange(1, 11) % 3 != 0) / np.arange(1, 11), 15.0),
               (3200.0, np.array([1, 0.08, 0.03]), 19.0))


@dataclass(frozen=True)
class ToyWorld:
    """The words of each slot (from a concept set), in code-block order, and the clips they make."""

    words: dict[str, tuple[str, ...]]

    @classmethod
    def from_concepts(cls, concepts: ConceptSet) -> "ToyWorld":
        """Every word a prompt of ``concepts`` can hold, per slot: the slot's values, then concept words."""
        words = {}
        for slot in CODEBOOK_SLOTS:
            values = list(concepts.slots[slot])
            values += [c.word for c in concepts.concepts if c.slot == slot and c.word not in values]
            words[slot] = tuple(values)
        return cls(words)

    def codes(self, fill: dict[str, str], frames: int, seed: int) -> np.ndarray:
        """The codes ``(4, frames)`` of a clip whose prompt has ``fill[slot]`` in each slot."""
        rng = np.random.default_rng(seed)
        i, g, m, j = (self.words[slot].index(fill[slot]) for slot in CODEBOOK_SLOTS)
        period = TEMPO_FRAMES.get(fill["tempo"], 8)
        step = (np.arange(frames) + rng.integers(period * NOTES)) // period  # a random phase
        texture = BLOCK * m + rng.integers(NOTES, size=step[-1] - step[0] + 1)[step - step[0]]  # held for a step
        return np.stack([BLOCK * i + rng.integers(NOTES, size=frames), BLOCK * g + rng.integers(NOTES, size=frames),
                         texture, BLOCK * j + step % NOTES])

    def sample(self, fills: list[dict[str, str]], frames: int, rng: np.random.Generator,
               scrambled: float = 0.0) -> np.ndarray:
        """Codes ``(len(fills), 4, frames)`` of a clip of each fill, a fraction ``scrambled`` of them scrambled."""
        clips = [self.codes(fill, frames, int(rng.integers(2**31))) for fill in fills]
        return np.stack([self.scramble(c, rng) if rng.random() < scrambled else c for c in clips])

    def scramble(self, codes: np.ndarray, rng: np.random.Generator, stray: float = 0.05) -> np.ndarray:
        """Codes ``(4, frames)`` as a sampling model may write them: each code redrawn within its block, and a
        fraction ``stray`` from another word's block. The codec and classifier also train on such clips, so
        that a generated clip sounds (and is heard) like its majority words."""
        sizes = np.array([len(self.words[slot]) for slot in CODEBOOK_SLOTS])[:, None]
        block = np.where(rng.random(codes.shape) < stray, rng.integers(sizes, size=codes.shape), codes // BLOCK)
        return BLOCK * block + rng.integers(NOTES, size=codes.shape)



def _band_noise(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """One frame of noise keeping only ``low``..``high`` Hz, peak 1."""
    spectrum = np.fft.rfft(rng.standard_normal(FRAME))
    freqs = np.fft.rfftfreq(FRAME, 1 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    frame = np.fft.irfft(spectrum, FRAME)
    return frame / np.abs(frame).max()


class Synth:
    """Sound of codes: ``(4, frames)`` -> ``frames * 640`` samples at 32 kHz, frame by frame."""

    GENRE_BANDS = ((2000, 5000), (3000, 6000), (100, 400), (7000, 10000), (150, 300), (1000, 2500))

    def __init__(self, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.instrument_noise = np.array([[_band_noise(rng, low, 2 * low) for _ in range(NOTES)]
                                          for low, _, _ in INSTRUMENTS])
        self.genre_noise = np.array([[_band_noise(rng, *band) for _ in range(NOTES)] for band in self.GENRE_BANDS])

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return np.concatenate([self.frame(codes[:, f], f * FRAME) for f in range(codes.shape[1])])

    def frame(self, codes: np.ndarray, start: int) -> np.ndarray:
        """One frame; ``start`` (in samples) keeps tones' phases continuous from frame to frame."""
        t = (start + np.arange(FRAME)) / SAMPLE_RATE
        (i, note), (g, k) = divmod(int(codes[0]), BLOCK), divmod(int(codes[1]), BLOCK)
        low, harmonics, tremolo = INSTRUMENTS[i % len(INSTRUMENTS)]
        f0 = low * 2 ** (note / 12)
        n = np.arange(1, len(harmonics) + 1)[:, None]
        tone = (harmonics[:, None] * np.sin(2 * np.pi * f0 * n * t)).sum(0) / harmonics.sum()
        swell = 1 + 0.9 * np.sin(2 * np.pi * tremolo * t)
        instrument = (0.45 * tone + 0.15 * self.instrument_noise[i % len(INSTRUMENTS), note]) * swell
        return instrument + 0.35 * self.genre_layer(g % len(self.GENRE_BANDS), k, t)

    def genre_layer(self, g: int, k: int, t: np.ndarray) -> np.ndarray:
        """rock, pop, electronic, jazz, classical, hip hop (the genre slot's order, then hiphop)."""
        sine = lambda f: np.sin(2 * np.pi * f * t)  # noqa: E731
        noise = self.genre_noise[g, k]
        return [lambda: 0.6 * noise * (k % 2 == 0) + 0.4 * np.sign(sine(82)),
                lambda: 0.4 * (sine(523) + sine(659) + sine(784)) / 1.5 + 0.2 * noise * (k % 4 == 0),
                lambda: 0.8 * sine(55) * (k % 2 == 0) + 0.4 * (2 * ((110 * t) % 1) - 1),
                lambda: 0.3 * noise + 0.6 * sine(98 * 2 ** (k / 12)),
                lambda: 0.3 * (sine(196) + sine(247) + sine(294)),
                lambda: 0.9 * sine(45) + 0.5 * noise * (k % 2 == 1)][g]()
