"""seqtree's own denoiser backbone: a bidirectional transformer with optional time conditioning.

The architecture is the diffusion transformer of MDLM (Sahoo et al. 2024, App. C), itself DiT (Peebles & Xie 2023,
Sec. 3.2): pre-norm blocks whose layer norms are modulated by shift / scale / gate computed from the time embedding
(adaLN-Zero). With ``time_conditioning=False`` the network ignores ``t`` (RADD, Ou et al. 2024: the optimal
denoiser of an absorbing diffusion does not depend on time), which also makes the no-change cache exact.

It is a ``transformers.PreTrainedModel`` with its own config class, so ``save_pretrained`` / ``from_pretrained``
move it like any Hugging Face model (safetensors weights, ``config.json``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PretrainedConfig, PreTrainedModel


class SeqTreeTransformerConfig(PretrainedConfig):
    model_type = "seqtree_transformer"

    def __init__(
        self,
        vocab_size: int = 32,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        max_positions: int = 128,
        dropout: float = 0.0,
        time_conditioning: bool = False,
        time_embedding_size: int = 128,
        mask_token_id: int = 1,
        pad_token_id: int = 0,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.max_positions = max_positions
        self.dropout = dropout
        self.time_conditioning = time_conditioning
        self.time_embedding_size = time_embedding_size
        self.mask_token_id = mask_token_id
        super().__init__(pad_token_id=pad_token_id, **kwargs)


def sinusoidal_embedding(t: Tensor, size: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style sinusoidal features of scalar times t [B] -> [B, size] (DiT's timestep embedder)."""
    half = size // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * 1000.0 * frequencies  # scaled so t in [0, 1] spans many periods
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class _Block(nn.Module):
    """Pre-norm self-attention + MLP block with adaLN modulation when a conditioning vector is given."""

    def __init__(self, config: SeqTreeTransformerConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.num_heads = config.num_heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=not config.time_conditioning)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=not config.time_conditioning)
        hidden = int(width * config.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.dropout = nn.Dropout(config.dropout)
        self.modulation = nn.Linear(config.time_embedding_size, 6 * width) if config.time_conditioning else None

    def forward(self, x: Tensor, condition: Tensor | None) -> Tensor:
        batch, length, width = x.shape
        modulated = self.modulation is not None and condition is not None
        if modulated:
            shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(condition).chunk(6, dim=-1)
        h = self.norm1(x)
        if modulated:
            h = _modulate(h, shift1, scale1)
        q, k, v = self.qkv(h).view(batch, length, 3, self.num_heads, width // self.num_heads).unbind(2)
        attention = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=self.dropout.p if self.training else 0.0
        )
        update = self.dropout(self.proj(attention.transpose(1, 2).reshape(batch, length, width)))
        x = x + (gate1.unsqueeze(1) * update if modulated else update)
        h = self.norm2(x)
        if modulated:  # without conditioning, shift 0 / scale 0 / gate 1 are the identity: skipped, not computed
            h = _modulate(h, shift2, scale2)
        update = self.dropout(self.mlp(h))
        return x + (gate2.unsqueeze(1) * update if modulated else update)


class SeqTreeTransformer(PreTrainedModel):
    """Denoiser: tokens Long[B, L] and times Float[B] -> logits over clean tokens Float[B, L, V]."""

    config_class = SeqTreeTransformerConfig
    base_model_prefix = "seqtree_transformer"
    main_input_name = "tokens"

    def __init__(self, config: SeqTreeTransformerConfig) -> None:
        super().__init__(config)
        if config.hidden_size % config.num_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not divisible by num_heads {config.num_heads}")
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_positions, config.hidden_size)
        if config.time_conditioning:
            size = config.time_embedding_size
            self.time_mlp = nn.Sequential(nn.Linear(size, size), nn.SiLU(), nn.Linear(size, size))
        else:
            self.time_mlp = None
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, _Block) and module.modulation is not None:
            # adaLN-Zero: every block starts as the identity.
            nn.init.zeros_(module.modulation.weight)
            nn.init.zeros_(module.modulation.bias)

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        batch, length = tokens.shape
        if length > self.config.max_positions:
            raise ValueError(f"sequence length {length} exceeds the model's max_positions {self.config.max_positions}")
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        condition = None
        if self.time_mlp is not None:
            if t is None:
                raise ValueError("this denoiser is time-conditioned: pass t")
            condition = F.silu(self.time_mlp(sinusoidal_embedding(t, self.config.time_embedding_size)))
        for block in self.blocks:
            x = block(x, condition)
        return self.head(self.final_norm(x))
