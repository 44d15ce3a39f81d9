"""Shared fixtures: tiny Hugging Face models built and saved locally (nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch


def pytest_configure(config):
    # Tests run tiny models: one thread avoids oversubscribing small CPUs and is faster for tiny ops.
    torch.set_num_threads(1)


# The long modules whose tests share nothing costly (no module fixture beyond a cheap toy): their tests go to
# whichever worker is free, so that the suite's two workers finish together rather than one waiting on a 100 s
# file. Every other module runs on one worker, its module fixtures (a DDP run, a Ray cluster, a fine-tuning run)
# built once (pyproject's ``--dist loadgroup``).
SPREAD_ACROSS_WORKERS = {"test_checkpoints.py", "test_recipes.py", "test_search.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name not in SPREAD_ACROSS_WORKERS:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWCXBUZO", ".", "-", "<null_1>", "<mask>"]


@pytest.fixture(scope="session")
def tiny_esm_dir(tmp_path_factory):
    """A randomly initialised 2-layer EsmForMaskedLM with ESM-2's real amino-acid vocabulary, saved to disk."""
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    directory = tmp_path_factory.mktemp("tiny-esm")
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(ESM_VOCAB) + "\n")
    tokenizer = EsmTokenizer(str(vocab_file))
    config = EsmConfig(
        vocab_size=len(ESM_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        mask_token_id=tokenizer.mask_token_id,
        position_embedding_type="rotary",
        token_dropout=False,
    )
    EsmForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A randomly initialised 2-layer BertForMaskedLM with a small word-piece vocabulary, saved to disk."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny-bert")
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *"abcdefghijklmnopqrstuvwxyz",
        "the",
        "cat",
        "sat",
        "on",
        "mat",
        "a",
        "dog",
        ".",
        ",",
        "##s",
    ]
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(words)) + "\n")
    tokenizer = BertTokenizer(str(vocab_file))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
