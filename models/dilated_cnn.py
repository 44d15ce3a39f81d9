"""A small dilated convolutional denoiser for DNA.

Residual blocks of dilated 1-D convolutions with exponentially growing dilation, as in the ByteNet-style
encoders used for genomic sequence models (e.g. the dilated CNN backbone of "Discrete diffusion for DNA"
baselines in DRAKES, Wang et al. 2024). Convolutions see local motifs at every scale at a fraction of a
transformer's cost on long sequences. Optional FiLM time conditioning (Perez et al. 2018).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PretrainedConfig, PreTrainedModel

from seqtree.models.transformer import sinusoidal_embedding


class DilatedCNNConfig(PretrainedConfig):
    model_type = "seqtree_dilated_cnn"

    def __init__(
        self,
        vocab_size: int = 6,
        hidden_size: int = 128,
        num_layers: int = 8,
        kernel_size: int = 5,
        dilation_cycle: int = 4,
        dropout: float = 0.0,
        max_positions: int = 4096,
        time_conditioning: bool = False,
        time_embedding_size: int = 64,
        mask_token_id: int = 1,
        pad_token_id: int = 0,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.kernel_size = kernel_size
        self.dilation_cycle = dilation_cycle
        self.dropout = dropout
        self.max_positions = max_positions
        self.time_conditioning = time_conditioning
        self.time_embedding_size = time_embedding_size
        self.mask_token_id = mask_token_id
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class _ConvBlock(nn.Module):
    def __init__(self, config: DilatedCNNConfig, dilation: int) -> None:
        super().__init__()
        width = config.hidden_size
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv1d(
            width, width, config.kernel_size, dilation=dilation, padding=dilation * (config.kernel_size - 1) // 2
        )
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(config.dropout)
        self.film = nn.Linear(config.time_embedding_size, 2 * width) if config.time_conditioning else None

    def forward(self, x: Tensor, condition: Tensor | None) -> Tensor:
        h = self.norm(x)
        if self.film is not None and condition is not None:
            scale, shift = self.film(condition).unsqueeze(1).chunk(2, dim=-1)
            h = h * (1.0 + scale) + shift
        h = F.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2))
        return x + self.dropout(self.out(h))


class DilatedCNN(PreTrainedModel):
    """Denoiser: tokens Long[B, L], times Float[B] -> logits Float[B, L, V]."""

    config_class = DilatedCNNConfig
    base_model_prefix = "seqtree_dilated_cnn"
    main_input_name = "tokens"

    def __init__(self, config: DilatedCNNConfig) -> None:
        super().__init__(config)
        if config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the length, got {config.kernel_size}")
        self.embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(
            _ConvBlock(config, dilation=2 ** (i % config.dilation_cycle)) for i in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, tokens: Tensor, t: Tensor | None = None) -> Tensor:
        x = self.embedding(tokens)
        condition = None
        if self.config.time_conditioning:
            if t is None:
                raise ValueError("this denoiser is time-conditioned: pass t")
            condition = sinusoidal_embedding(t, self.config.time_embedding_size)
        for block in self.blocks:
            x = block(x, condition)
        return self.head(self.final_norm(x))
