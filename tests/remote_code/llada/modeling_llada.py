"""A stand-in for LLaDA's Hugging Face model (``GSAI-ML/LLaDA-8B-Base``, Nie et al. 2025) for seqtree's tests.

Same class name, configuration keys and forward signature as the published ``LLaDAModelLM``: ``forward(input_ids,
...)`` returning ``CausalLMOutputWithPast(logits=...)`` over ``embedding_size`` ids, with no time input; LLaDA's
``generate.py`` calls it as ``model(x).logits`` on the prompt followed by mask ids. The network is a small
bidirectional pre-norm transformer encoder with learned positions (the published one is Llama-shaped with rotary
positions); nothing here is the published network's code or weights.
"""

import torch
import transformers
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_llada import LLaDAConfig


class LLaDAModelLM(transformers.PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.embedding_size, config.d_model)
        self.wpe = nn.Embedding(config.max_sequence_length, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.mlp_hidden_size, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(config.d_model)
        self.ff_out = nn.Linear(config.d_model, config.embedding_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor = None,
        inputs_embeds: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        attention_bias: torch.Tensor | None = None,
        past_key_values=None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
    ):
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        x = x + self.wpe(torch.arange(x.shape[1], device=x.device))
        padding = None if attention_mask is None else attention_mask == 0
        logits = self.ff_out(self.ln_f(self.blocks(x, src_key_padding_mask=padding)))
        if return_dict is False:
            return (logits,)
        return CausalLMOutputWithPast(logits=logits)
