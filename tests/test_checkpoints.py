"""Every shipped checkpoint loads from the installed package, samples valid sequences, and beats the unigram
baseline of its own data on validation bits per token (recomputed here, not read from the card)."""

import math
from pathlib import Path

import pytest
import torch

import seqtree.models
from seqtree.generate import roots_of_lengths, sample_sequences
from seqtree.models.loading import load_model, shipped_checkpoints
from seqtree.training.data import SequenceDataModule

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {
    "dna-tiny": ("dna", ROOT / "data/dna/train.fasta", ROOT / "data/dna/val.fasta"),
    "protein-tiny": ("protein", ROOT / "data/protein/train.fasta", ROOT / "data/protein/val.fasta"),
    "smiles-tiny": ("smiles", ROOT / "data/smiles/train.smi", ROOT / "data/smiles/val.smi"),
    "text-tiny": ("text", ROOT / "data/text/train.txt", ROOT / "data/text/val.txt"),
}
ALPHABETS = {"dna": set("ACGT"), "protein": set("ACDEFGHIKLMNPQRSTVWY")}
# Floor on the fraction of sampled SMILES that RDKit parses. The card of smiles-tiny reports the measured rate on
# 512 samples; the floor sits well below it (more than 5 binomial standard errors for 64 samples) so the test fails
# only when the model or the sampler really breaks, not by chance.
SMILES_VALIDITY_FLOOR = 0.5


def test_all_four_domains_are_shipped():
    assert set(SHIPPED) <= set(shipped_checkpoints())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_loads_from_installed_package_and_samples_valid_sequences(name):
    domain, _, _ = SHIPPED[name]
    model = load_model(name)
    package_dir = Path(seqtree.models.__file__).parent
    assert shipped_checkpoints()[name].parent.parent == package_dir
    assert model.domain == domain
    generator = torch.Generator().manual_seed(0)
    lengths = model.sample_lengths(64, generator)
    roots = roots_of_lengths(model.tokenizer, lengths, "", model.max_length)
    samples = sample_sequences(model, roots, 64, sampler="ancestral", num_steps=32, generator=generator)
    assert samples.output.nfe <= 64 * 32
    for sequence, length in zip(samples.sequences, lengths):
        assert model.tokenizer.decode(model.tokenizer.encode(sequence)) == sequence
        if domain in ALPHABETS:
            assert set(sequence) <= ALPHABETS[domain] and len(sequence) == length
    if domain == "smiles":
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        valid = sum(Chem.MolFromSmiles(s) is not None for s in samples.sequences) / len(samples.sequences)
        assert valid >= SMILES_VALIDITY_FLOOR, f"only {valid:.2f} of sampled SMILES parse"


@pytest.mark.parametrize("name", sorted(SHIPPED))
@torch.no_grad()
def test_validation_bits_per_token_beat_unigram_baseline(name):
    domain, train, val = SHIPPED[name]
    model = load_model(name)
    data = SequenceDataModule(model.tokenizer, train, val, max_length=model.max_length, batch_size=128)
    data.setup()
    generator = torch.Generator().manual_seed(0)
    nats, tokens = 0.0, 0
    for batch in data.val_dataloader():
        out = model.diffusion.nelbo(
            model.denoiser, batch, generator=generator, maskable=batch != model.tokenizer.pad_id
        )
        nats += float(out.nats.sum())
        tokens += int(out.num_tokens.sum())
    bits = nats / tokens / math.log(2)
    baseline = data.baseline().bits_per_token
    assert bits < baseline, f"{name}: {bits:.4f} bits/token, unigram baseline {baseline:.4f}"
