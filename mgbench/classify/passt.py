"""PaSST, the paper's AudioSet classifier (hear21passt's PaSST-S SWA, ``passt_s_swa_p16_128_ap476``).

The pretrained checkpoint is loaded through hear21passt; PaSSTs of other sizes (the tiny one) are
hear21passt's ``PaSST`` and ``AugmentMelSTFT`` saved to and loaded from a folder of safetensors.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch

from ..concepts.audioset import NUM_CLASSES
from ..errors import MissingWeightsError
from ..paths import content_identity, file_digest
from .waveforms import mono_at_rate

PASST_ARCH = "passt_s_swa_p16_128_ap476"
PASST_URL = "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"
#: hear21passt.base.get_basic_model's mel front end (32 kHz, 128 mels, 10 ms hop).
MEL_SETTINGS = dict(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192, htk=False,
                    fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
#: PaSST-S geometry (10 s input grid, patch 16, stride 10, distilled head); ``tiny`` shrinks only width and depth.
PASST_GEOMETRY = dict(img_size=(128, 998), patch_size=16, stride=(10, 10), in_chans=1, num_classes=NUM_CLASSES,
                      distilled=True)


class PasstClassifier:
    """hear21passt's ``PasstBasicWrapper`` in logits mode, fed 32 kHz mono audio in batches."""

    sample_rate = 32000

    def __init__(self, wrapper: torch.nn.Module, name: str, identity: str, batch_size: int = 32):
        self.wrapper = wrapper.eval()
        self.name = name
        self.identity = identity
        self.batch_size = batch_size

    @torch.no_grad()
    def logits(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        waveforms = mono_at_rate(waveforms, sample_rate, self.sample_rate, next(self.wrapper.parameters()).device)
        with quiet_passt():  # hear21passt prints tensor shapes on its first forward
            chunks = [self.wrapper(chunk) for chunk in waveforms.split(self.batch_size)]
        return torch.cat(chunks).float()

    def to(self, device: str) -> "PasstClassifier":
        self.wrapper.to(device)
        return self


@contextlib.contextmanager
def quiet_passt():
    """Silence hear21passt's prints and its expected warnings (clips shorter than 10 s, old stft flag)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input image size")
        warnings.filterwarnings("ignore", message="stft with return_complex=False")
        warnings.filterwarnings("ignore", message=r"`torch.cuda.amp.autocast")
        yield


def passt_wrapper(net_settings: dict) -> torch.nn.Module:
    """hear21passt's wrapper around its mel front end and a randomly initialised ``PaSST(**net_settings)``."""
    from hear21passt.models.passt import PaSST
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    with quiet_passt():
        mel = AugmentMelSTFT(**MEL_SETTINGS)
        net = PaSST(**{**PASST_GEOMETRY, **net_settings})
    return PasstBasicWrapper(mel=mel, net=net, mode="logits")


def save_passt(folder: Path, net_settings: dict, wrapper: "torch.nn.Module | None" = None) -> None:
    """Save a PaSST (randomly initialised from ``net_settings`` unless ``wrapper`` is given) to ``folder``."""
    from safetensors.torch import save_file

    wrapper = wrapper if wrapper is not None else passt_wrapper(net_settings)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in wrapper.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"classifier": "passt", "net": net_settings}, indent=2))


def load_passt_folder(folder: "str | Path") -> PasstClassifier:
    """Load a PaSST saved by ``save_passt``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        state = load_file(str(folder / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise MissingWeightsError(f"cannot load a classifier from {folder} ({e}); it needs config.json and "
                                  "model.safetensors as written by mgbench.classify.passt.save_passt") from None
    wrapper = passt_wrapper(config["net"])
    wrapper.load_state_dict(state)
    return PasstClassifier(wrapper, name=folder.name, identity=content_identity(folder))


def passt_checkpoint_path() -> Path:
    """Where hear21passt (through timm) caches the PaSST-S SWA checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PASST_URL.rsplit("/", 1)[-1]


def load_pretrained_passt() -> PasstClassifier:
    """The paper's PaSST-S SWA from hear21passt's (timm's) cache; a clear error when it is not there."""
    checkpoint = passt_checkpoint_path()
    if not checkpoint.is_file():
        raise MissingWeightsError(
            f"PaSST weights are not cached at {checkpoint}. Download {PASST_URL} on a machine with internet "
            f"and put it there (or run `python -c \"import hear21passt.base as b; b.load_model(mode='logits')\"`"
            f" there and copy {checkpoint.parent}); TORCH_HOME moves the cache.")
    from hear21passt.base import get_basic_model

    with quiet_passt():
        wrapper = get_basic_model(mode="logits", arch=PASST_ARCH)
    return PasstClassifier(wrapper, name="passt", identity=passt_identity(checkpoint))


def passt_identity(checkpoint: Path) -> str:
    """The paper's PaSST's identity for cache keys: its architecture and the checkpoint's content."""
    return f"{PASST_ARCH}@sha256:{file_digest(checkpoint)[:32]}"
