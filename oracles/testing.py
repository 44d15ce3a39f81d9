"""Helpers shared by the oracle tests and the benchmark: example batches and tiny local text models.

Nothing here downloads anything: the tiny Hugging Face classifier and sentence-transformers model are built from
random weights and a character-level tokenizer written into a local folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqtree.oracles.base import Oracle

EXAMPLES: dict[str, list[str]] = {
    "protein": ["MKTAYIAKQRQISFVKSHFSRQ", "GLWSKIKEVGKEAAKAAAKAAGKAALGAVSEAV", "ACDEFGHIKLMNPQRSTVWY"],
    "dna": ["ACGTGCTAGCTTGTTTACATTGCA", "GGGTCCAAAGGTCAATTTAAACGG", "ATATATATGCGCGCAAAAAAAT"],
    "smiles": ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1", "CCN(CC)CCNC(=O)c1ccc(N)cc1"],
    "text": ["What a wonderful day!", "This is terrible and sad.", "The cat sat on the mat."],
}
# Invalid for every oracle of the domain (the empty string is invalid everywhere).
BAD_EXAMPLES: dict[str, list[str]] = {
    "protein": ["", "mkta", "MKXZ*"],
    "dna": ["", "acgt", "ACGN"],
    "smiles": ["", "C1CC(", "xyz"],
    "text": [""],
    "ehrlich": ["", "A", "ZZZZ"],
}
TINY_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 .,!?'"


def examples_for(oracle: Oracle, domain: str, n: int = 3) -> list[str]:
    """A few valid sequences for ``oracle`` (Ehrlich: sampled from its own DMP)."""
    if domain == "ehrlich":
        return oracle.sample_feasible(n, generator=torch.Generator().manual_seed(0))  # type: ignore[attr-defined]
    return list(EXAMPLES.get(domain, EXAMPLES["text"]))[:n]


def _char_tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + list(TINY_ALPHABET))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128,
    )
    fast.save_pretrained(folder)
    return fast


def _tiny_bert_config(vocab_size: int, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=128, **extra,
    )


def build_tiny_text_classifier(folder: str | Path, *, seed: int = 0) -> Path:
    """A random 2-label BERT classifier (labels NEGATIVE / POSITIVE) with a character tokenizer, saved locally."""
    from transformers import BertForSequenceClassification

    folder = Path(folder)
    tok = _char_tokenizer(folder)
    config = _tiny_bert_config(
        len(tok), num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1}
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def build_tiny_sentence_transformer(folder: str | Path, *, seed: int = 0) -> Path:
    """A random tiny BERT encoder with mean pooling, saved as a sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    folder = Path(folder)
    base = folder / "encoder"
    tok = _char_tokenizer(base)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        BertModel(_tiny_bert_config(len(tok))).save_pretrained(base)
    encoder = Transformer(str(base), max_seq_length=128)
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(folder / "st"))
    return folder / "st"


def example_params(name: str, workdir: str | Path) -> dict[str, Any]:
    """Parameters that make a registered oracle buildable offline (only oracles with required params)."""
    workdir = Path(workdir)
    if name == "hf_classifier":
        return {"model": str(build_tiny_text_classifier(workdir / "tiny_classifier")), "label": "POSITIVE"}
    if name == "embedding_similarity":
        return {"model": str(build_tiny_sentence_transformer(workdir / "tiny_st")), "target": "a happy day"}
    if name == "char_ngram_similarity":
        return {"target": "a wonderful day"}
    if name == "topic_words":
        return {"words": ["day", "cat", "sea"]}
    if name == "learned":
        return {"path": "amp_classifier"}
    if name == "custom":
        return {"function": "seqtree.oracles.custom:example_length"}
    if name == "substructure":
        return {"smarts": "[#6]"}
    return {}
