"""Every shipped recipe validates and runs end to end through the CLI; malformed recipes exit 2 with one line
naming the field; an interrupted run leaves valid partial outputs and resumes to the uninterrupted result."""

import json
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inprocess import ForkedProcess, seqtree_inprocess

from seqtree.config import RecipeError
from seqtree.recipe import load_design_recipe, reference_markdown, validate_design_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.yaml"))
TINY = ["--set", "budget.nfe=160", "--set", "design.num_designs=4", "--set", "model.num_steps=8"]


# The CLI runs in-process (tests/inprocess.py: the same Typer app, exit code and streams, without a fresh
# interpreter's import of torch and transformers on every call); the interrupt test signals a process of its own.
_seqtree = seqtree_inprocess


def _needs_extra(path: Path) -> str | None:
    """The optional extra a recipe's oracle needs, if it is not installed."""
    text = path.read_text()
    if "ehrlich" in text:
        try:
            import holo  # noqa: F401
        except ImportError:
            return "the holo extra (pytorch-holo) is not installed"
    return None


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates(path):
    if reason := _needs_extra(path):
        pytest.skip(reason)
    result = _seqtree("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_end_to_end(path, tmp_path):
    if reason := _needs_extra(path):
        pytest.skip(reason)
    out = tmp_path / "run"
    recipe = load_design_recipe(path)
    if recipe.design.prompts_file is not None:  # a budget per prompt (seqtree.prompts): two completions each
        _runs_per_prompt(path, recipe, out)
        return
    result = _seqtree("design", str(path), "--out", str(out), *TINY)  # one-pass algorithms fit it themselves
    assert result.returncode == 0, result.stderr
    for name in ("recipe.yaml", "designs.csv", "designs.jsonl", "curve.csv", "curve.png", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nfe"] <= 160 and summary["oracle_calls"] >= 1
    assert summary["seed"] == recipe.seed and summary["algorithm"] == recipe.search.algorithm
    assert set(summary["time_split"]) == {"denoiser_seconds", "oracle_seconds", "engine_seconds"}
    designs = pd.read_csv(out / "designs.csv")
    assert 1 <= len(designs) <= 4
    assert list(designs["rank"]) == list(range(1, len(designs) + 1))
    assert designs["reward"].is_monotonic_decreasing
    jsonl = [json.loads(line) for line in (out / "designs.jsonl").read_text().splitlines()]
    assert [row["sequence"] for row in jsonl] == list(designs["sequence"])
    curve = pd.read_csv(out / "curve.csv")
    assert curve["nfe"].is_monotonic_increasing and curve["best_reward"].dropna().is_monotonic_increasing
    if recipe.design.prompt:
        assert all(str(s).startswith(recipe.design.prompt.strip()) for s in designs["sequence"])
        assert "prompt" in designs.columns
    if (out / "designs.fasta").exists():
        from Bio import SeqIO

        records = list(SeqIO.parse(out / "designs.fasta", "fasta"))
        assert [str(r.seq) for r in records] == list(designs["sequence"])
    if "pareto" in recipe.oracle:
        assert (out / "pareto.png").is_file()
        assert len(designs.columns) >= 5  # one column per objective


def _runs_per_prompt(path: Path, recipe, out: Path) -> None:
    """A multi-prompt recipe at a smaller budget (48 NFE for each of its prompts, one diffusion time per fluency
    estimate): the budget holds per prompt, designs come prompt by prompt."""
    small = ["--set", "budget.nfe=48", "--set", "design.completions_per_prompt=2", "--set", "fluency.samples=1"]
    result = _seqtree("design", str(path), "--out", str(out), *TINY, *small)
    assert result.returncode == 0, result.stderr
    for name in ("recipe.yaml", "prompts.jsonl", "designs.csv", "designs.jsonl", "prompts.csv", "curve.csv",
                 "curves.csv", "curve.png", "summary.json"):  # fmt: skip
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    prompts = pd.read_csv(out / "prompts.csv", dtype={"prompt_id": str})
    assert summary["prompts"] == len(prompts) >= 2 and (prompts["status"] == "done").all()
    assert (prompts["nfe"] <= 48).all() and summary["nfe"] == prompts["nfe"].sum() and summary["oracle_calls"] >= 1
    assert summary["seed"] == recipe.seed and summary["algorithm"] == recipe.search.algorithm
    assert set(summary["time_split"]) == {"denoiser_seconds", "oracle_seconds", "engine_seconds"}
    designs = pd.read_csv(out / "designs.csv", keep_default_na=False, dtype={"prompt_id": str})
    assert list(designs["prompt_id"].unique()) == list(prompts["prompt_id"])
    for _, rows in designs.groupby("prompt_id"):
        assert list(rows["rank"]) == list(range(1, len(rows) + 1)) <= [1, 2] and rows["reward"].is_monotonic_decreasing
    assert all(s == p + c for s, p, c in zip(designs["sequence"], designs["prompt"], designs["completion"]))
    jsonl = [json.loads(line) for line in (out / "designs.jsonl").read_text().splitlines()]
    assert [row["sequence"] for row in jsonl] == list(designs["sequence"])


def test_readme_recipe_reference_is_generated_from_the_schema():
    readme = (ROOT / "README.md").read_text()
    assert reference_markdown() in readme


# --------------------------------------------------------------------------------------------- bad recipes
def _base() -> dict:
    return yaml.safe_load((ROOT / "recipes" / "protein.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r["search"].update(algorithm="annealing"), "search.algorithm"),
        (lambda r: r["budget"].update(nfe="lots"), "budget.nfe"),
        (lambda r: r.update(budget={}), "budget"),
        (lambda r: r["design"].update(scaffold="MK__"), "design"),
        (lambda r: r.update(colour="blue"), "colour"),
        (lambda r: r["search"].update(alpha=-1.0), "search.alpha"),
        (lambda r: r["search"].update(save_to="x"), "search.save_to"),
        (lambda r: r["oracle"].update(temperature=3), "oracle.temperature"),
        (lambda r: r["model"].update(num_steps=0), "model.num_steps"),
    ],
)
def test_malformed_recipe_names_the_field(edit, field):
    data = _base()
    edit(data)
    with pytest.raises(RecipeError) as error:
        validate_design_recipe(data, "bad.yaml")
    message = str(error.value)
    assert field in message and "\n" not in message


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: [unclosed", "not valid YAML"),
        ("- a list\n- not a mapping", "must be a mapping"),
        ("name: x\nbudget: {nfe: 10}\n", "design"),
    ],
)
def test_malformed_yaml_exits_2_with_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = _seqtree("validate", str(path))
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5))
_fields = ["name", "model.num_steps", "model.temperature", "design.length", "design.num_designs", "search.algorithm",
           "budget.nfe", "budget.seconds", "seed", "oracle.name", "model.top_p", "output.save_tree"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_fields), _scalars, min_size=1, max_size=3))
def test_property_broken_values_raise_recipe_error_or_validate(overrides):
    """Any mix of wrong types and values is either a valid recipe or one RecipeError line naming a field."""
    data = _base()
    for key, value in overrides.items():
        section, _, leaf = key.partition(".")
        if leaf:
            data.setdefault(section, {})[leaf] = value
        else:
            data[section] = value
    try:
        validate_design_recipe(data, "fuzz.yaml")
    except RecipeError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("fuzz.yaml: ")
        assert any(key.split(".")[0] in message for key in overrides) or "oracle" in message


def test_broken_recipe_through_cli_exits_2(tmp_path):
    path = tmp_path / "broken.yaml"
    data = _base()
    data["budget"]["oracle_calls"] = "many"
    path.write_text(yaml.safe_dump(data))
    result = _seqtree("design", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "budget.oracle_calls" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_every_registered_algorithm_is_accepted_and_no_other(monkeypatch):
    from seqtree.search import ALGORITHMS
    from seqtree.search.registry import Algorithm

    for name in ALGORITHMS:  # the registry is the one list: a new algorithm needs no second edit here
        data = _base()
        data["search"] = {"algorithm": name}
        assert validate_design_recipe(data, "x").search.algorithm == name
    data = _base()
    data["search"] = {"algorithm": "annealing"}
    with pytest.raises(RecipeError, match="unknown search algorithm 'annealing'"):
        validate_design_recipe(data, "x")
    best_of_n = ALGORITHMS["best_of_n"]
    monkeypatch.setitem(ALGORITHMS, "annealing", Algorithm("annealing", best_of_n.run, best_of_n.params))
    assert validate_design_recipe(data, "x").search.algorithm == "annealing"


def test_registry_capabilities_match_what_the_algorithms_do():
    from seqtree.search import ALGORITHMS
    from seqtree.search.state import ResumableParams

    for spec in ALGORITHMS.values():
        assert spec.resumable == issubclass(spec.params, ResumableParams), spec.name
    assert {n for n, a in ALGORITHMS.items() if a.weighted_samples} == {"smc", "best_of_n"}
    assert {n for n, a in ALGORITHMS.items() if not a.anytime} == {"svdd", "beam"}


# ------------------------------------------------------------------------------------- interrupt and resume
# About 7 s of search here (7 ms per NFE for the one-leaf DTS*), the interrupt 0.5 s into it: a machine 10 times
# faster still interrupts the search mid-way.
LONG = ["--set", "budget.nfe=1000", "--set", "budget.seconds=null", "--set", "model.num_steps=16",
        "--set", "design.length=40"]  # fmt: skip


@pytest.mark.parametrize(("name", "search"), [
    ("protein.yaml", "{algorithm: dts_star, alpha: 0.05, leaves_per_iteration: 1}"),
    ("protein-pareto.yaml", "{algorithm: mcts, num_children: 4, leaves_per_iteration: 1}"),
], ids=["dts_star", "mcts"])  # fmt: skip
def test_interrupt_leaves_partial_outputs_and_resume_matches_uninterrupted(tmp_path, name, search):
    recipe = str(ROOT / "recipes" / name)
    args = [*LONG, "--set", f"search={search}"]  # the tree searches save their state to resume
    whole = _seqtree("design", recipe, "--out", str(tmp_path / "whole"), *args)
    assert whole.returncode == 0, whole.stderr

    # One thread, as the in-process whole and resumed runs use (conftest): the same arithmetic in all three.
    process = ForkedProcess("-m", "seqtree.cli", "design", recipe, "--out", str(tmp_path / "cut"), *args)
    for line in process.stderr_lines():  # wait until the search has started
        if line.startswith("searching"):
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["interrupted"] and summary["stop_reason"] == "interrupted"
    assert summary["nfe"] < 1000
    pd.read_csv(tmp_path / "cut" / "designs.csv")  # partial designs parse
    assert (tmp_path / "cut" / "search_state.safetensors").is_file()

    resumed = _seqtree("design", "--resume", str(tmp_path / "cut"))
    assert resumed.returncode == 0, resumed.stderr
    a = pd.read_csv(tmp_path / "whole" / "designs.csv")
    b = pd.read_csv(tmp_path / "cut" / "designs.csv")
    assert list(a["sequence"]) == list(b["sequence"])
    assert list(a["reward"]) == pytest.approx(list(b["reward"]))
    final = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert final["nfe"] == json.loads((tmp_path / "whole" / "summary.json").read_text())["nfe"]


def test_existing_run_directory_is_not_overwritten(tmp_path):
    recipe = str(ROOT / "recipes" / "protein.yaml")
    assert _seqtree("design", recipe, "--out", str(tmp_path / "r"), *TINY).returncode == 0
    again = _seqtree("design", recipe, "--out", str(tmp_path / "r"), *TINY)
    assert again.returncode == 2 and "--resume" in again.stderr


# ----------------------------------------------------------------------------------------------- replay buffer
def test_runs_append_their_trajectories_to_the_replay_buffer(tmp_path):
    from seqtree.buffer import read_buffer

    buffer = tmp_path / "buffer.safetensors"
    into_buffer = ["--set", f"output.replay_buffer={buffer}"]
    recipe = str(ROOT / "recipes" / "protein.yaml")
    first = _seqtree("design", recipe, "--out", str(tmp_path / "a"), *TINY, *into_buffer)
    assert first.returncode == 0, first.stderr
    columns, runs = read_buffer(buffer)
    rows = json.loads((tmp_path / "a" / "summary.json").read_text())["replay_buffer"]["rows"]
    assert rows == len(columns["tokens"]) == len(columns["scores"]) == runs[0]["rows"] >= 1
    assert columns["log_prob_model"].shape == (rows, 8) and (columns["log_prob_model"] <= 0).all()  # 8 steps
    assert columns["scores"].tolist() == sorted(columns["scores"].tolist(), reverse=True)
    assert (columns["designed"].sum(1) == 60).all()  # the 60 designed residues; padding is fixed
    second = _seqtree("design", recipe, "--out", str(tmp_path / "b"), *TINY, "--set", "seed=1", *into_buffer)
    assert second.returncode == 0, second.stderr
    columns, runs = read_buffer(buffer)
    assert [r["seed"] for r in runs] == [0, 1] and len(columns["tokens"]) == rows + runs[1]["rows"]
    other_model = _seqtree("design", str(ROOT / "recipes" / "dna.yaml"), "--out", str(tmp_path / "c"), *TINY,
                           *into_buffer)  # fmt: skip
    assert other_model.returncode == 2, other_model.stderr
    assert "replay buffer" in other_model.stderr and "protein-tiny" in other_model.stderr
    assert not (tmp_path / "c" / "summary.json").exists()  # refused before searching
    assert len(read_buffer(buffer)[0]["tokens"]) == len(columns["tokens"])  # and the buffer is unchanged


@pytest.mark.parametrize("search", [
    "{algorithm: best_of_n, batch_size: 256, num_samples: 256}", "{algorithm: smc, num_particles: 64}",
    "{algorithm: svdd}", "{algorithm: beam}",
])  # fmt: skip
def test_a_budget_smaller_than_one_batch_or_pass_still_returns_designs(tmp_path, search):
    """Issue 12: best-of-N with batch 256 on protein.yaml spent its NFE and returned nothing (best reward NaN)."""
    out = tmp_path / "run"
    result = _seqtree("design", str(ROOT / "recipes" / "protein.yaml"), "--out", str(out), "--set", f"search={search}",
                      "--set", "budget.nfe=150")  # fmt: skip
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert len(designs) > 0 and summary["nfe"] <= 150
    assert designs["reward"].notna().all()
