"""Configuration of the LLaDA stand-in: the keys of ``GSAI-ML/LLaDA-8B-Base``'s ``LLaDAConfig`` that it uses."""

import transformers


class LLaDAConfig(transformers.PretrainedConfig):
    model_type = "llada"

    def __init__(
        self,
        d_model: int = 4096,
        n_heads: int = 32,
        n_layers: int = 32,
        mlp_hidden_size: int = 12288,
        vocab_size: int = 126464,
        embedding_size: int = 126464,
        max_sequence_length: int = 4096,
        mask_token_id: int = 126336,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.mlp_hidden_size = mlp_hidden_size
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_sequence_length = max_sequence_length
        self.mask_token_id = mask_token_id
