"""``python -m bench prompts`` (issue 15's many-prompt benchmark): the mean anytime curve over prompts, the NFE to
match best-of-N, and a tiny end-to-end run whose tables agree with its run folders."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from inprocess import python_forked

from seqtree.bench.prompts import best_by, match_along_baseline, run, summarize

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["And God said,", "The LORD is my shepherd;", "Blessed are the meek:"]


def test_best_by_averages_each_prompts_best_so_far_once_every_prompt_has_scored():
    curves = pd.DataFrame({
        "prompt_id": ["0", "0", "0", "1", "1"],
        "nfe": [10, 20, 30, 25, 40],
        "best_reward": [0.1, 0.5, 0.3, 0.2, 0.9],  # a curve's best never falls: the 0.3 is read as 0.5
    })  # fmt: skip
    grid = np.array([0, 10, 24, 25, 30, 40, 50])
    got = best_by(curves, grid)
    assert np.isneginf(got[:3]).all()  # prompt 1 has not scored before NFE 25
    assert got[3:].tolist() == pytest.approx([(0.5 + 0.2) / 2, (0.5 + 0.2) / 2, (0.5 + 0.9) / 2, (0.5 + 0.9) / 2])


RECIPE = SimpleNamespace(search=SimpleNamespace(algorithm="dts_star"))  # what summarize reads of a recipe


def _runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for algorithm, rewards in {"best_of_n": {100: 0.40, 500: 0.50}, "dts_star": {100: 0.52, 500: 0.60},
                               "smc": {100: 0.45, 500: 0.51}}.items():  # fmt: skip
        for budget, reward in rewards.items():
            for seed, noise in enumerate((-0.01, 0.01)):
                rows.append({"algorithm": algorithm, "nfe_budget": budget, "seed": seed, "prompts": 3,
                             "reward": reward + noise, "fluency": -1.5 + noise, "best_fluency": -1.4,
                             "reward_mean": 0.1, "distinct_2": 1.0, "floored": 0, "nfe": 3 * budget,
                             "oracle_calls": 10, "fluency_rows": 80, "seconds": 1.0})  # fmt: skip
    grid = np.linspace(0, 500, 6)
    curves = pd.concat([
        pd.DataFrame({"algorithm": "best_of_n", "nfe": grid, "reward": [-np.inf, 0.3, 0.4, 0.45, 0.48, 0.5]}),
        pd.DataFrame({"algorithm": "dts_star", "nfe": grid, "reward": [-np.inf, 0.45, 0.5, 0.55, 0.58, 0.6]}),
        pd.DataFrame({"algorithm": "smc", "nfe": grid, "reward": [-np.inf, 0.7, 0.7, 0.7, 0.7, 0.7]}),
    ])  # fmt: skip
    return pd.DataFrame(rows), curves


def test_nfe_to_match_reads_returned_designs_only_and_the_standard_error_is_over_seeds():
    runs, curves = _runs()
    table = summarize(runs, curves, RECIPE).set_index(["algorithm", "nfe_budget"])
    assert table["bon_target"].iloc[0] == pytest.approx(0.50)
    assert table.loc[("dts_star", 100), "reward_se"] == pytest.approx(0.01)  # std 0.01 * sqrt(2) over sqrt(2) seeds
    dts = table.loc[("dts_star", 100)]
    assert dts["nfe_to_match_curve"] == 200 and dts["nfe_to_match_budget"] == 100 and dts["nfe_to_match"] == 100
    assert dts["fraction_of_bon"] == pytest.approx(0.2)
    smc = table.loc[("smc", 500)]  # its curve counts FK's argmax predictions, which it never returns: budgets only
    assert math.isnan(smc["nfe_to_match_curve"]) and smc["nfe_to_match"] == 500
    bon = table.loc[("best_of_n", 500)]
    assert bon["nfe_to_match_curve"] == 500 and bon["fraction_of_bon"] == pytest.approx(1.0)


def test_the_recipe_arm_reads_its_curve_as_its_algorithm_and_the_target_is_best_of_n_at_its_largest_budget():
    runs, curves = _runs()
    runs = runs[~((runs["algorithm"] == "dts_star") & (runs["nfe_budget"] == 500))]  # the tuned search: 100 only
    runs["algorithm"] = runs["algorithm"].replace({"dts_star": "recipe"})
    grid = np.linspace(0, 100, 6)  # each arm's curve spans its own largest budget
    recipe_curve = pd.DataFrame({"algorithm": "recipe", "nfe": grid, "reward": [-np.inf, 0.3, 0.4, 0.5, 0.5, 0.52]})
    curves = pd.concat([curves[curves["algorithm"] != "dts_star"], recipe_curve])
    table = summarize(runs, curves, RECIPE).set_index(["algorithm", "nfe_budget"])
    tuned = table.loc[("recipe", 100)]
    assert tuned["bon_target"] == pytest.approx(0.50)  # best-of-N at 500, a budget the recipe arm never ran
    assert tuned["nfe_to_match_curve"] == 60 and tuned["nfe_to_match"] == 60  # a DTS* recipe: its curve counts
    assert tuned["fraction_of_bon"] == pytest.approx(60 / 500)
    other = summarize(runs, curves, SimpleNamespace(search=SimpleNamespace(algorithm="smc")))
    assert math.isnan(other.set_index("algorithm").loc["recipe", "nfe_to_match_curve"])  # an SMC recipe: budgets only


def test_the_nfe_to_match_along_best_of_n_reads_its_curve_at_or_below_each_budget_and_divides_by_that_budget():
    runs, curves = _runs()
    grid = np.linspace(0, 500, 6)
    dts = pd.DataFrame({"algorithm": "dts_star", "nfe": grid, "reward": [-np.inf, 0.35, 0.42, 0.46, 0.49, 0.49]})
    curves = pd.concat([curves[curves["algorithm"] != "dts_star"], dts])
    scaling = match_along_baseline(curves, summarize(runs, curves, RECIPE))
    assert set(scaling["algorithm"]) == {"dts_star"}  # SMC's curve is not a curve of returned designs
    # best-of-N at 500/3 is its curve at 100 (0.3; the point at 200 lies beyond the budget), at 1000/3 at 300 (0.45)
    assert scaling["bon_reward"].tolist() == pytest.approx([0.3, 0.45, 0.5])
    assert scaling["nfe_to_match"].iloc[:2].tolist() == [100, 300]
    assert scaling["fraction_of_bon"].iloc[:2].tolist() == pytest.approx([100 / (500 / 3), 300 / (1000 / 3)])
    assert math.isnan(scaling["nfe_to_match"].iloc[2])  # DTS* never reaches best-of-N's 0.5


def test_a_tiny_benchmark_writes_tables_that_agree_with_its_runs(tmp_path):
    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    (tmp_path / "r.yaml").write_text(
        "name: tiny-prompts\n"
        "model: {name: text-tiny, num_steps: 8, branch_every: 2}\n"
        "design: {prompts_file: p.txt, length: 16, completions_per_prompt: 4}\n"
        "oracle: {name: vader_sentiment}\n"
        "fluency: {model: self, samples: 2, min_fluency: -6.0}\n"
        "search: {algorithm: dts_star, leaves_per_iteration: 2}\n"
        "budget: {nfe: 64}\n"
        "finetune: {steps_per_round: 2, batch_size: 4, replicates: 2, eval_samples: 4, threads: 1}\n"
    )
    out = tmp_path / "out"
    result = python_forked(
        "-m", "bench", "prompts", str(tmp_path / "r.yaml"), "--out", str(out), "--algorithms", "recipe", "best_of_n",
        "--budgets", "16", "--baseline-budgets", "32", "--seeds", "0", "1", "--finetune-rounds", "1", "--threads", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "prompts_bench.csv")
    assert sorted(zip(table["algorithm"], table["nfe_budget"])) == [("best_of_n", 32), ("recipe", 16)]
    bon = table.set_index(["algorithm", "nfe_budget"])["reward"]
    assert table["bon_target"].iloc[0] == pytest.approx(bon[("best_of_n", 32)])  # its own budget, not --budgets
    runs = pd.read_csv(out / "prompts_runs.csv")
    for row in runs.itertuples():
        folder = out / row.algorithm / f"nfe{row.nfe_budget}" / f"seed{row.seed}"
        prompts = pd.read_csv(folder / "prompts.csv")
        assert row.reward == pytest.approx(prompts["reward_best"].mean(), abs=1e-12)
        assert (prompts["nfe"] <= row.nfe_budget).all() and len(prompts) == 3
        recipe = (folder / "recipe.yaml").read_text()
        assert f"seed: {1000 * row.seed}\n" in recipe and f"nfe: {row.nfe_budget}\n" in recipe
        assert ("leaves_per_iteration: 2\n" in recipe) == (row.algorithm == "recipe")  # the recipe's own search
    mean = runs.groupby(["algorithm", "nfe_budget"])["reward"].mean()
    for row in table.itertuples():
        assert row.reward == pytest.approx(mean[(row.algorithm, row.nfe_budget)], abs=1e-12)
    assert "| recipe | 16 |" in (out / "prompts_bench.md").read_text()
    scaling = pd.read_csv(out / "prompts_scaling.csv")
    assert list(scaling.columns) == ["bon_nfe", "bon_reward", "algorithm", "nfe_to_match", "fraction_of_bon"]
    assert set(scaling["algorithm"]) <= {"recipe"} and (scaling["bon_nfe"] <= 32).all()
    # The same benchmark again reuses every finished run; an edited search section does not reuse them under its name.
    arms = {"algorithms": ["recipe", "best_of_n"], "budgets": [16], "seeds": [0, 1], "baseline_budgets": [32]}
    assert run(tmp_path / "r.yaml", out, **arms)["reward"].tolist() == table["reward"].tolist()
    with pytest.raises(ValueError, match=f"{out / 'recipe' / 'nfe16' / 'seed0'} holds a run of another recipe"):
        run(tmp_path / "r.yaml", out, **arms, overrides=["search.leaves_per_iteration=4"])
    tuned = pd.read_csv(out / "prompts_finetune.csv")
    metrics = pd.read_csv(out / "finetune" / "metrics.csv")
    assert tuned["round"].tolist() == [0, 1]
    assert tuned["eval_reward_mean"].tolist() == metrics["eval_reward_mean"].tolist()
