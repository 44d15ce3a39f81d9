"""Load a denoiser with its tokenizer and diffusion process: by shipped name, local folder, or hub id.

Resolution order for ``name_or_path``:
1. a checkpoint shipped inside the package (``seqtree models list``), e.g. ``protein-tiny``;
2. a local folder saved by seqtree (``config.json`` of a seqtree backbone and ``seqtree_tokenizer.json``);
3. any other local folder or Hugging Face hub id is a Hugging Face masked LM with its own tokenizer, wrapped by
   :class:`HFMaskedLMDenoiser` through its family's hook (:func:`seqtree.models.hf_adapter.family_for`, chosen
   from ``config.json``: the mask id, the frame, the maximum length, the noise schedule and how the network is
   called). Remote code (MDLM, LLaDA) runs only when ``trust_remote_code=True`` is asked for.

Weights load from safetensors (``from_pretrained``); nothing loaded runs code unless asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.utils import logging as transformers_logging

from seqtree.cuda_graphs import GraphedDenoiser
from seqtree.device import Precision, check_precision, resolve_device, with_precision
from seqtree.diffusion import MaskedDiffusion
from seqtree.models.dilated_cnn import DilatedCNN, DilatedCNNConfig
from seqtree.models.framing import Framing, seqtree_framing
from seqtree.models.hf_adapter import HFMaskedLMDenoiser, config_dict, family_for
from seqtree.models.tokenizers import TOKENIZER_FILE, HFTokenizer, Tokenizer, load_tokenizer
from seqtree.models.transformer import SeqTreeTransformer, SeqTreeTransformerConfig
from seqtree.schedules import make_schedule

CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
MODEL_CARD = "README.md"

BACKBONES: dict[str, tuple[type, type]] = {
    SeqTreeTransformerConfig.model_type: (SeqTreeTransformerConfig, SeqTreeTransformer),
    DilatedCNNConfig.model_type: (DilatedCNNConfig, DilatedCNN),
}

transformers_logging.disable_progress_bar()  # per-shard bars clutter every load and save of a tiny model

for _model_type, (_config_class, _model_class) in BACKBONES.items():
    AutoConfig.register(_model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)


@dataclass
class LoadedModel:
    """A ready-to-sample model: the network, its tokenizer and its diffusion process."""

    denoiser: nn.Module
    tokenizer: Tokenizer
    diffusion: MaskedDiffusion
    source: str  # what was asked for
    max_length: int | None  # longest sequence the backbone accepts (None: no limit known)
    domain: str | None  # dna, protein, smiles, text, or None when unknown
    length_counts: list[int] | None = None  # counts[n]: training sequences of n tokens (seqtree checkpoints)
    precision: Precision = "fp32"  # autocast of inference forward passes (training sets its own)
    framing: Framing = Framing(family="unknown")  # special tokens around a design, and whether rows are padded
    cuda_graphs: bool = False  # replay the inference forward pass from CUDA graphs on a GPU (seqtree.cuda_graphs)
    _graphed: tuple[tuple, GraphedDenoiser] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def device(self) -> torch.device:
        """Where the denoiser's weights are (roots, generators and samples go there too)."""
        parameter = next(self.denoiser.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    @property
    def inference_denoiser(self) -> nn.Module:
        """The denoiser as search and sampling call it: under autocast at ``precision`` (float32 logits), replayed
        from CUDA graphs on a GPU when ``cuda_graphs`` is on (one wrapper per model, so its graphs are kept)."""
        if not self.cuda_graphs or self.device.type != "cuda":
            return with_precision(self.denoiser, self.precision)
        key = (id(self.denoiser), self.precision)
        if self._graphed is None or self._graphed[0] != key:
            self._graphed = (key, GraphedDenoiser(with_precision(self.denoiser, self.precision)))
        return self._graphed[1]

    def sample_lengths(self, num: int, generator: torch.Generator | None = None) -> list[int]:
        """Design lengths drawn from the training length distribution (the full row when it is unknown)."""
        if not self.length_counts or sum(self.length_counts) == 0:
            return [self.max_length or 64] * num
        weights = torch.tensor(self.length_counts, dtype=torch.float)
        return torch.multinomial(weights, num, replacement=True, generator=generator).tolist()


def shipped_checkpoints() -> dict[str, Path]:
    """Name -> folder of every checkpoint shipped in the package."""
    if not CHECKPOINT_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(CHECKPOINT_DIR.iterdir()) if (p / "config.json").is_file()}


def read_model_card(path: Path) -> str:
    card = path / MODEL_CARD
    return card.read_text() if card.is_file() else ""


def resolve_checkpoint(name_or_path: str | Path) -> Path | str:
    """A shipped name or an existing folder becomes a Path; anything else is returned as a hub id."""
    shipped = shipped_checkpoints()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a saved model folder")
        return path
    if str(name_or_path).count("/") > 1 or str(name_or_path).startswith((".", "/", "~")):
        known = ", ".join(shipped) or "none"
        raise FileNotFoundError(f"no model folder at {name_or_path!r} (shipped checkpoints: {known})")
    return str(name_or_path)


def _is_seqtree_folder(path: Path | str) -> bool:
    if not isinstance(path, Path):
        return False
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    return model_type in BACKBONES and (path / TOKENIZER_FILE).is_file()


def _refuse_unasked_remote_code(config: dict, name: str | Path, trust_remote_code: bool) -> None:
    """A model that ships its own code (``auto_map`` in its config: MDLM, LLaDA, whether it loads with
    ``AutoModelForMaskedLM`` or ``AutoModel``) loads only when the recipe names ``trust_remote_code``; otherwise one
    line says so, before transformers would ask on the terminal."""
    if trust_remote_code:
        return
    if config.get("auto_map"):
        raise ValueError(
            f"model {str(name)!r} ships its own code (auto_map in its config.json); set model.trust_remote_code: true "
            "(--trust-remote-code for seqtree sample) if you trust it"
        )


def _hidden_pad(tokenizer: HFTokenizer, framing: Framing, config: dict) -> int | None:
    """The id the adapter hides from attention: the tokenizer's pad token, else the config's pad id, unless that id
    is one the model must see. A tokenizer without a pad token pads with its end-of-sequence or mask id; hiding the
    mask would hide every masked position, and hiding the end-of-sequence id would hide the frame."""
    pad = tokenizer.hf.pad_token_id if tokenizer.hf.pad_token_id is not None else config.get("pad_token_id")
    visible = {tokenizer.mask_id, *framing.prefix, *framing.suffix}
    return None if pad is None or pad in visible else int(pad)


def load_model(
    name_or_path: str | Path,
    *,
    trust_remote_code: bool = False,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
    cuda_graphs: bool = False,
) -> LoadedModel:
    """Load denoiser, tokenizer and diffusion process; the denoiser is in eval mode on ``device`` (a name
    :func:`seqtree.device.resolve_device` accepts: ``auto``, ``cpu``, ``cuda:N``, ...) and searches and samples
    under autocast at ``precision``, replayed from CUDA graphs on a GPU when ``cuda_graphs`` is True."""
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    check_precision(precision, device)
    location = resolve_checkpoint(name_or_path)
    if _is_seqtree_folder(location):
        denoiser = AutoModel.from_pretrained(location)
        tokenizer = load_tokenizer(location)
        config = denoiser.config
        schedule = make_schedule(getattr(config, "noise_schedule", "loglinear"), getattr(config, "noise_eps", 1e-3))
        max_length = getattr(config, "max_positions", None)
        domain = getattr(config, "domain", None)
        length_counts = getattr(config, "length_counts", None)
        framing = seqtree_framing(config.model_type)
    else:
        config = config_dict(location)
        _refuse_unasked_remote_code(config, name_or_path, trust_remote_code)
        family = family_for(config, name_or_path)
        hf = HFTokenizer.load_hf(str(location), trust_remote_code=trust_remote_code)
        tokenizer = HFTokenizer(
            str(location), trust_remote_code=trust_remote_code, mask_id=family.mask_id(config, hf), hf=hf
        )
        framing = family.framing(config, hf)
        try:
            denoiser = HFMaskedLMDenoiser.from_pretrained(
                str(location), trust_remote_code=trust_remote_code, family=family
            )
        except OSError as error:  # no weights file, or one transformers cannot read
            raise FileNotFoundError(f"model {str(name_or_path)!r}: {str(error).splitlines()[0]}") from None
        denoiser.pad_id = _hidden_pad(tokenizer, framing, config)
        schedule = family.schedule
        max_length = family.max_length(config)
        domain = None
        length_counts = None
    vocab_size = max(tokenizer.vocab_size, int(denoiser.config.vocab_size))
    diffusion = MaskedDiffusion.for_tokenizer(
        tokenizer, schedule=schedule, vocab_size=vocab_size, forbidden_ids=framing.forbidden
    )
    denoiser.to(device).eval()
    return LoadedModel(
        denoiser, tokenizer, diffusion, str(name_or_path), max_length, domain, length_counts, precision, framing,
        cuda_graphs,
    )
