"""Command-line rough edges of issue 16: ``--threads``, a number written as a text field's choice, a custom oracle
answering with the wrong shape inside a design run, the curve's mean reward over valid sequences, and the
benchmarks run from any directory."""

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pandas as pd
import pytest
import torch
from inprocess import seqtree_inprocess
from pydantic import ValidationError

from seqtree.config import RecipeError, RecipeModel, load_recipe
from seqtree.recipe import load_design_recipe
from seqtree.training.recipe import TrainRecipe

ROOT = Path(__file__).resolve().parents[1]
PROTEIN = str(ROOT / "recipes" / "protein.yaml")
TINY = ["--set", "budget.nfe=160", "--set", "design.num_designs=4", "--set", "model.num_steps=8"]
BEST_OF_N = ["--set", "search={algorithm: best_of_n, batch_size: 8}"]


def one_value(sequences: list[str]) -> list[float]:
    """A custom oracle's bug: one number for the whole batch."""
    return [1.0]


def half_invalid(sequences: list[str]) -> list[float]:
    """1 for a sequence starting with one of nine amino acids, NaN (the floor, a recorded reason) otherwise."""
    return [1.0 if s[:1] in set("ACDEFGHIK") else math.nan for s in sequences]


def _custom(function: str) -> list[str]:
    return ["--set", f"oracle={{name: custom, params: {{function: 'test_cli_options:{function}'}}}}"]


def test_a_custom_oracle_of_the_wrong_shape_stops_the_design_run_naming_it(tmp_path):
    """Issue 16: ``[1.0]`` for a batch of several sequences was broadcast: best reward 1, no invalid sequence."""
    out = str(tmp_path / "run")
    result = seqtree_inprocess("design", PROTEIN, "--out", out, *TINY, *BEST_OF_N, *_custom("one_value"))
    assert result.returncode == 2, result.stdout
    error = result.stderr.strip().splitlines()[-1]  # after the "searching: ..." line
    assert error.startswith("error: oracle 'one_value' returned 1 value") and "for a batch of 8 sequences" in error
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was searched: no folder holding only recipe.yaml


def test_curve_mean_reward_is_over_valid_sequences_and_the_invalid_fraction_apart(tmp_path):
    """Issue 16: ``mean_reward`` averaged in the floor (-1000), giving values like -374.9."""
    out = tmp_path / "run"
    result = seqtree_inprocess("design", PROTEIN, "--out", str(out), *TINY, *BEST_OF_N, *_custom("half_invalid"))
    assert result.returncode == 0, result.stderr
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve.columns) == ["nfe", "oracle_calls", "seconds", "best_reward", "mean_reward", "invalid_fraction"]
    last = curve.iloc[-1]
    assert 0.0 < last["invalid_fraction"] < 1.0  # some sequences got the floor ...
    assert (curve["mean_reward"].dropna() == 1.0).all()  # ... and the mean is over the valid ones, all 1.0


def test_design_sample_and_finetune_take_threads(tmp_path, monkeypatch):
    """Issue 16: ``seqtree design`` had no ``--threads`` (training recipes and ``bench`` had)."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # restored after the test
    before = torch.get_num_threads()
    try:
        design = seqtree_inprocess("design", PROTEIN, "--out", str(tmp_path / "run"), *TINY, "--threads", "2")
        assert design.returncode == 0, design.stderr
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"  # a fleet's workers inherit it
        sample = seqtree_inprocess("sample", "protein-tiny", "--num", "2", "--length", "6", "--steps", "3",
                                   "--threads", "1")  # fmt: skip
        assert sample.returncode == 0, sample.stderr
        assert torch.get_num_threads() == 1

        seen = {}

        def stop_after_parsing(recipe, **options):
            seen["threads"] = recipe.finetune.threads
            raise ValueError("stopped after parsing")

        monkeypatch.setattr("seqtree.finetune.run_finetune", stop_after_parsing)
        finetune = seqtree_inprocess("finetune", PROTEIN, "--out", str(tmp_path / "ft"), "--threads", "3")
        assert finetune.returncode == 2 and "stopped after parsing" in finetune.stderr
        assert seen == {"threads": 3}  # the recipe's finetune.threads, which the fine-tuning run sets
        refused = seqtree_inprocess("design", PROTEIN, "--out", str(tmp_path / "r0"), "--threads", "0")
        assert refused.returncode == 2 and not (tmp_path / "r0").exists()
    finally:
        torch.set_num_threads(before)


def test_a_number_written_as_a_text_choice_is_that_choice(tmp_path):
    """Issue 16: ``--set training.precision=32`` was read as the integer 32 and refused."""
    train = ROOT / "recipes" / "train" / "dna-tiny.yaml"
    assert load_recipe(TrainRecipe, train, ["training.precision=32"]).training.precision == "32"
    assert load_design_recipe(PROTEIN, ["finetune.precision=32"]).finetune.precision == "32"
    (tmp_path / "t.yaml").write_text(f"include: {train}\ntraining: {{precision: 32}}\n")  # in a file too
    assert load_recipe(TrainRecipe, tmp_path / "t.yaml").training.precision == "32"
    with pytest.raises(RecipeError, match="training.precision"):  # only a number written exactly as a choice
        load_recipe(TrainRecipe, train, ["training.precision=32.0"])

    class Section(RecipeModel):  # every recipe section alike: choices inside unions, text fields left alone
        mode: Literal["1", "2", "auto"] | None = None
        name: str = "x"

    assert Section(mode=2).mode == "2" and Section(mode="auto").mode == "auto"
    with pytest.raises(ValidationError):
        Section(mode=3)
    with pytest.raises(ValidationError):
        Section(name=3)


def test_bench_runs_from_any_directory(tmp_path):
    """Issue 16: ``seqtree bench`` imported bench/ from the working directory, so it ran only from a checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "seqtree.cli", "bench", "search", "--quick", "--only", "memory", "--max-nodes", "2000",
         "--out", "out"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "memory.csv").is_file()


def test_the_search_benchmark_and_the_tests_share_one_copy_of_the_toys():
    import fakes
    import seqtree.testing
    from seqtree.bench.search import _toy

    assert fakes.ExactJointDenoiser is seqtree.testing.ExactJointDenoiser
    toys, problem, denoiser, target, alpha = _toy()
    assert toys is seqtree.testing and isinstance(denoiser, seqtree.testing.ExactJointDenoiser)
    assert math.isclose(float(target.sum()), 1.0)


def test_bench_recipes_names_a_recipe_file_given_after_algorithms(capsys):
    """``--algorithms`` takes every word after it: a recipe file named there used to be run as an algorithm."""
    from seqtree.bench.__main__ import main

    for argv, expected in (
        (["remask", "recipes/dna.yaml"], "recipes/dna.yaml is a recipe file, not an algorithm"),
        (["remaskk"], "unknown remaskk (known: all, "),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(["recipes", "--out", "unused", "--against-sampling", "--algorithms", *argv])
        assert stopped.value.code == 2 and expected in capsys.readouterr().err
