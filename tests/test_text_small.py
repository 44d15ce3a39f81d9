"""Bits per byte (the unit text-small is judged in) and the shipped text-small checkpoint.

Bits per byte = NELBO nats of the real validation tokens / ln 2 / the UTF-8 bytes those tokens decode to. The toy
below has tokens of 1, 2 and 4 bytes and padded rows, so dividing by tokens, or letting padding add bytes or
tokens, gives a different number than the hand-computed one.
"""

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from inprocess import seqtree_inprocess
from torch import nn

from seqtree.diffusion import NelboOutput
from seqtree.generate import roots_of_lengths, sample_sequences
from seqtree.models.loading import load_model
from seqtree.models.tokenizers import RegexTokenizer
from seqtree.training.data import ByteCounter, SequenceDataModule, bits_per_byte, text_bytes, unigram_baseline
from seqtree.training.pretrain import MaskedDiffusionLM

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT / "data/text/val.txt"
TRAIN = ROOT / "data/text/train.txt"

# Toy: SMILES-like tokens of 1, 2 and 4 bytes; pad = 0, mask = 1, "C" = 2, "Cl" = 3, "[nH]" = 4
TOY = RegexTokenizer(["C", "Cl", "[nH]"])
TOY_ROWS = torch.tensor([[3, 2, 0, 0, 0], [4, 0, 0, 0, 0]])  # "ClC" (2 tokens, 3 bytes), "[nH]" (1 token, 4 bytes)
TOY_ROW_NATS = [2.0, 1.0]  # what the fake NELBO below returns for each row
# By hand: 3 nats over 7 bytes (3 real tokens; 7 pad positions)
TOY_BITS_PER_BYTE = 3.0 / math.log(2) / 7


class _FixedNelbo:
    """A stand-in diffusion whose NELBO of each row is fixed (TOY_ROW_NATS), so the number is known exactly."""

    def nelbo(self, backbone, tokens, *, generator=None, maskable=None):
        nats = torch.tensor([TOY_ROW_NATS[0] if row[0] == 3 else TOY_ROW_NATS[1] for row in tokens.tolist()])
        return NelboOutput(nats=nats, num_tokens=maskable.sum(-1), t=torch.zeros(len(tokens)))


def _validate(count_bytes) -> dict[str, float]:
    system = MaskedDiffusionLM(nn.Linear(1, 1), _FixedNelbo(), pad_id=TOY.pad_id, count_bytes=count_bytes)
    loader = torch.utils.data.DataLoader(TOY_ROWS, batch_size=1)  # two batches: the sums run across batches
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return {k: float(v) for k, v in trainer.validate(system, loader, verbose=False)[0].items()}


def test_text_bytes_counts_the_utf8_bytes_of_the_decoded_real_tokens():
    assert text_bytes(TOY, [3, 2, 0, 0, 0]) == 3
    assert text_bytes(TOY, [4, 1, 0]) == 4  # the mask id is no text either
    assert ByteCounter(TOY)(TOY_ROWS) == 7


def test_bits_per_byte_is_nats_over_ln2_over_bytes():
    assert bits_per_byte(3.0, 7) == pytest.approx(TOY_BITS_PER_BYTE, rel=1e-12)
    with pytest.raises(ValueError, match="positive byte count"):
        bits_per_byte(3.0, 0)


def test_validation_reports_bits_per_byte_of_the_hand_computed_toy():
    scores = _validate(ByteCounter(TOY))
    # logged as float32: 1e-6 relative
    assert scores["val_bpb"] == pytest.approx(TOY_BITS_PER_BYTE, rel=1e-6)
    assert scores["val_bpt"] == pytest.approx(3.0 / math.log(2) / 3, rel=1e-6)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda rows: int((rows != TOY.pad_id).sum()),  # divides by tokens: 3 instead of 7
        lambda rows: rows.numel(),  # counts every position, padding included: 10
        lambda rows: sum(text_bytes(TOY, row) for row in rows.tolist()) + int((rows == TOY.pad_id).sum()),  # pads
    ],
    ids=["per-token", "all-positions", "pads-as-bytes"],
)
def test_wrong_byte_counts_miss_the_hand_computed_value(wrong):
    """The check above can fail: each plausible mistake lands far outside its 1e-6 tolerance."""
    assert _validate(wrong)["val_bpb"] != pytest.approx(TOY_BITS_PER_BYTE, rel=1e-3)


def test_unigram_baseline_per_byte_is_the_same_bits_over_bytes():
    # train frequencies with add-one: C 3 + 1, Cl 1 + 1, [nH] 0 + 1 -> 4/7, 2/7, 1/7
    baseline = unigram_baseline([[2, 2, 2, 3]], [[3, 2], [4]], content_ids=[2, 3, 4], num_val_bytes=7)
    bits = -(math.log2(2 / 7) + math.log2(4 / 7) + math.log2(1 / 7))
    assert baseline.bits_per_token == pytest.approx(bits / 3, rel=1e-12)
    assert baseline.bits_per_byte == pytest.approx(bits / 7, rel=1e-12)


# ---------------------------------------------------------------------------------------------- the checkpoint
# text-small's card: validation NELBO 2.5 bits per byte at most (issue 15), recomputed here with one Monte Carlo
# draw of the NELBO per validation verse rather than read from the card.
TARGET_BITS_PER_BYTE = 2.5
# The one-draw estimate moves with its seed: seeds 0-4 gave 1.761, 1.781, 1.732, 1.784, 1.755 bits per byte (sd 0.021;
# runs/exp/h15/text_small_checks.py). Beating the unigram baseline (2.293) by 0.1, about five such sds, cannot be the
# draw's luck; the model clears it by 0.53, while a model that merely matches the unigram, or random weights, fails.
MARGIN_BELOW_UNIGRAM = 0.1
# Share of sampled words that occur in train.txt (64 ancestral samples, 32 steps, lengths from the training data):
# text-small 0.923, 0.925, 0.916 on seeds 0-2 (per-sample sd 0.088, so the mean of 64 has sd 0.011); the same tokens
# drawn from their unigram frequencies without context 0.818, 0.826, 0.821, 0.828, 0.833 on seeds 0-4 (sd of the mean
# about 0.01); random weights 0.505 (128 samples, 64 steps: text-small 0.914, 0.921, 0.911; runs/exp/h15/
# text_small_checks.py). The floor sits halfway between text-small and the unigram soup, over four sds of the mean
# from each: the check fails a model whose sub-words do not join into words (the unigram test below).
KNOWN_WORD_FLOOR = 0.87


@pytest.fixture(scope="module")
def text_small():
    return load_model("text-small")


@pytest.fixture(scope="module")
def text_data(text_small):
    data = SequenceDataModule(text_small.tokenizer, TRAIN, VAL, max_length=text_small.max_length, batch_size=256)
    data.setup()
    return data


def test_text_small_is_the_shipped_subword_model(text_small):
    from seqtree.models.tokenizers import SubwordTokenizer

    assert text_small.domain == "text" and text_small.max_length == 80
    assert isinstance(text_small.tokenizer, SubwordTokenizer)
    # the checkpoint carries the tokenizer data/text/tokenizer.py writes, not a copy that drifted
    shipped = SubwordTokenizer.from_file(ROOT / "data/text/kjv-bpe-4096.json")
    assert text_small.tokenizer.to_dict()["tokenizers_json"] == shipped.to_dict()["tokenizers_json"]


@torch.no_grad()
def test_validation_nelbo_is_below_the_target_and_the_unigram_baseline_in_bits_per_byte(text_small, text_data):
    model, data = text_small, text_data
    count = ByteCounter(model.tokenizer)
    generator = torch.Generator().manual_seed(0)
    nats, num_bytes = 0.0, 0
    for batch in data.val_dataloader():
        out = model.diffusion.nelbo(
            model.denoiser, batch, generator=generator, maskable=batch != model.tokenizer.pad_id
        )
        nats, num_bytes = nats + float(out.nats.sum()), num_bytes + count(batch)
    bits = bits_per_byte(nats, num_bytes)
    baseline = data.baseline()
    assert num_bytes == baseline.num_val_bytes == sum(len(v.encode()) for v in VAL.read_text().splitlines())
    assert bits <= TARGET_BITS_PER_BYTE, f"{bits:.4f} bits/byte"
    assert bits < baseline.bits_per_byte - MARGIN_BELOW_UNIGRAM, f"{bits:.4f} vs unigram {baseline.bits_per_byte:.4f}"


def _known_word_share(texts: list[str]) -> float:
    """The mean over texts of the share of a text's words that are words of train.txt."""
    from seqtree.training.text import known_word_fraction, words_of

    vocabulary = words_of(TRAIN.read_text().splitlines())
    fractions = [known_word_fraction([text], vocabulary)[0] for text in texts]
    return sum(fractions) / len(fractions)


@torch.no_grad()
def test_samples_are_written_in_words_of_the_training_text(text_small):
    model, num = text_small, 64
    generator = torch.Generator().manual_seed(0)
    roots = roots_of_lengths(model.tokenizer, model.sample_lengths(num, generator), "", model.max_length)
    samples = sample_sequences(model, roots, num, sampler="ancestral", num_steps=32, generator=generator)
    share = _known_word_share(samples.sequences)
    assert share >= KNOWN_WORD_FLOOR, f"only {share:.3f} of sampled words are training words"


def test_unigram_token_soup_stays_below_the_known_word_floor(text_small, text_data):
    """The floor above can fail: sub-words drawn from their training frequencies, without context, mostly decode to
    words too (" the", " and" are single tokens), yet fall below it."""
    tokenizer, num = text_small.tokenizer, 64
    counts = torch.zeros(tokenizer.vocab_size, dtype=torch.float64)
    for ids in text_data.train_encoded:
        counts += torch.bincount(torch.tensor(ids), minlength=tokenizer.vocab_size).double()
    keep = torch.zeros_like(counts, dtype=torch.bool)
    keep[tokenizer.content_ids] = True
    probs = torch.where(keep, counts, torch.zeros_like(counts))
    generator = torch.Generator().manual_seed(0)
    lengths = text_small.sample_lengths(num, generator)
    soup = [tokenizer.decode(torch.multinomial(probs, n, replacement=True, generator=generator).tolist())
            for n in lengths]  # fmt: skip
    assert _known_word_share(soup) < KNOWN_WORD_FLOOR


def test_seqtree_sample_completes_a_prompt_and_keeps_it():
    prompt = "And the LORD said, "
    result = seqtree_inprocess(
        "sample", "text-small", "--num", "4", "--prompt", prompt, "--length", "20", "--seed", "0"
    )
    assert result.returncode == 0, result.stderr
    texts = [line for line in result.stdout.splitlines() if not line.startswith(">")]
    assert len(texts) == 4
    for text in texts:
        assert text.startswith("And the LORD said,") and len(text) > len(prompt)
        assert "<mask>" not in text and "<pad>" not in text


def test_the_text_recipe_designs_with_text_small(tmp_path):
    """recipes/text.yaml with model.name=text-small: the sub-word prompt stays fixed and designs decode to text."""
    import pandas as pd

    out = tmp_path / "run"
    result = seqtree_inprocess(
        "design", "recipes/text.yaml", "--set", "model.name=text-small", "--set", "budget.nfe=400",
        "--set", "budget.seconds=60", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv")
    assert len(designs) > 0
    for sequence in designs["sequence"]:
        assert sequence.startswith("And the LORD said,")
        assert "<mask>" not in sequence


def test_the_report_only_path_redraws_the_card_samples_reproducibly(tmp_path, capsys):
    """python -m seqtree.training.report: the trainer's own sample report on an exported checkpoint, without
    training; the same seed and number give the same card, and a folder that is no checkpoint is refused (exit 2)."""
    import shutil

    from seqtree.training.report import main

    cards = []
    for name in ("a", "b"):
        folder = shutil.copytree(ROOT / "models/checkpoints/text-small", tmp_path / name)
        assert main([str(folder), "--train", str(TRAIN), "--num", "2", "--seed", "3"]) == 0
        card = (folder / "README.md").read_text()
        assert card.count("## Samples") == 1 and "2 samples per sampler (seed 3)" in card
        assert "| validation bits per UTF-8 byte (NELBO) |" in card  # the training facts above it are kept
        facts = json.loads((folder / "training_facts.json").read_text())
        assert facts["sample_report"]["samples"] == 2 and facts["val_bits_per_byte"] == 1.7644
        cards.append(card)
    assert cards[0] == cards[1]
    with pytest.raises(SystemExit) as refused:
        main([str(tmp_path), "--num", "2"])
    assert refused.value.code == 2 and "not an exported seqtree checkpoint" in capsys.readouterr().err
