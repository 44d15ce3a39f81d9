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
    "selfies-tiny": ("selfies", ROOT / "data/selfies/train.txt.gz", ROOT / "data/selfies/val.txt.gz"),
    "text-tiny": ("text", ROOT / "data/text/train.txt", ROOT / "data/text/val.txt"),
    **{
        f"{instance}-tiny": (
            "ehrlich",
            ROOT / f"data/ehrlich/{instance}/train.txt",
            ROOT / f"data/ehrlich/{instance}/val.txt",
        )
        for instance in ("ehrlich-l32", "ehrlich-l128")
    },
}
ALPHABETS = {"dna": set("ACGT"), "protein": set("ACDEFGHIKLMNPQRSTVWY"), "ehrlich": set("ACDEFGHIKLMNPQRSTVWY")}
# A perfect model of an Ehrlich prior's data reaches the entropy rate of the function's Markov process; the NELBO
# is an upper bound that a good tiny model comes close to (the cards: 2.46 and 2.42 bits against 2.38).
EHRLICH_NELBO_SLACK_BITS = 0.2
# Floor on the fraction of sampled SMILES that RDKit parses, with confidence-ordered decoding at temperature 0.7
# (the card's second sampler). The card measures 7.0% on 512 samples; with 256 samples the binomial standard error
# is 1.6 points, so 2% is three standard errors below the measured rate: the test fails when the model or the
# sampler breaks, not by chance. (The tiny model's validity is low; see its card.)
SMILES_VALIDITY_FLOOR = 0.02
SMILES_SAMPLES = 256
# selfies-tiny: every SELFIES string decodes to a molecule; the card measures validity and uniqueness on 2,048
# samples (ancestral, 64 steps); 128 samples of 32 steps here, with floors well below the card's numbers.
SELFIES_SAMPLES = 128
SELFIES_VALIDITY_FLOOR = 0.97
SELFIES_UNIQUENESS_FLOOR = 0.9
# Validation sequences scored per checkpoint: the first 512 where the model is more than a bit per token below the
# unigram baseline, all of them elsewhere. Measured on the whole sets (bits against baseline, standard error of the
# estimate): smiles 1.67 / 3.32 (0.016 on 4,000), selfies 1.92 / 3.15 (0.016 on 4,000), text 3.22 / 4.33 (0.025 on
# 1,440). On 512 sequences the standard error is at most 0.045, so the margins are 25 to 37 standard errors, and a
# broken model still fails; dna (0.06 bits below, 4 standard errors) and protein (0.14, 5) keep every sequence.
VALIDATION_SUBSET = {"smiles-tiny": 512, "selfies-tiny": 512, "text-tiny": 512}


def test_every_domain_is_shipped():
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


@torch.no_grad()
def test_sampled_smiles_parse_above_the_floor():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    model = load_model("smiles-tiny")
    generator = torch.Generator().manual_seed(1)
    roots = roots_of_lengths(model.tokenizer, model.sample_lengths(SMILES_SAMPLES, generator), "", model.max_length)
    samples = sample_sequences(
        model, roots, SMILES_SAMPLES, sampler="confidence", tokens_per_step=1, temperature=0.7, generator=generator,
        batch_size=128,
    )  # fmt: skip
    valid = sum(Chem.MolFromSmiles(s) is not None for s in samples.sequences) / SMILES_SAMPLES
    assert valid >= SMILES_VALIDITY_FLOOR, f"only {valid:.3f} of sampled SMILES parse"


@torch.no_grad()
def test_sampled_selfies_decode_to_molecules_above_the_floor():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    model = load_model("selfies-tiny")
    generator = torch.Generator().manual_seed(1)
    roots = roots_of_lengths(model.tokenizer, model.sample_lengths(SELFIES_SAMPLES, generator), "", model.max_length)
    samples = sample_sequences(model, roots, SELFIES_SAMPLES, sampler="ancestral", num_steps=32, generator=generator)
    smiles = [model.tokenizer.to_oracle(s) for s in samples.sequences]
    valid = [s for s in smiles if s and Chem.MolFromSmiles(s) is not None]
    assert len(valid) / SELFIES_SAMPLES >= SELFIES_VALIDITY_FLOOR, f"only {len(valid)} of {SELFIES_SAMPLES} decode"
    assert len(set(valid)) / len(valid) >= SELFIES_UNIQUENESS_FLOOR


def validation_bits_per_token(name: str) -> tuple[float, float]:
    """(NELBO bits per token of the shipped model on its validation data, unigram baseline of the same data)."""
    _, train, val = SHIPPED[name]
    model = load_model(name)
    data = SequenceDataModule(model.tokenizer, train, val, max_length=model.max_length, batch_size=128)
    data.setup()
    data.val_encoded = data.val_encoded[: VALIDATION_SUBSET.get(name)]  # the baseline is read on the same subset
    generator = torch.Generator().manual_seed(0)
    nats, tokens = 0.0, 0
    with torch.no_grad():
        for batch in data.val_dataloader():
            out = model.diffusion.nelbo(
                model.denoiser, batch, generator=generator, maskable=batch != model.tokenizer.pad_id
            )
            nats += float(out.nats.sum())
            tokens += int(out.num_tokens.sum())
    return nats / tokens / math.log(2), data.baseline().bits_per_token


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_validation_bits_per_token_beat_unigram_baseline(name):
    bits, baseline = validation_bits_per_token(name)
    assert bits < baseline, f"{name}: {bits:.4f} bits/token, unigram baseline {baseline:.4f}"


@pytest.mark.parametrize("instance", ["ehrlich-l32", "ehrlich-l128"])
def test_ehrlich_priors_come_close_to_the_entropy_rate_of_the_functions_markov_process(instance):
    pytest.importorskip("holo", reason="needs the holo extra")
    from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle

    fn = EhrlichOracle(**BENCHMARK_INSTANCES[instance]).fn
    transition, stationary = fn.transition_matrix.double(), fn.stationary_dist.squeeze(-1).double()
    logs = torch.where(transition > 0, transition.log2(), torch.zeros_like(transition))
    entropy_rate = float(-(stationary[:, None] * transition * logs).sum())
    bits, _ = validation_bits_per_token(f"{instance}-tiny")
    assert bits < entropy_rate + EHRLICH_NELBO_SLACK_BITS, f"{bits:.3f} bits vs entropy rate {entropy_rate:.3f}"
