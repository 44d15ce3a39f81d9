"""``seqtree finetune`` end to end through the CLI: rounds, metrics, a loadable checkpoint, the on-policy switch,
a seeded buffer, clear errors, and an interrupted run that resumes to the uninterrupted result."""

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from inprocess import ForkedProcess, seqtree_forked, seqtree_inprocess
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
DNA = str(ROOT / "recipes" / "dna.yaml")
TINY = [
    "--set", "budget.nfe=160", "--set", "model.num_steps=8", "--set", "design.num_designs=4",
    "--set", "finetune.rounds=2", "--set", "finetune.steps_per_round=2", "--set", "finetune.batch_size=4",
    "--set", "finetune.replicates=2", "--set", "finetune.eval_samples=8", "--set", "finetune.threads=1",
    "--set", "budget.seconds=3600",
    # dna.yaml's remask population of 64 samples x 8 steps would not fit 160 NFE: a smaller one does
    "--set", "search.initial_samples=8", "--set", "search.elite_size=4", "--set", "search.children=8",
]  # fmt: skip
TIMING = {"search_seconds", "weight_seconds", "train_seconds", "eval_seconds"}


# A fine-tuning run in a process of its own: it seeds the global RNGs and sets Lightning's environment.
_seqtree = seqtree_forked


def _metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns=list(TIMING), errors="ignore")


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "whole"
    result = _seqtree("finetune", DNA, "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    return out


def test_two_rounds_write_metrics_plots_and_a_loadable_checkpoint(whole, tmp_path):
    for name in ("recipe.yaml", "metrics.csv", "finetune.png", "summary.json", "buffer.safetensors", "state.ckpt"):
        assert (whole / name).is_file(), name
    metrics = pd.read_csv(whole / "metrics.csv")
    assert metrics["round"].tolist() == [0, 1, 2]  # round 0: the pretrained model
    assert metrics["algorithm"].tolist()[1:] == ["remask", "remask"]
    assert (metrics["search_nfe"][1:] <= 160).all() and (metrics["replay_nfe"][1:].tolist()[0] == 0)
    assert metrics["replay_nfe"].iloc[2] > 0  # round 2's paths come from a fine-tuned policy: replayed
    assert metrics["cumulative_oracle_calls"].is_monotonic_increasing
    assert metrics["best_so_far"].is_monotonic_increasing
    for column in ("eval_reward_mean", "eval_reward_top10", "pretrained_nll_nats", "distinct_kmers", "mean_hamming",
                   "invalid_fraction", "buffer_ess", "wdce_loss"):  # fmt: skip
        assert column in metrics, column
    steps = pd.read_csv(whole / "csv" / "round_2" / "metrics.csv")  # Lightning's per-step log of the loss
    assert steps["wdce"].notna().sum() == 2
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["rounds_done"] == 2 and not summary["interrupted"]
    assert summary["oracle_calls"] == metrics["cumulative_oracle_calls"].iloc[-1]
    for k in (1, 2):
        assert (whole / "rounds" / str(k) / "designs.fasta").is_file()
    # The export is a model folder: the Python loader, `seqtree sample` and a recipe's model.name take it.
    from seqtree.models.loading import load_model

    tuned = load_model(whole / "model")
    before = load_file(str(ROOT / "models" / "checkpoints" / "dna-tiny" / "model.safetensors"))
    after = load_file(str(whole / "model" / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)  # training moved the weights
    assert tuned.tokenizer.decode(tuned.tokenizer.encode("ACGT")) == "ACGT"
    sampled = seqtree_inprocess("sample", str(whole / "model"), "--num", "2", "--length", "20", "--steps", "8")
    assert sampled.returncode == 0 and sampled.stdout.count(">sample") == 2, sampled.stderr
    design = seqtree_inprocess("design", DNA, "--out", str(tmp_path / "d"), "--set", f"model.name={whole / 'model'}",
                                "--set", "budget.nfe=80", "--set", "model.num_steps=8")  # fmt: skip
    assert design.returncode == 0, design.stderr


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(whole, tmp_path):
    cut = tmp_path / "cut"
    process = ForkedProcess("-m", "seqtree.cli", "finetune", DNA, "--out", str(cut), *TINY)
    for line in process.stderr_lines():  # round 1 is committed: interrupt round 2
        if line.startswith("round 1/"):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert json.loads((cut / "progress.json").read_text()) == {"rounds_done": 1}
    assert json.loads((cut / "summary.json").read_text())["interrupted"]
    assert pd.read_csv(cut / "metrics.csv")["round"].tolist() == [0, 1]
    resumed = _seqtree("finetune", "--resume", str(cut))
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(_metrics(cut), _metrics(whole))
    a, b = load_file(str(whole / "model" / "model.safetensors")), load_file(str(cut / "model" / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert (cut / "buffer.safetensors").read_bytes() == (whole / "buffer.safetensors").read_bytes()


def test_on_policy_baseline_and_a_buffer_seeded_from_lab_data(tmp_path):
    lab = tmp_path / "lab.csv"
    lab.write_text("sequence,reward\n" + "ACGT" * 32 + ",5.0\n")
    out = tmp_path / "policy"
    result = _seqtree("finetune", DNA, "--out", str(out), *TINY, "--set", "finetune.rounds=1",
                      "--set", "finetune.buffer_from=policy", "--set", f"finetune.seed_buffer={lab}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["algorithm"].iloc[1] == "best_of_n" and metrics["search_nfe"].iloc[1] <= 160
    from seqtree.buffer import ReplayBuffer

    buffer = ReplayBuffer.load(out / "buffer.safetensors")
    assert buffer.sources[:2] == ["file", "best_of_n"]
    assert int(buffer.columns["round"][0]) == -1  # the lab sequence, best weighted (reward 5 / alpha 0.1)


def test_bad_input_is_one_line_naming_what_is_wrong(tmp_path):
    no_section = tmp_path / "plain.yaml"
    text = (ROOT / "recipes" / "protein.yaml").read_text()
    no_section.write_text(text[: text.index("\nfinetune:")] + "\n")
    result = seqtree_inprocess("finetune", str(no_section), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "finetune: the recipe has no finetune: section" in result.stderr
    result = seqtree_inprocess("finetune", DNA, "--set", "finetune.alpha=-1", "--out", str(tmp_path / "y"))
    assert result.returncode == 2 and "finetune.alpha" in result.stderr
    missing = seqtree_inprocess("finetune", DNA, "--out", str(tmp_path / "z"), *TINY,
                                "--set", f"finetune.seed_buffer={tmp_path / 'nope.csv'}")  # fmt: skip
    assert missing.returncode == 2 and "nope.csv does not exist" in missing.stderr


FINETUNE_RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if "\nfinetune:" in p.read_text())


def test_the_dna_protein_and_ehrlich_recipes_have_finetune_sections():
    assert {p.stem for p in FINETUNE_RECIPES} >= {"dna", "protein", "ehrlich"}


# dna.yaml's tiny rounds run in the `whole` fixture (two rounds) and the on-policy test (one round): not again here.
TINY_ROUND_RECIPES = [p for p in FINETUNE_RECIPES if p.stem != "dna"]


@pytest.mark.parametrize("path", TINY_ROUND_RECIPES, ids=[p.stem for p in TINY_ROUND_RECIPES])
def test_every_finetune_recipe_runs_a_tiny_round(path, tmp_path):
    if "ehrlich" in path.read_text():
        pytest.importorskip("holo", reason="the holo extra (pytorch-holo) is not installed")
    # a remask population of 64 samples x 8 steps would not fit TINY's 160 NFE: a smaller one does
    small = ["--set", "search.initial_samples=8", "--set", "search.elite_size=4", "--set", "search.children=8"]
    small = small if "algorithm: remask" in path.read_text() else []
    result = _seqtree("finetune", str(path), "--out", str(tmp_path / "run"), *TINY, "--set", "finetune.rounds=1",
                      "--set", "budget.oracle_calls=64", *small)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(tmp_path / "run" / "metrics.csv")["round"].tolist() == [0, 1]
