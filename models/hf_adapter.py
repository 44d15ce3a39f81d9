"""Any Hugging Face masked language model as a masked diffusion denoiser.

A masked LM trained with BERT's objective predicts clean tokens at masked positions from the visible ones; that is
exactly the clean-token distribution the SUBS rule needs (MDLM Sec. 3.2.3), without time conditioning (RADD, Ou et
al. 2024). DPLM (Wang et al. 2024) and EvoDiff use ESM-2 this way. The adapter only maps the call signature:
``(tokens, t) -> logits``; the SUBS rule is applied outside, by :class:`seqtree.diffusion.MaskedDiffusion`.
"""

from __future__ import annotations

from torch import Tensor, nn


class HFMaskedLMDenoiser(nn.Module):
    """Wraps an ``AutoModelForMaskedLM`` (ESM-2, BERT, ModernBERT, ...). Time is ignored.

    ``pad_id`` positions are hidden from attention, as the wrapped model expects for padding.
    """

    def __init__(self, model: nn.Module, pad_id: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.pad_id = pad_id

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, pad_id: int | None = None, trust_remote_code: bool = False, **kwargs
    ) -> HFMaskedLMDenoiser:
        from transformers import AutoModelForMaskedLM

        model = AutoModelForMaskedLM.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
        if pad_id is None:
            pad_id = getattr(model.config, "pad_token_id", None)
        return cls(model, pad_id)

    @property
    def config(self):
        return self.model.config

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        del t
        attention_mask = None if self.pad_id is None else (tokens != self.pad_id).long()
        return self.model(input_ids=tokens, attention_mask=attention_mask).logits
