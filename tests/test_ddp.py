"""Lightning DDP on the CPU (gloo, two processes): ``seqtree train`` and ``seqtree finetune`` from the command line.

Lightning relaunches the command line for rank 1, so each run costs two interpreter start-ups; the two runs start
together (a module fixture) and each test waits for its own. The training run checks that both ranks train, that
rank 0 alone writes (one log, one export that loads) and that the steps are optimizer steps; the fine-tuning run that
rank 0's search feeds both ranks' training for two rounds (the second resumes ``state.ckpt`` on every rank) and that
rank 0 alone writes the run directory. Spawning strategies are refused before any process starts.
"""

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from seqtree.models.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds; a hung process group is killed, never waited for
# Variables by which torchrun, SLURM or an outer DDP job would make the runs join their process group instead.
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
                      "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED")  # fmt: skip
TWO_CPU_RANKS = ("strategy=ddp", "devices=2", "accelerator=cpu")


def _write_fasta(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    path.write_text("".join(f">s{i}\n{''.join(rng.choice('ACGT') for _ in range(2)) * 12}\n" for i in range(count)))


def _start(*args: str) -> subprocess.Popen:
    """``seqtree *args`` in its own session (so that a timeout kills rank 1 too), one thread per rank."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES and not k.startswith("SLURM_")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "seqtree.cli", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    try:
        # The pipes close when both ranks have exited (rank 1 inherits them), so this waits for the whole job.
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"seqtree {process.args[3]} under DDP did not finish in {TIMEOUT} s")
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr  # rank 1 failing after rank 0's exit would show only here
    return stdout, stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    _write_fasta(folder / "train.fasta", 256, 0)
    _write_fasta(folder / "val.fasta", 33, 1)  # odd: DistributedSampler repeats one row to even the shards
    recipe = folder / "tiny.yaml"
    recipe.write_text(
        f"""
domain: dna
name: dna-ddp
data: {{train: {folder / "train.fasta"}, val: {folder / "val.fasta"}, max_length: 24, batch_size: 32}}
model: {{hidden_size: 32, num_layers: 2, num_heads: 2}}
training: {{max_steps: 6, lr: 0.005, warmup_steps: 2, val_every_steps: 3, checkpoint_every_steps: 3, threads: 1}}
output_dir: {folder / "train"}
"""
    )
    sets = [arg for field in TWO_CPU_RANKS for arg in ("--set", f"training.{field}")]
    train = _start("train", str(recipe), *sets)
    tiny = {"budget.nfe": 160, "budget.seconds": 3600, "model.num_steps": 8, "model.device": "cpu",
            "design.num_designs": 4, "finetune.rounds": 2, "finetune.steps_per_round": 2, "finetune.batch_size": 4,
            "finetune.replicates": 2, "finetune.eval_samples": 8, "finetune.threads": 1}  # fmt: skip
    sets = [arg for key, value in tiny.items() for arg in ("--set", f"{key}={value}")]
    sets += [arg for field in TWO_CPU_RANKS for arg in ("--set", f"finetune.{field}")]
    finetune = _start("finetune", str(ROOT / "recipes" / "dna.yaml"), "--out", str(folder / "finetune"), *sets)
    yield {"folder": folder, "train": train, "finetune": finetune}
    for process in (train, finetune):  # a failed test must not leave a rank behind
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def test_train_under_ddp_trains_on_both_ranks_and_rank_0_alone_exports(runs):
    stdout, stderr = _finish(runs["train"])
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in stderr  # rank 1 ran and joined
    run = runs["folder"] / "train"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6  # optimizer steps
    assert [p.name for p in (run / "csv").iterdir()] == ["version_0"]  # one CSV log: rank 1 logs nothing
    assert list(run.rglob("model.safetensors")) == [run / "model" / "model.safetensors"]  # one export
    facts = json.loads((run / "model" / "training_facts.json").read_text())
    assert facts["processes"] == 2 and facts["steps"] == 6
    assert 0 < facts["val_bits_per_token"] < 3  # the ranks' validation sums, over ~2 bits of the unigram baseline
    assert "6 x 32 x 2 processes" in (run / "model" / "README.md").read_text()
    assert f"val {facts['val_bits_per_token']:.4f} bits/token" in stdout
    model = load_model(run / "model")
    assert model.tokenizer.decode(model.tokenizer.encode("ACGT")) == "ACGT" and model.max_length == 24


def test_finetune_under_ddp_rank_0_searches_and_writes_both_ranks_train(runs):
    stdout, stderr = _finish(runs["finetune"])
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in stderr
    assert stderr.count("round 2/2:") == 1  # rank 0 alone logs (and searches, evaluates, writes)
    assert "2 of 2 rounds" in stdout
    run = runs["folder"] / "finetune"
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["round"].tolist() == [0, 1, 2] and metrics["buffer_rows"].iloc[2] > metrics["buffer_rows"].iloc[1]
    assert metrics["wdce_loss"][1:].notna().all()
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["round_1", "round_2"]
    state = torch.load(run / "state.ckpt", weights_only=True)
    assert state["global_step"] == 4  # 2 rounds x 2 optimizer steps, each on both ranks' rows
    assert json.loads((run / "progress.json").read_text()) == {"rounds_done": 2}
    assert not list(run.glob("*.tmp"))
    tuned = load_model(run / "model")
    assert tuned.tokenizer.decode(tuned.tokenizer.encode("ACGT")) == "ACGT"


def test_finetune_refuses_spawned_ranks_and_needs_none_for_one_device():
    from seqtree.config import RecipeError
    from seqtree.training.ranks import Ranks, launch_ranks

    assert launch_ranks(accelerator="cpu", devices=1, num_nodes=1, strategy="auto") == Ranks()
    assert Ranks().share({"rows": 3}) == {"rows": 3}  # one process: the value itself, no process group
    with pytest.raises(RecipeError, match="not spawned ones"):  # refused before any process starts
        launch_ranks(accelerator="cpu", devices=2, num_nodes=1, strategy="ddp_spawn")
