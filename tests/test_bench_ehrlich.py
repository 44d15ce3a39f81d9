"""The Ehrlich holo benchmark (``seqtree bench ehrlich``): budgets, the comparison columns and holo's GA."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("holo", reason="the Ehrlich benchmark needs the holo extra")

from seqtree.bench import ehrlich  # noqa: E402
from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle  # noqa: E402
from seqtree.oracles.ehrlich_instances import parse_instance  # noqa: E402


def test_first_reaching_reads_the_first_point_at_or_above_the_target():
    curve = pd.DataFrame({"nfe": [10, 20, 30], "oracle_calls": [1, 2, 3], "best_reward": [0.1, 0.5, 1.0]})
    assert ehrlich.first_reaching(curve, 0.5) == 20
    assert ehrlich.first_reaching(curve, 1.0, "oracle_calls") == 3
    assert math.isnan(ehrlich.first_reaching(curve, 1.5))


def test_step_curve_holds_the_running_best():
    curve = pd.DataFrame({"nfe": [10, 20, 30], "best_reward": [0.3, 0.2, 0.6]})
    ys = ehrlich._step_curve(curve, "nfe", [5, 10, 25, 40])
    assert math.isnan(ys[0]) and list(ys[1:]) == [0.3, 0.3, 0.6]


def test_holo_ga_spends_whole_generations_within_the_oracle_budget():
    oracle = EhrlichOracle(**BENCHMARK_INSTANCES["ehrlich-l32"])
    row, curve = ehrlich.run_holo_ga(oracle, oracle_calls=300, seed=0, num_particles=64)
    assert row["oracle_calls"] == 256 == curve["oracle_calls"].iloc[-1]  # 4 generations of 64
    assert curve["best_reward"].is_monotonic_increasing
    assert 0.0 <= row["best_reward"] <= 1.0


def test_benchmark_runs_every_algorithm_at_equal_nfe(tmp_path):
    budget = 2500  # best-of-N scores its first batch of 64 after ~2000 NFE
    algorithms = ["best_of_n", "dts_star", "mcts", "smc"]
    table = ehrlich.run(
        tmp_path, instances=["ehrlich-l32"], nfe=budget, seeds=1, algorithms=algorithms,
        log=lambda _: None,
    )  # fmt: skip
    assert list(table["algorithm"]) == [*algorithms, ehrlich.GA_NAME]
    searched = table[table["algorithm"] != ehrlich.GA_NAME]
    assert (searched["nfe"] <= budget).all() and (searched["nfe"] > budget // 2).all()
    ga = table[table["algorithm"] == ehrlich.GA_NAME].iloc[0]
    assert 0 < ga["oracle_calls"] <= searched["oracle_calls"].max()
    bon = table.loc[table["algorithm"] == "best_of_n", "best_reward"].iloc[0]
    assert (table["best_of_n_final"] == bon).all()
    assert table.loc[table["algorithm"] == "best_of_n", "nfe_to_bon"].iloc[0] <= budget
    prior = pd.read_csv(tmp_path / "ehrlich_prior.csv").iloc[0]
    assert prior["feasible_fraction"] > 0.5  # uniform sequences are feasible with probability ~2% at L=32
    assert prior["max_reward"] < 1.0
    for name in ("ehrlich.csv", "ehrlich_curves.csv", "ehrlich_prior.csv", "ehrlich.png"):
        assert (tmp_path / name).is_file()
    curves = pd.read_csv(tmp_path / "ehrlich_curves.csv")
    assert set(curves["algorithm"]) == set(table["algorithm"])


def test_branching_schedule_and_ga_budget_can_be_set(tmp_path):
    assert ehrlich.setting_for(32).branch_every == 4 and ehrlich.setting_for(32, 2).branch_every == 2
    with pytest.raises(ValueError, match="branch_every"):
        ehrlich.setting_for(32, 33)
    table = ehrlich.run(
        tmp_path, instances=["ehrlich-l32"], nfe=300, seeds=1, algorithms=["dts_star"],
        branch_every=2, ga_calls=256, log=lambda _: None,
    )  # fmt: skip
    assert (table["branch_every"] == 2).all()
    ga = table[table["algorithm"] == ehrlich.GA_NAME].iloc[0]
    assert ga["oracle_calls"] == 256  # two whole generations of 128, not the seqtree runs' count
    assert list(ehrlich.summary(table)["branch_every"]) == [2, 2]
    # two schedules merged into one report keep their own best-of-N targets and curves
    curves = pd.read_csv(tmp_path / "ehrlich_curves.csv")
    other = table.assign(branch_every=4, best_reward=table["best_reward"] / 2)
    both_curves = pd.concat([curves, curves.assign(branch_every=4, best_reward=curves["best_reward"] / 2)])
    bon = table.iloc[[0]].assign(algorithm="best_of_n")  # one best-of-N run per schedule
    merged = ehrlich.derive(pd.concat([table, bon, other, bon.assign(branch_every=4)], ignore_index=True), both_curves)
    finals = merged.groupby("branch_every")["best_of_n_final"].unique()
    assert len(finals[2]) == 1 and len(finals[4]) == 1


def test_ga_sweep_runs_every_setting_at_equal_oracle_calls(tmp_path):
    table = ehrlich.run(
        tmp_path, instances=["ehrlich-l32"], seeds=1, algorithms=[], ga_calls=2048, ga_sweep=True, log=lambda _: None
    )  # fmt: skip
    assert list(table["algorithm"]) == [setting.name for setting in ehrlich.GA_SWEEP]
    assert len(table) == 8 and (table["oracle_calls"] == 2048).all()  # whole generations of 128 and of 1024
    length = 32
    for setting, (_, row) in zip(ehrlich.GA_SWEEP, table.iterrows()):
        assert row["ga_particles"] == setting.num_particles
        # holo refuses a quantile keeping < 2 particles: 0.01 of 128 is raised to 2 / 128
        assert row["ga_survival"] == max(setting.survival_quantile, 2 / setting.num_particles)
        if setting.recombine == "1.1/L":
            assert row["ga_mutation"] == row["ga_recombine"] == pytest.approx(1.1 / length)
        else:
            assert row["ga_mutation"] == pytest.approx(1 / length)
            assert row["ga_recombine"] == ehrlich.holo_default("recombine_prob") == 0.5
    assert (tmp_path / "ehrlich_ga_best.csv").is_file()
    summary = ehrlich.summary(table)
    assert list(summary["reached_1"]) == [f"{k} of 1" for k in (table["calls_to_optimum"].notna().astype(int))]


def test_best_ga_setting_ranks_by_median_calls_to_one_then_reward():
    nan = math.nan
    runs = {  # algorithm -> (calls to 1.0, best reward) per seed
        "holo_ga(a)": [(5000, 1.0), (nan, 0.75), (nan, 0.75), (nan, 0.75)],  # fastest hit, but 1 of 4: median inf
        "holo_ga(b)": [(20000, 1.0), (30000, 1.0), (10000, 1.0), (nan, 0.75)],  # median of 10k, 20k, 30k, inf: 25k
        "holo_ga(c)": [(40000, 1.0), (40000, 1.0), (40000, 1.0), (40000, 1.0)],  # 4 of 4 but slower: 40k
        "holo_ga(d)": [(nan, 0.875), (nan, 0.875), (nan, 0.875), (nan, 0.75)],  # never, mean 0.84 > a's 0.81
        "dts_star": [(100, 1.0)] * 4,  # not a GA setting: ignored
    }
    rows = [
        {"instance": "ehrlich-l32", "algorithm": name, "seed": seed, "calls_to_optimum": calls, "best_reward": best,
         "oracle_calls": 100000, "seconds": 1.0}
        for name, values in runs.items() for seed, (calls, best) in enumerate(values)
    ]  # fmt: skip
    ranked = ehrlich.best_ga_settings(pd.DataFrame(rows))
    assert list(ranked["algorithm"]) == ["holo_ga(b)", "holo_ga(c)", "holo_ga(d)", "holo_ga(a)"]
    assert list(ranked["best"]) == [True, False, False, False]
    b = ranked.iloc[0]
    assert b["median_calls_all"] == 25000 and b["median_calls_to_1"] == 20000 and b["optimum_runs"] == 3


def test_finetune_curve_gives_the_oracle_calls_to_reach_one():
    # round 0: pretrained evaluation (4 calls, best 0.25); round 1: search calls 8, 20 (best 0.5, then 1.0), then
    # 4 evaluation calls; so 1.0 is first seen after 4 + 20 = 24 oracle calls, not at the round's end (28)
    metrics = [
        {"round": 0, "best_so_far": 0.25, "eval_reward_mean": 0.1, "cumulative_oracle_calls": 4, "cumulative_nfe": 80,
         "oracle_calls_to_best": 4},
        {"round": 1, "best_so_far": 1.0, "eval_reward_mean": 0.3, "cumulative_oracle_calls": 28,
         "cumulative_nfe": 480, "oracle_calls_to_best": 24},
    ]  # fmt: skip
    search = pd.DataFrame({"nfe": [100, 300], "oracle_calls": [8, 20], "best_reward": [0.5, 1.0],
                           "mean_reward": [0.5, 0.7]})  # fmt: skip
    curve = ehrlich.finetune_curve(metrics, {1: search})
    assert list(curve["oracle_calls"]) == [4, 12, 24, 28] and list(curve["nfe"]) == [80, 180, 380, 480]
    assert ehrlich.first_reaching(curve, 1.0, "oracle_calls") == 24 == metrics[-1]["oracle_calls_to_best"]
    assert ehrlich.first_reaching(curve, 0.5, "oracle_calls") == 12
    # a round whose search stays below the best so far keeps the best so far on its curve
    low = search.assign(best_reward=[0.1, 0.2])
    assert (ehrlich.finetune_curve(metrics[:1] + [{**metrics[1], "best_so_far": 0.25}], {1: low})["best_reward"]
            == 0.25).all()  # fmt: skip


def test_finetune_arm_writes_its_run_and_rows(tmp_path):
    arm = ehrlich.FinetuneArm(
        rounds=1, nfe=200, overrides=("finetune.steps_per_round=1", "finetune.eval_samples=4", "finetune.batch_size=4",
                                      "finetune.replicates=2"),
    )  # fmt: skip
    table = ehrlich.run(
        tmp_path, instances=["ehrlich-l32"], seeds=1, first_seed=1, algorithms=[], finetune=arm, log=lambda _: None
    )  # fmt: skip
    search = ehrlich.finetune_recipe(parse_instance("ehrlich-l32"), 1, arm, ehrlich.setting_for(32), "x").search
    assert list(table["algorithm"]) == [ehrlich.finetune_name(search.algorithm), ehrlich.GA_NAME]
    row = table.iloc[0]
    run_dir = tmp_path / "finetune" / "ehrlich-l32" / "seed1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["seed"] == 1 and summary["rounds_done"] == 1
    assert row["seed"] == 1 and row["rounds_done"] == 1 and row["nfe_budget"] == 200
    assert row["best_reward"] == summary["best_reward"] and row["oracle_calls"] == summary["oracle_calls"]
    assert row["nfe"] == summary["nfe"] > 0 and row["finetune_set"].startswith("finetune.steps_per_round=1")
    assert math.isnan(row["oracle_calls_to_1"]) == (summary["best_reward"] < 1.0)
    recipe = (run_dir / "recipe.yaml").read_text()
    assert "target_reward: 1.0" in recipe and "steps_per_round: 1" in recipe
    ga = table.iloc[1]
    assert ga["oracle_calls"] <= row["oracle_calls"]  # the GA gets the arm's oracle calls (whole generations)
    curves = pd.read_csv(tmp_path / "ehrlich_curves.csv")
    ft = curves[curves["algorithm"].str.endswith(ehrlich.FINETUNE_SUFFIX)]
    assert ft["oracle_calls"].iloc[-1] == summary["oracle_calls"] and ft["best_reward"].max() == row["best_reward"]


def test_finetune_recipe_for_the_l128_instance():
    arm = ehrlich.FinetuneArm(rounds=3, nfe=1234, overrides=("finetune.lr=0.001",))
    instance = parse_instance("ehrlich-l128")
    recipe = ehrlich.finetune_recipe(instance, 2, arm, ehrlich.setting_for(128), ehrlich.prior_for(instance, Path(".")))
    assert recipe.model.name == "ehrlich-l128-tiny" and recipe.design.length == 128 and recipe.seed == 2
    assert recipe.oracle["params"] == BENCHMARK_INSTANCES["ehrlich-l128"]
    assert (recipe.model.num_steps, recipe.model.branch_every) == (64, 8)
    assert recipe.budget.nfe == 1234 and recipe.budget.seconds is None
    assert (recipe.finetune.rounds, recipe.finetune.target_reward, recipe.finetune.lr) == (3, 1.0, 0.001)


def test_benchmark_on_an_instance_given_by_its_parameters_trains_its_prior_once(tmp_path):
    spec = "v=24,L=12,c=2,k=3,seed=2"
    table = ehrlich.run(tmp_path, instances=[spec], nfe=200, seeds=1, algorithms=["dts_star"], prior_steps=3,
                        log=lambda _: None)  # fmt: skip
    name = "ehrlich-v24-l12-c2-k3-s2"
    assert set(table["instance"]) == {name} and set(table["algorithm"]) == {"dts_star", ehrlich.GA_NAME}
    model = tmp_path / "priors" / name / "model" / "model.safetensors"
    assert model.is_file() and json.loads((model.parent.parent / "instance.json").read_text())["ehrlich"]["dim"] == 12
    prior = pd.read_csv(tmp_path / "ehrlich_prior.csv")
    assert prior["prior"].tolist() == [str(model.parent)]
    stamp = model.stat().st_mtime_ns
    ehrlich.run(tmp_path, instances=[spec], nfe=200, seeds=1, algorithms=["dts_star"], prior_steps=3,
                log=lambda _: None)  # fmt: skip
    assert model.stat().st_mtime_ns == stamp  # the same --out reuses it


def test_search_set_overrides_parse_by_algorithm():
    assert ehrlich.parse_search_set(["remask.patience=0", "remask.max_span=2", "dts.alpha=0.5"]) == {
        "remask": {"patience": 0, "max_span": 2}, "dts": {"alpha": 0.5}
    }  # fmt: skip
    with pytest.raises(ValueError, match="ALGORITHM.PARAMETER=VALUE"):
        ehrlich.parse_search_set(["patience=0"])


def test_a_bad_instance_spec_is_a_usage_error(tmp_path, capsys):
    from seqtree.bench.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ehrlich", "--out", str(tmp_path), "--instances", "v=20,L=6,c=2,k=4"])
    assert exit_info.value.code == 2 and "do not fit in length L = 6" in capsys.readouterr().err
