"""A stand-in for MDLM's Hugging Face model (``kuleshov-group/mdlm-owt``, Sahoo et al. 2024) for seqtree's tests.

Same class name, configuration and forward signature as the published ``MDLM``: ``forward(input_ids, timesteps,
output_hidden_states, return_dict)``, where ``timesteps`` is the total noise sigma of the masking process, zeroed
when ``time_conditioning`` is false. The network is a small DiT (Peebles & Xie 2023): bidirectional attention blocks
whose layer norms are shifted, scaled and gated by an embedding of sigma (adaLN). Learned positions stand in for the
published rotary ones; nothing here is the published network's code or weights.
"""

import math

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import modeling_outputs

from .configuration_mdlm import MDLMConfig

FREQUENCIES = 256  # sinusoidal features of sigma


def noise_features(sigma: torch.Tensor, size: int = FREQUENCIES) -> torch.Tensor:
    """Sinusoidal features [B, size] of the noise levels sigma [B]."""
    half = size // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=sigma.device, dtype=torch.float32) / half)
    angles = sigma.float()[:, None] * frequencies[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class AdaLNBlock(nn.Module):
    """Attention and MLP, each behind a layer norm modulated by the noise embedding c [B, cond_dim]."""

    def __init__(self, dim: int, heads: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.modulation = nn.Linear(cond_dim, 6 * dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        x = x + gate1 * self.attn(h, h, h, need_weights=False)[0]
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class MDLM(transformers.PreTrainedModel):
    config_class = MDLMConfig
    base_model_prefix = "mdlm"

    def __init__(self, config: MDLMConfig) -> None:
        super().__init__(config)
        dim, cond = config.hidden_dim, config.cond_dim
        self.vocab_embed = nn.Embedding(config.vocab_size, dim)
        self.positions = nn.Embedding(config.model_length, dim)
        self.sigma_map = nn.Sequential(nn.Linear(FREQUENCIES, cond), nn.SiLU(), nn.Linear(cond, cond))
        self.blocks = nn.ModuleList(
            AdaLNBlock(dim, config.n_heads, cond, config.dropout) for _ in range(config.n_blocks)
        )
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_modulation = nn.Linear(cond, 2 * dim)
        self.output_layer = nn.Linear(dim, config.vocab_size)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor = None,
        timesteps: torch.FloatTensor = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ):
        sigma = timesteps if self.config.time_conditioning else torch.zeros_like(timesteps)
        c = F.silu(self.sigma_map(noise_features(sigma)))
        x = self.vocab_embed(input_ids) + self.positions(torch.arange(input_ids.shape[1], device=input_ids.device))
        hidden = [x]
        for block in self.blocks:
            x = block(x, c)
            hidden.append(x)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        logits = self.output_layer(self.norm_final(x) * (1 + scale) + shift)
        hidden_states = tuple(hidden) if output_hidden_states else None
        if return_dict is False:
            return (logits, hidden_states) if output_hidden_states else logits
        return modeling_outputs.MaskedLMOutput(logits=logits, hidden_states=hidden_states)
