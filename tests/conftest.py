"""Shared fixtures: tiny Hugging Face models built and saved locally (nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch


def pytest_configure(config):
    # Tests run tiny models: one thread avoids oversubscribing small CPUs and is faster for tiny ops.
    torch.set_num_threads(1)


# How the suite's two workers share it (pyproject's ``-n 2 --dist loadscope``, with the scheduler below):
# - each module runs on one worker, so that its module fixtures (a fine-tuning run, a trained toy, a DDP run) are
#   built once;
# - the long modules whose tests share nothing costly (no module fixture beyond a cheap toy) are spread test by test,
#   and handed out last, so that the two workers finish together rather than one waiting on a 100 s file;
# - the modules that keep a worker longest start first (longest first is what balances two workers best; an order
#   that is out of date costs time, never a result).
SPREAD_ACROSS_WORKERS = {"test_checkpoints.py", "test_recipes.py", "test_search.py"}
START_FIRST = ["test_alignment_text.py", "test_finetune_prompts.py", "test_wdce.py", "test_prompts.py",
               "test_finetune.py", "test_text_small.py", "test_ddp.py", "test_bench_ehrlich.py"]  # fmt: skip


def work_unit(nodeid: str) -> str:
    """The unit a worker runs whole: the test's module, or the test itself in a module spread across workers."""
    module = nodeid.split("::", 1)[0]
    return nodeid if module.rsplit("/", 1)[-1] in SPREAD_ACROSS_WORKERS else module


def start_order(unit: str, collected_at: int) -> tuple[int, int]:
    """Sort key of a unit: START_FIRST's modules in their order, then the other modules, then the spread tests, each
    in collection order."""
    module = unit.split("::", 1)[0].rsplit("/", 1)[-1]
    if module in START_FIRST:
        return START_FIRST.index(module), collected_at
    return len(START_FIRST) + (module in SPREAD_ACROSS_WORKERS), collected_at


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """xdist's per-scope scheduling with seqtree's units and their start order. (The xdist_group marks of
        ``--dist loadgroup`` do not reach pytest 9's node ids under pytest-xdist 3.8, so they cannot group.)"""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_ordered", False):  # the queue is whole before the first unit is handed out
                index = {nodeid: i for i, nodeid in enumerate(self.collection)}
                first = {unit: index[next(iter(nodeids))] for unit, nodeids in self.workqueue.items()}
                units = sorted(self.workqueue.items(), key=lambda item: start_order(item[0], first[item[0]]))
                self.workqueue.clear()
                self.workqueue.update(units)
                self._ordered = True
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)


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
