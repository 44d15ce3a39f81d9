"""``seqtree finetune`` of a prompts file (issue 15): every prompt searched in lockstep each round, prompt-conditioned
rows in one buffer (the prompt fixed like a scaffold, each (round, prompt) group self-normalised), the per-round
report of plain samples per prompt averaged over prompts with their fluency under the pretrained model, and an
interrupted run that resumes to the uninterrupted result."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch
from inprocess import ForkedProcess, python_forked, seqtree_forked, seqtree_inprocess
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["And God said,", "The LORD is my shepherd;", "Blessed are the meek:"]
LENGTH, NFE, SAMPLES, FLUENCY_SAMPLES = 16, 64, 4, 2
MASK_ID = 1  # text-tiny's mask token (its config.json)
TIMING = {"search_seconds", "weight_seconds", "train_seconds", "eval_seconds"}


def _recipe(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.txt").write_text("\n".join(PROMPTS) + "\n")
    (folder / "r.yaml").write_text(
        "name: ftp\n"
        "model: {name: text-tiny, num_steps: 8, branch_every: 2}\n"
        f"design: {{prompts_file: p.txt, length: {LENGTH}, completions_per_prompt: 4}}\n"
        "oracle: {name: vader_sentiment}\n"
        f"fluency: {{model: self, samples: {FLUENCY_SAMPLES}, min_fluency: -6.0}}\n"
        "search: {algorithm: dts_star, leaves_per_iteration: 2}\n"
        f"budget: {{nfe: {NFE}}}\n"
        "seed: 3\n"
        "finetune: {rounds: 2, steps_per_round: 2, batch_size: 4, replicates: 2, "
        f"eval_samples: {SAMPLES}, threads: 1}}\n{extra}"
    )
    return folder / "r.yaml"


# A fine-tuning run in a process of its own: it seeds the global RNGs and sets Lightning's environment.
_seqtree = seqtree_forked


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finetune-prompts")
    out = folder / "whole"
    result = _seqtree("finetune", str(_recipe(folder)), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def roots() -> list[torch.Tensor]:
    """Each prompt's root row, built here from the model and the prompt text (not read from the run)."""
    from seqtree.generate import model_root
    from seqtree.models.loading import load_model

    model = load_model("text-tiny")
    return [model_root(model, length=LENGTH, prompt=prompt) for prompt in PROMPTS]


def test_each_round_reports_plain_samples_per_prompt_averaged_over_prompts(whole):
    """metrics.csv's eval columns are the means over prompts of eval.csv's rows, and eval.csv's rows are the means
    of samples.csv's plain samples, each drawn for its own prompt and scored again here with a fresh VADER."""
    from seqtree.oracles import build_oracle_from_spec

    metrics = pd.read_csv(whole / "metrics.csv")
    assert metrics["round"].tolist() == [0, 1, 2] and metrics["algorithm"].tolist()[1:] == ["dts_star", "dts_star"]
    vader = build_oracle_from_spec({"name": "vader_sentiment"})
    for k in (0, 1, 2):
        row = metrics.iloc[k]
        per_prompt = pd.read_csv(whole / "rounds" / str(k) / "eval.csv", dtype={"prompt_id": str})
        samples = pd.read_csv(whole / "rounds" / str(k) / "samples.csv", dtype={"prompt_id": str},
                              keep_default_na=False, na_values=[""])  # fmt: skip
        assert per_prompt["prompt"].tolist() == PROMPTS and (per_prompt["samples"] == SAMPLES).all()
        assert len(samples) == SAMPLES * len(PROMPTS)
        for column, name in [("reward_mean", "eval_reward_mean"), ("reward_best", "eval_reward_best"),
                             ("fluency_mean", "eval_fluency_mean"), ("reward_top10", "eval_reward_top10")]:  # fmt: skip
            assert row[name] == pytest.approx(per_prompt[column].mean(), abs=1e-12), (k, name)
        for index, prompt in enumerate(PROMPTS):
            mine = samples[samples["prompt_id"] == str(index)]
            assert all(s == prompt + c for s, c in zip(mine["sequence"], mine["completion"])), (k, index)
            again = vader(list(mine["sequence"])).tolist()
            assert mine["reward"].tolist() == pytest.approx(again, abs=1e-12)
            assert per_prompt["reward_mean"].iloc[index] == pytest.approx(sum(again) / SAMPLES, abs=1e-12)
            assert per_prompt["reward_best"].iloc[index] == pytest.approx(max(again), abs=1e-12)
        assert row["eval_oracle_calls"] == SAMPLES * len(PROMPTS)
        if k:
            searched = pd.read_csv(whole / "rounds" / str(k) / "prompts.csv")
            assert (searched["status"] == "done").all() and (searched["nfe"] <= NFE).all()
            assert row["search_nfe"] == searched["nfe"].sum()
            assert row["search_best"] == pytest.approx(searched["search_best_reward"].mean(), abs=1e-12)
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["prompts"] == 3 and summary["final_eval_fluency_mean"] == metrics["eval_fluency_mean"].iloc[-1]


def test_fluency_is_scored_by_the_pretrained_model_not_the_policy(whole):
    """Round 2's samples come from a fine-tuned policy; their fluency must still be the pretrained model's NELBO,
    recomputed here from the shipped checkpoint (the policy's own would differ: training moved its weights)."""
    from seqtree.models.loading import load_model
    from seqtree.oracles.fluency import FluencyCount, SelfNelboFluency

    samples = pd.read_csv(whole / "rounds" / "2" / "samples.csv", dtype={"prompt_id": str}, keep_default_na=False,
                          na_values=[""])  # fmt: skip
    pretrained = SelfNelboFluency(load_model("text-tiny"), samples=FLUENCY_SAMPLES)
    tuned = SelfNelboFluency(load_model(whole / "rounds" / "2" / "model"), samples=FLUENCY_SAMPLES)
    for index, prompt in enumerate(PROMPTS):
        mine = samples[samples["prompt_id"] == str(index)]
        completions = list(mine["completion"])
        expected = (-pretrained.bits_per_byte(prompt, completions, FluencyCount())).tolist()
        assert mine["fluency"].tolist() == pytest.approx(expected, abs=1e-9)
        policy = (-tuned.bits_per_byte(prompt, completions, FluencyCount())).tolist()
        assert max(abs(a - b) for a, b in zip(policy, expected)) > 1e-6  # the check can tell the two apart


def test_buffer_rows_keep_their_prompt_fixed_and_each_round_and_prompt_weighs_the_same(whole, roots):
    from seqtree.buffer import ReplayBuffer
    from seqtree.training.wdce import wdce_loss

    buffer = ReplayBuffer.load(whole / "buffer.safetensors")
    columns = buffer.columns
    prompt_of = []
    for tokens, designed, unmask in zip(columns["tokens"], columns["designed"], columns["unmask_step"]):
        owners = [i for i, root in enumerate(roots) if torch.equal(tokens[~designed], root[~designed])
                  and torch.equal(designed, root == MASK_ID)]  # fmt: skip
        assert len(owners) == 1  # its prompt's tokens (and padding) exactly, and only its prompt's positions free
        assert torch.equal(unmask == -1, ~designed) and bool((unmask[designed] >= 0).all())
        prompt_of.append(owners[0])
    prompt_of = torch.tensor(prompt_of)
    rounds = columns["round"]
    weights = buffer.normalized_weights()
    groups = {(int(r), int(p)) for r, p in zip(rounds, prompt_of)}
    assert groups == {(r, p) for r in (1, 2) for p in range(3)}  # every prompt's rows, every round
    for r, p in groups:
        members = (rounds == r) & (prompt_of == p)
        assert float(weights[members].sum()) == pytest.approx(1 / len(groups), abs=1e-9), (r, p)

    seen = []

    class Spy(torch.nn.Module):  # records what WDCE feeds the denoiser: the prompt must never be masked
        def forward(self, tokens, t):
            seen.append(tokens.clone())
            return torch.zeros(*tokens.shape, 258)

    from seqtree.models.loading import load_model

    diffusion = load_model("text-tiny").diffusion
    wdce_loss(Spy(), diffusion, columns["tokens"], columns["designed"], torch.ones(len(buffer)), replicates=4,
              generator=torch.Generator().manual_seed(0))  # fmt: skip
    fixed = ~columns["designed"].repeat_interleave(4, 0)
    assert torch.equal(seen[0][fixed], columns["tokens"].repeat_interleave(4, 0)[fixed])
    assert bool((seen[0][~fixed] == diffusion.mask_id).any())


STOP_AT = """
import sys
from pathlib import Path
from seqtree.design import StopFlag
from seqtree.finetune import run_finetune
from seqtree.recipe import load_design_recipe
recipe, out, prefix, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
stop, seen = StopFlag(), []
def log(line):
    seen.append(line.startswith(prefix))
    stop.requested = stop.requested or sum(seen) == nth
run = run_finetune(load_design_recipe(recipe), out=Path(out), stop=stop, log=log)
print(run.summary["interrupted"], run.summary["rounds_done"])
"""


def _assert_resumes_to(cut: Path, whole: Path) -> None:
    assert json.loads((cut / "progress.json").read_text()) == {"rounds_done": 1}
    assert json.loads((cut / "summary.json").read_text())["interrupted"]
    assert pd.read_csv(cut / "metrics.csv")["round"].tolist() == [0, 1]
    resumed = _seqtree("finetune", "--resume", str(cut))
    assert resumed.returncode == 0, resumed.stderr

    def metrics(run: Path) -> pd.DataFrame:
        return pd.read_csv(run / "metrics.csv").drop(columns=list(TIMING))

    pd.testing.assert_frame_equal(metrics(cut), metrics(whole))
    a, b = load_file(str(whole / "model" / "model.safetensors")), load_file(str(cut / "model" / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert (cut / "buffer.safetensors").read_bytes() == (whole / "buffer.safetensors").read_bytes()
    for name in ("eval.csv", "samples.csv", "designs.csv"):
        assert (cut / "rounds" / "2" / name).read_text() == (whole / "rounds" / "2" / name).read_text(), name
    searched = [pd.read_csv(run / "rounds" / "2" / "prompts.csv").drop(columns="seconds") for run in (cut, whole)]
    pd.testing.assert_frame_equal(*searched)


@pytest.mark.parametrize("prefix, nth", [("round 1/", 1), ("prompts:", 2)], ids=["before-round-2", "in-its-search"])
def test_a_stop_in_round_2_resumes_to_the_uninterrupted_result(whole, tmp_path, prefix, nth):
    """Stopped exactly as round 2 begins (before its searches start) and as its searches start (its folder
    already written, every search stopped at its first step): round 2 is dropped, and --resume repeats it."""
    cut = tmp_path / "cut"
    stopped = python_forked("-c", STOP_AT, str(_recipe(tmp_path)), str(cut), prefix, str(nth))
    assert stopped.returncode == 0 and stopped.stdout.split() == ["True", "1"], stopped.stderr
    if nth == 2:
        assert json.loads((cut / "rounds" / "2" / "summary.json").read_text())["interrupted"]
    _assert_resumes_to(cut, whole)


def test_ctrl_c_in_round_2_resumes_to_the_uninterrupted_result(whole, tmp_path):
    cut = tmp_path / "cut"
    process = ForkedProcess("-m", "seqtree.cli", "finetune", str(_recipe(tmp_path)), "--out", str(cut))
    starts = 0
    for line in process.stderr_lines():  # round 1 is committed and round 2's searches are starting: interrupt
        starts += line.startswith("prompts:")
        if starts == 2:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    _assert_resumes_to(cut, whole)


def test_a_prompts_file_refuses_lab_data_by_name(tmp_path):
    lab = tmp_path / "lab.csv"
    lab.write_text("sequence,reward\nAnd God said, it is good,1.0\n")
    result = seqtree_inprocess("finetune", str(_recipe(tmp_path)), "--out", str(tmp_path / "x"),
                               "--set", f"finetune.seed_buffer={lab}")  # fmt: skip
    assert result.returncode == 2 and "finetune.seed_buffer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
