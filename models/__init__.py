"""seqtree.models: denoiser backbones, tokenizers, the Hugging Face adapter, and the shipped checkpoints.

Installed from the top-level ``models/`` folder as ``seqtree.models``. Importing :mod:`seqtree.models.loading`
registers seqtree's backbones with ``transformers``' Auto classes.
"""

from seqtree.models.loading import LoadedModel, load_model, shipped_checkpoints
from seqtree.models.tokenizers import TokenizationError, Tokenizer

__all__ = ["LoadedModel", "TokenizationError", "Tokenizer", "load_model", "shipped_checkpoints"]
