"""Any Hugging Face masked LM as a masked diffusion denoiser, called as its family was trained.

A masked LM trained with BERT's objective predicts clean tokens at masked positions from the visible ones; that is
exactly the clean-token distribution the SUBS rule needs (MDLM Sec. 3.2.3), without time conditioning (RADD, Ou et
al. 2024). DPLM (Wang et al. 2024) and EvoDiff use ESM-2 this way. The adapter only maps the call signature:
``(tokens, t) -> logits``; the SUBS rule is applied outside, by :class:`seqtree.diffusion.MaskedDiffusion`.

Families differ in what their network takes and where their mask id lives, so each has one small hook
(:class:`HFFamily`), chosen from the model's ``config.json`` by :func:`family_for` (the first hook that claims it):

- :class:`MDLMFamily` (``model_type: mdlm``, Sahoo et al. 2024, the ``kuleshov-group/mdlm-owt`` format): a DiT
  called as ``forward(input_ids, timesteps)`` with the total noise sigma, GPT-2's tokenizer plus one mask id.
- :class:`LLaDAFamily` (``model_type: llada``, Nie et al. 2025): ``AutoModel``, ``forward(input_ids)``, no time
  input, a dedicated mask id. Other ``AutoModel``-only remote-code models are refused by name rather than guessed
  at: Dream, for one, predicts token i + 1 at position i and would decode shifted under this hook.
- :class:`OffsetPositionsFamily` (RoBERTa, XLM-R, CamemBERT, ESM with absolute positions): masked LMs whose
  absolute positions are numbered from the pad id + 1, which shortens the rows they accept.
- :class:`HFFamily` itself: every other ``AutoModelForMaskedLM`` (ESM-2, Nucleotide Transformer, BERT, DistilBERT,
  ModernBERT, DNABERT-2), called with ``input_ids`` and a padding ``attention_mask``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seqtree.models.framing import Framing, hf_framing
from seqtree.schedules import LogLinearSchedule, NoiseSchedule


def config_dict(name_or_path: str | Path) -> dict[str, Any]:
    """A model's ``config.json`` as a plain dict, read without running any of its code (local folder or hub id)."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(str(name_or_path))[0]


def _logits_of(output: Any) -> Tensor:
    """Logits from a model output: a ``ModelOutput`` with ``.logits``, a tuple led by them, or the tensor itself."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    return logits if logits is not None else output[0]


class HFFamily:
    """The hook of a family: an ``AutoModelForMaskedLM`` trained with BERT's objective, the default.

    Its tokenizer names the mask id; its frame is the one its tokenizer puts around one sequence
    (:func:`seqtree.models.framing.hf_framing`); it takes no time input; padding is hidden from attention. A family
    overrides only what differs."""

    auto_class: ClassVar[str] = "AutoModelForMaskedLM"

    @classmethod
    def claims(cls, config: dict[str, Any]) -> bool:
        return True

    def mask_id(self, config: dict[str, Any], hf_tokenizer) -> int | None:
        return hf_tokenizer.mask_token_id

    def framing(self, config: dict[str, Any], hf_tokenizer) -> Framing:
        return hf_framing(hf_tokenizer, config.get("model_type"))

    def max_length(self, config: dict[str, Any]) -> int | None:
        return config.get("max_position_embeddings")

    @property
    def schedule(self) -> NoiseSchedule:
        """The noise schedule seqtree samples the family with: for a time-independent masked LM only the order and
        pace of unmasking depend on it, and seqtree's default (log-linear, eps 1e-3) serves."""
        return LogLinearSchedule()

    def time_input(self, config: dict[str, Any]) -> str:
        """What the network is told of the noise level (``seqtree models inspect``)."""
        return "none (a time-independent masked LM)"

    def logits(self, model: nn.Module, tokens: Tensor, t: Tensor | None, attention_mask: Tensor | None) -> Tensor:
        return _logits_of(model(input_ids=tokens, attention_mask=attention_mask))


class OffsetPositionsFamily(HFFamily):
    """RoBERTa's absolute positions (fairseq's convention, kept by XLM-R, CamemBERT and ESM with absolute positions)
    are numbered from ``pad_token_id + 1``, so a row holds at most ``max_position_embeddings - pad_token_id - 1``
    tokens: RoBERTa's 514 position embeddings take 512 tokens. A longer row would index past the table."""

    MODEL_TYPES: ClassVar[frozenset[str]] = frozenset({"roberta", "xlm-roberta", "camembert", "esm"})

    @classmethod
    def claims(cls, config: dict[str, Any]) -> bool:
        absolute = config.get("position_embedding_type", "absolute") == "absolute"
        return config.get("model_type") in cls.MODEL_TYPES and absolute and config.get("pad_token_id") is not None

    def max_length(self, config: dict[str, Any]) -> int | None:
        size = config.get("max_position_embeddings")
        return None if size is None else size - int(config["pad_token_id"]) - 1


class MDLMFamily(HFFamily):
    """MDLM checkpoints (Sahoo et al. 2024; ``kuleshov-group/mdlm-owt``): a DiT called as
    ``forward(input_ids, timesteps)``, where ``timesteps`` is the total noise sigma of the masking process.

    - Noise level: MDLM masks a token with probability 1 - exp(-sigma(t)) (its ``move_chance``); its published
      checkpoints were trained with the log-linear schedule sigma(t) = -log(1 - (1 - eps) t), eps = 1e-3
      (``noise_schedule.LogLinearNoise`` in kuleshov-group/mdlm). seqtree's diffusion masks with probability
      1 - alpha(t), so the sigma that tells the network the same masked fraction is sigma = -log alpha(t), with
      alpha from the schedule seqtree samples with: for the log-linear schedule with eps = 1e-3 (which
      :func:`seqtree.models.loading.load_model` gives MDLM checkpoints) exactly MDLM's own sigma(t) at the same t.
      A checkpoint with ``time_conditioning: false`` (the OWT release) zeroes sigma itself; it is passed anyway.
    - Mask id: GPT-2's tokenizer has no mask token; MDLM appends one (``mask_index = vocab_size`` in its
      ``diffusion.py``), so ``config.vocab_size`` is the tokenizer's size + 1 and the mask id is the last id.
    - Frame: MDLM's OpenWebText blocks are ``[BOS] text [EOS]`` (``_group_texts`` in its ``dataloader.py``), GPT-2's
      ``<|endoftext|>`` on both sides; a design is framed the same way.
    - Rows: at most ``model_length`` tokens; no attention mask (the network takes none).
    """

    EPS: ClassVar[float] = 1e-3  # MDLM's log-linear schedule (configs/noise/loglinear.yaml)

    @classmethod
    def claims(cls, config: dict[str, Any]) -> bool:
        return config.get("model_type") == "mdlm"

    @property
    def schedule(self) -> NoiseSchedule:
        """The schedule MDLM's released checkpoints were trained with; seqtree samples them with it."""
        return LogLinearSchedule(eps=self.EPS)

    def mask_id(self, config: dict[str, Any], hf_tokenizer) -> int | None:
        if hf_tokenizer.mask_token_id is not None:
            return hf_tokenizer.mask_token_id
        vocab_size = config.get("vocab_size")
        return vocab_size - 1 if vocab_size == len(hf_tokenizer) + 1 else None

    def framing(self, config: dict[str, Any], hf_tokenizer) -> Framing:
        probed = hf_framing(hf_tokenizer, "mdlm")
        bos, eos = hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id
        return Framing(
            family="mdlm", prefix=() if bos is None else (bos,), suffix=() if eos is None else (eos,),
            forbidden=probed.forbidden,
        )  # fmt: skip

    def max_length(self, config: dict[str, Any]) -> int | None:
        return config.get("model_length")

    def time_input(self, config: dict[str, Any]) -> str:
        used = "used" if config.get("time_conditioning") else "zeroed by the model (time_conditioning: false)"
        return f"timesteps = sigma = -log alpha(t) (log-linear, eps {self.EPS}), {used}"

    @staticmethod
    def sigma(t: Tensor, schedule: NoiseSchedule) -> Tensor:
        """MDLM's total noise at seqtree's time t [B]: -log alpha(t) (see the class docstring)."""
        return -torch.log(schedule.alpha(t.float()).clamp_min(1e-12))

    def logits(self, model: nn.Module, tokens: Tensor, t: Tensor | None, attention_mask: Tensor | None) -> Tensor:
        if t is None:
            if getattr(model.config, "time_conditioning", False):
                raise ValueError("this MDLM checkpoint is time-conditioned: pass t")
            sigma = torch.zeros(tokens.shape[0], device=tokens.device)
        else:
            sigma = self.sigma(t.to(tokens.device).expand(tokens.shape[0]), self.schedule)
        return _logits_of(model(input_ids=tokens, timesteps=sigma))


class LLaDAFamily(HFFamily):
    """LLaDA-style masked LMs (Nie et al. 2025, ``GSAI-ML/LLaDA-8B-Base``): a bidirectional Llama-shaped network
    loaded with ``AutoModel`` and its own code, called as ``model(input_ids).logits`` with neither a time input nor
    an attention mask (LLaDA's ``generate.py``), over a causal-LM-sized vocabulary whose mask is a dedicated id
    (126336, ``<|mdm_mask|>``) named by the tokenizer or by ``config.mask_token_id``. A design is the prompt (with
    whatever the tokenizer puts before it, LLaDA's ``<|startoftext|>``) and a masked completion; rows are at most
    ``max_sequence_length`` tokens."""

    auto_class: ClassVar[str] = "AutoModel"

    @classmethod
    def claims(cls, config: dict[str, Any]) -> bool:
        return config.get("model_type") == "llada"

    def mask_id(self, config: dict[str, Any], hf_tokenizer) -> int | None:
        own = hf_tokenizer.mask_token_id
        return own if own is not None else config.get("mask_token_id")

    def max_length(self, config: dict[str, Any]) -> int | None:
        return config.get("max_sequence_length", config.get("max_position_embeddings"))

    def time_input(self, config: dict[str, Any]) -> str:
        return "none (LLaDA's network takes no time input)"

    def logits(self, model: nn.Module, tokens: Tensor, t: Tensor | None, attention_mask: Tensor | None) -> Tensor:
        return _logits_of(model(input_ids=tokens))


FAMILIES: tuple[type[HFFamily], ...] = (MDLMFamily, LLaDAFamily, OffsetPositionsFamily, HFFamily)


def family_for(config: dict[str, Any], name: str | Path = "") -> HFFamily:
    """The hook of the first family that claims ``config`` (a ``config.json`` dict); :class:`HFFamily` claims all.

    A model that ships its own network code (``AutoModel...`` in ``auto_map``) but none for the class its family
    loads with is refused: its call convention is unknown (a causal LM, or a diffusion LM with shifted logits such
    as Dream). Code for the configuration or tokenizer alone leaves the network to transformers' own classes."""
    family = next(family for family in FAMILIES if family.claims(config))()
    networks = [key for key in config.get("auto_map") or {} if key.startswith("AutoModel")]
    if networks and family.auto_class not in networks:
        raise ValueError(
            f"model {str(name)!r} (model_type {config.get('model_type')!r}) ships code for {', '.join(networks)} "
            f"but not {family.auto_class}: seqtree calls remote-code models of the families mdlm and llada, and "
            "other masked LMs through AutoModelForMaskedLM"
        )
    return family


class HFMaskedLMDenoiser(nn.Module):
    """Wraps a Hugging Face masked LM (ESM-2, BERT, ModernBERT, MDLM, LLaDA, ...) as ``(tokens, t) -> logits``,
    calling it through its family's hook. ``pad_id`` positions are hidden from attention where the family takes an
    attention mask."""

    def __init__(self, model: nn.Module, pad_id: int | None = None, family: HFFamily | None = None) -> None:
        super().__init__()
        self.model = model
        self.pad_id = pad_id
        self.family = family if family is not None else family_for(model.config.to_dict())

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        pad_id: int | None = None,
        trust_remote_code: bool = False,
        family: HFFamily | None = None,
        **kwargs,
    ) -> HFMaskedLMDenoiser:
        import transformers

        family = family if family is not None else family_for(config_dict(name_or_path))
        auto = getattr(transformers, family.auto_class)
        model = auto.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
        if pad_id is None:
            pad_id = getattr(model.config, "pad_token_id", None)
        return cls(model, pad_id, family)

    @property
    def config(self):
        return self.model.config

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        attention_mask = None if self.pad_id is None else (tokens != self.pad_id).long()
        return self.family.logits(self.model, tokens, t, attention_mask)
