"""``seqtree train`` end to end in a process of its own: a few steps, a checkpoint, a resume, and a falling loss."""

import json
import random
from pathlib import Path

import pytest
import torch
from inprocess import seqtree_forked, seqtree_inprocess

from seqtree.config import RecipeError, load_recipe
from seqtree.models.loading import load_model
from seqtree.training.data import read_sequences, unigram_baseline
from seqtree.training.recipe import TrainRecipe
from seqtree.training.run import train_losses


def _write_fasta(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as handle:
        for index in range(count):
            unit = "".join(rng.choice("ACGT") for _ in range(2))
            handle.write(f">s{index}\n{unit * 12}\n")  # periodic: learnable from context, not from unigrams


@pytest.fixture
def tiny_recipe(tmp_path):
    _write_fasta(tmp_path / "train.fasta", 256, 0)
    _write_fasta(tmp_path / "val.fasta", 32, 1)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        f"""
domain: dna
name: dna-test
data: {{train: {tmp_path / "train.fasta"}, val: {tmp_path / "val.fasta"}, max_length: 24, batch_size: 32}}
model: {{hidden_size: 32, num_layers: 2, num_heads: 2}}
training: {{max_steps: 40, lr: 0.005, warmup_steps: 5, val_every_steps: 8, checkpoint_every_steps: 8, threads: 1}}
output_dir: {tmp_path / "run"}
"""
    )
    return recipe


# A training run in a process of its own: it seeds the global RNGs and sets Lightning's environment.
_seqtree = seqtree_forked


def test_train_resume_and_loss_falls(tiny_recipe, tmp_path):
    first = _seqtree("train", str(tiny_recipe))
    assert first.returncode == 0, first.stderr
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    step_before = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    assert step_before == 40

    again = _seqtree("train", str(tiny_recipe))  # refuses to overwrite a run
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = _seqtree("train", str(tiny_recipe), "--resume", "--set", "training.max_steps=80")
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 80
    assert (tmp_path / "run" / "csv" / "version_1" / "metrics.csv").is_file()  # the resumed attempt's log

    losses = train_losses(tmp_path / "run" / "csv")
    assert len(losses) >= 6
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3

    export = tmp_path / "run" / "model"
    facts = json.loads((export / "training_facts.json").read_text())
    assert facts["steps"] == 80
    assert "validation bits per token" in (export / "README.md").read_text()
    model = load_model(export)
    assert model.tokenizer.encode("ACGT") == [2, 3, 4, 5]
    assert model.max_length == 24


def test_model_card_sample_report_is_sized_by_a_flag_and_logs_its_progress(tiny_recipe, tmp_path):
    """Issue 16: a 60-step smoke run trained for 2 min, then wrote 512 samples per sampler for 7 min, silently."""
    assert TrainRecipe.model_fields["report_samples"].default <= 64
    result = _seqtree("train", str(tiny_recipe), "--report-samples", "5", "--set", "training.max_steps=8")
    assert result.returncode == 0, result.stderr
    assert "sampling 5 sequences with each of 2 samplers" in result.stderr
    assert result.stderr.count("5/5 samples") == 2  # one line per batch and sampler
    export = tmp_path / "run" / "model"
    assert "5 samples per sampler (seed 0)" in (export / "README.md").read_text()
    assert json.loads((export / "training_facts.json").read_text())["sample_report"]["samples"] == 5


def test_shipped_cards_say_how_many_samples_their_numbers_were_made_with():
    cards = sorted((Path(__file__).resolve().parents[1] / "models" / "checkpoints").glob("*/training_facts.json"))
    assert cards
    for facts_file in cards:
        report = json.loads(facts_file.read_text()).get("sample_report")
        card = (facts_file.parent / "README.md").read_text()
        assert (f"{report['samples']} samples per sampler" in card) if report else "## Samples" not in card


def test_bad_recipe_exits_2_naming_the_field(tiny_recipe):
    # in-process: both fail validation before anything trains or seeds a generator
    result = seqtree_inprocess("train", str(tiny_recipe), "--set", "model.num_layers=zero")
    assert result.returncode == 2
    assert "model.num_layers" in result.stderr and "Traceback" not in result.stderr
    unknown = seqtree_inprocess("train", str(tiny_recipe), "--set", "model.depth=3")
    assert unknown.returncode == 2 and "model.depth: unknown field" in unknown.stderr


def test_recipe_include_and_override(tmp_path, tiny_recipe):
    child = tmp_path / "child.yaml"
    child.write_text("include: tiny.yaml\nmodel: {num_layers: 3}\n")
    recipe = load_recipe(TrainRecipe, child, ["training.lr=0.01"])
    assert recipe.model.num_layers == 3 and recipe.model.hidden_size == 32 and recipe.training.lr == 0.01
    (tmp_path / "loop.yaml").write_text("include: loop.yaml\n")
    with pytest.raises(RecipeError, match="include cycle"):
        load_recipe(TrainRecipe, tmp_path / "loop.yaml")


def test_read_sequences_formats_and_errors(tmp_path):
    (tmp_path / "a.smi").write_text("CCO ethanol\n\nc1ccccc1\n")
    assert read_sequences(tmp_path / "a.smi") == ["CCO", "c1ccccc1"]
    (tmp_path / "a.csv").write_text("x\n")
    with pytest.raises(ValueError, match="unknown sequence file type '.csv'"):
        read_sequences(tmp_path / "a.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_sequences(tmp_path / "missing.fasta")


def test_unigram_baseline_is_cross_entropy_under_train_frequencies():
    # train: ids 2 x3, 3 x1 (+1 smoothing each -> 4/6, 2/6); val: one 2 and one 3
    baseline = unigram_baseline([[2, 2, 2, 3]], [[2, 3]], content_ids=[2, 3])
    import math

    assert baseline.bits_per_token == pytest.approx(-(math.log2(4 / 6) + math.log2(2 / 6)) / 2)
