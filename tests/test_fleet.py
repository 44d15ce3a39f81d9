"""Fleets of seeds (seqtree.fleet): seeds parse or fail naming --seeds; a fleet's merged outputs hold exactly what
the seeds' single runs hold, on every backend (in this process, local processes, a local Ray); an interrupted
fleet merges what its seeds wrote and a resume runs only the seeds not done."""

import importlib.util
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from inprocess import seqtree_inprocess

from seqtree.design import run_design
from seqtree.extras import MissingExtra
from seqtree.fleet import FLEET, parse_seeds, run_fleet, seed_dir
from seqtree.fleet_merge import merge_designs
from seqtree.recipe import load_design_recipe

ROOT = Path(__file__).resolve().parents[1]
DNA = str(ROOT / "recipes" / "dna.yaml")
TINY = ["budget.nfe=64", "design.num_designs=4", "model.num_steps=8"]
SEEDS = [0, 1]
# A parallel backend costs a cold start of torch and the model per worker (about 10 s here): the default run tests
# the one this installation uses (Ray where installed, else local processes), `-m slow` the other too.
RAY = importlib.util.find_spec("ray") is not None


def _recipe():
    return load_design_recipe(DNA, TINY)


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    """Each seed run alone, as plain ``seqtree design`` runs write it: {seed: run directory}."""
    base = tmp_path_factory.mktemp("singles")
    recipe = _recipe()
    return {s: run_design(recipe.model_copy(update={"seed": s}), out=base / f"single-{s}").run_dir for s in SEEDS}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _assert_fleet_matches(fleet: Path, singles: dict[int, Path], backend: str) -> None:
    merged = _read(fleet / "designs.csv")
    assert list(merged["rank"]) == list(range(1, len(merged) + 1))
    assert merged["reward"].is_monotonic_decreasing
    totals = {"nfe": 0, "oracle_calls": 0}
    for seed, single in singles.items():
        mine = merged[merged["seed"] == seed].sort_values("seed_rank")
        alone = _read(single / "designs.csv")
        assert list(mine["sequence"]) == list(alone["sequence"])
        assert list(mine["reward"]) == list(alone["reward"])
        assert list(mine["seed_rank"]) == list(alone["rank"])
        assert _read(fleet / f"seed-{seed}" / "designs.csv").equals(alone)  # the seed's own complete run directory
        summary = json.loads((single / "summary.json").read_text())
        for key in totals:
            totals[key] += summary[key]
    curve = _read(fleet / "curve.csv")
    assert set(curve["seed"]) == set(singles) and (fleet / "curve.png").is_file()
    summary = json.loads((fleet / "summary.json").read_text())
    assert summary["nfe"] == totals["nfe"] and summary["oracle_calls"] == totals["oracle_calls"]
    assert summary["best_reward"] == merged["reward"].iloc[0] and summary["best_seed"] == merged["seed"].iloc[0]
    assert summary["backend"] == backend and summary["seeds_done"] == SEEDS and not summary["interrupted"]
    assert [run["seed"] for run in summary["runs"]] == SEEDS and summary["num_designs"] == len(merged)


# ------------------------------------------------------------------------------------------------- --seeds
@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-7", list(range(8))), ("0,3,5", [0, 3, 5]), ("0-3,8", [0, 1, 2, 3, 8]), ("5", [5]), (" 2 - 3 , 9", [2, 3, 9])],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "0-", "-3", "3-1", "0,,2", "1.5", "0-2,2", "0-x"])
def test_bad_seeds_are_one_line_naming_the_option(text):
    with pytest.raises(ValueError, match="^--seeds") as error:
        parse_seeds(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--seeds", "3-1"], "--seeds"), (["--workers", "2"], "--seeds"), (["--ray-address", "auto"], "--seeds")],
)
def test_cli_rejects_bad_fleet_options(tmp_path, args, needle):
    result = seqtree_inprocess("design", DNA, "--out", str(tmp_path / "f"), *args)
    assert result.returncode == 2 and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "f").exists()


def test_merged_designs_are_best_first_with_seed_order_on_ties():
    a = pd.DataFrame({"rank": [1, 2], "sequence": ["AA", "AC"], "reward": [0.9, 0.5]})
    b = pd.DataFrame({"rank": [1, 2], "sequence": ["AC", "GG"], "reward": [0.9, 0.1]})
    merged = merge_designs({3: a, 1: b, 2: a.iloc[:0]})
    assert list(merged.columns[:5]) == ["rank", "seed", "seed_rank", "sequence", "reward"]
    assert list(zip(merged["seed"], merged["seed_rank"])) == [(1, 1), (3, 1), (3, 2), (1, 2)]
    assert list(merged["rank"]) == [1, 2, 3, 4]
    assert len(merge_designs({})) == 0


def test_backend_is_ray_where_installed_else_processes_and_one_worker_needs_neither(monkeypatch):
    import seqtree.fleet as fleet

    monkeypatch.setattr(fleet, "_ray_installed", lambda: False)
    assert fleet.choose_backend(1, None) == "sequential" and fleet.choose_backend(4, None) == "processes"
    with pytest.raises(MissingExtra, match="--ray-address.*'ray' extra.*seqtree\\[ray\\]"):
        fleet.choose_backend(4, "ray://head:10001")
    monkeypatch.setattr(fleet, "_ray_installed", lambda: True)
    assert fleet.choose_backend(4, None) == "ray" and fleet.choose_backend(1, "auto") == "ray"


# ------------------------------------------------------------------------------------------------ backends
def test_ray_fleet_merges_exactly_the_single_runs(tmp_path, singles):
    """Two seeds on a local Ray on CPU, through the CLI: the merged outputs equal the two single runs."""
    pytest.importorskip("ray")
    fleet = tmp_path / "fleet"
    sets = [arg for pair in (("--set", s) for s in TINY) for arg in pair]
    result = seqtree_inprocess("design", DNA, "--seeds", "0,1", "--workers", "2", "--out", str(fleet), *sets)
    assert result.returncode == 0, result.stderr
    assert "Ray" in result.stderr and "best reward" in result.stdout
    assert json.loads((fleet / FLEET).read_text())["seeds"] == SEEDS
    _assert_fleet_matches(fleet, singles, "ray")


class _StopAfter:
    """A StopFlag that asks to stop after ``reads`` looks: the search's Ctrl-C, at a known point."""

    def __init__(self, reads: int) -> None:
        self.reads, self.signal_name = reads, "SIGINT"

    @property
    def requested(self) -> bool:
        self.reads -= 1
        return self.reads < 0


def test_interrupted_fleet_merges_partial_results_and_resume_finishes_it(tmp_path, singles):
    """Ctrl-C in the first seed: its partial run and the merged outputs are written, the second seed never starts;
    the resume finishes both and equals the uninterrupted single runs."""
    fleet = tmp_path / "fleet"
    cut = run_fleet(_recipe(), seeds=SEEDS, out=fleet, workers=1, stop=_StopAfter(3))
    assert cut.backend == "sequential" and cut.summary["interrupted"]
    assert cut.summary["seeds_interrupted"] == [0] and cut.summary["seeds_missing"] == [1]
    assert not seed_dir(fleet, 1).exists() and (fleet / "designs.csv").is_file()
    assert json.loads((seed_dir(fleet, 0) / "summary.json").read_text())["interrupted"]
    with pytest.raises(FileExistsError, match="--resume"):
        run_fleet(_recipe(), seeds=SEEDS, out=fleet, workers=1)

    resumed = seqtree_inprocess("design", "--resume", str(fleet))
    assert resumed.returncode == 0, resumed.stderr
    _assert_fleet_matches(fleet, singles, "sequential")


@pytest.mark.parametrize("backend", [pytest.param("processes", marks=[pytest.mark.slow] if RAY else [])])
def test_process_fleet_resume_runs_only_the_seeds_not_done(tmp_path, singles, monkeypatch, backend):
    """A fleet whose seed 1 was removed: the resume runs seed 1 alone in a local process and leaves seed 0 as it
    was."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers' arithmetic, as this process's (conftest)
    fleet = tmp_path / "fleet"
    done = run_fleet(_recipe(), seeds=SEEDS, out=fleet, workers=1)
    shutil.rmtree(seed_dir(fleet, 1))
    kept = (seed_dir(fleet, 0) / "summary.json").read_bytes()
    resumed = run_fleet(_recipe(), out=fleet, workers=2, resume=True, backend=backend)
    assert (seed_dir(fleet, 0) / "summary.json").read_bytes() == kept
    assert resumed.seeds == SEEDS and resumed.summary["seconds"] > done.summary["seconds"]
    _assert_fleet_matches(fleet, singles, backend)
