"""The Ehrlich holo benchmark (``seqtree bench ehrlich``): budgets, the comparison columns and holo's GA."""

import math

import pandas as pd
import pytest

pytest.importorskip("holo", reason="the Ehrlich benchmark needs the holo extra")

from bench import ehrlich  # noqa: E402
from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle  # noqa: E402


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
        tmp_path, instances=["ehrlich-l32"], nfe={"ehrlich-l32": budget}, seeds=1, algorithms=algorithms,
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
        tmp_path, instances=["ehrlich-l32"], nfe={"ehrlich-l32": 300}, seeds=1, algorithms=["dts_star"],
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
