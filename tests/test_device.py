"""Every sampler and search algorithm on every device this machine has (CPU always, CUDA or MPS when present).

Each run uses the shipped ``dna-tiny`` checkpoint loaded on the device (searches call it as designs do: on CUDA
replayed from CUDA graphs, :mod:`seqtree.cuda_graphs`) and a generator on that device. The tests
assert that every denoiser call saw its tokens on the device (nothing silently fell back to the host), that the
results come back complete and on the host, and that the same seed gives the same designs on the same device
(issue 13). On a CPU-only machine the CUDA cases are skipped; run ``pytest tests/test_device.py`` on a GPU machine
to exercise them.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from inprocess import seqtree_inprocess
from torch import nn

from seqtree.device import (
    AutocastDenoiser,
    DeviceError,
    make_generator,
    resolve_device,
    with_precision,
)
from seqtree.generate import initial_tokens, sample_sequences
from seqtree.models.loading import load_model
from seqtree.samplers import SAMPLERS
from seqtree.search import ALGORITHMS, Budget, SearchProblem, run_search

DEVICES = ["cpu"]
if torch.cuda.is_available():
    DEVICES.append("cuda")
if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
    DEVICES.append("mps")

LENGTH = 24
# Small budgets that still take every algorithm through several branch points.
ALGORITHM_PARAMS = {
    "best_of_n": {"num_samples": 12, "batch_size": 8},
    "smc": {"num_particles": 8},
    "svdd": {"num_particles": 4, "num_candidates": 2, "alpha": 0.5},
    "beam": {"beam_width": 3, "branching": 2},
    "dts": {"leaves_per_iteration": 4, "num_samples": 8},
    "dts_star": {"leaves_per_iteration": 4},
    "mcts": {"leaves_per_iteration": 4, "num_children": 2},
    "remask": {"initial_samples": 8, "elite_size": 4, "children": 8},
}


class DeviceRecorder(nn.Module):
    """Passes calls through and records the device of every batch of tokens the denoiser receives."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.devices: set[str] = set()

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        self.devices.add(tokens.device.type)
        if t is not None:
            self.devices.add(t.device.type)
        return self.inner(tokens, t)


def gc_fraction(sequences: list[str]) -> torch.Tensor:
    return torch.tensor([s.count("G") + s.count("C") for s in sequences], dtype=torch.float64) / LENGTH


@pytest.fixture(scope="module", params=DEVICES)
def model(request):
    return load_model("dna-tiny", device=request.param, cuda_graphs=True)


def _problem(model, recorder: DeviceRecorder, **kwargs) -> SearchProblem:
    root = initial_tokens(model.tokenizer, length=LENGTH, row_length=model.max_length).to(model.device)
    return SearchProblem(recorder, model.diffusion, model.tokenizer, gc_fraction, root, num_steps=8, branch_every=2,
                         **kwargs)  # fmt: skip


def _search(model, algorithm: str, seed: int, **kwargs):
    recorder = DeviceRecorder(model.inference_denoiser)  # on CUDA: replayed from CUDA graphs
    problem = _problem(model, recorder, **kwargs)
    generator = make_generator(seed, model.device)
    result = run_search(algorithm, problem, Budget(nfe=240), generator=generator, **ALGORITHM_PARAMS[algorithm])
    return result, recorder


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_runs_on_the_device_and_repeats_per_seed(model, algorithm):
    first, recorder = _search(model, algorithm, seed=3)
    assert recorder.devices == {model.device.type}, f"{algorithm} called the denoiser on {recorder.devices}"
    assert len(first.designs) > 0 and first.nfe <= 240
    for tensor in (first.designs.tokens, first.designs.rewards, first.trajectories.log_prob_model):
        assert tensor.device.type == "cpu"  # results come back to the host, whole
    assert all(len(s) == LENGTH for s in first.designs.sequences)
    again, _ = _search(model, algorithm, seed=3)
    assert again.designs.sequences == first.designs.sequences
    assert torch.equal(again.designs.rewards, first.designs.rewards)
    assert (again.nfe, again.oracle_calls) == (first.nfe, first.oracle_calls)


def test_tempered_proposals_run_on_the_device(model):
    """SMC's and best-of-N's proposal corrections (log p - log q) mix device path columns with host weights."""
    for algorithm in ("smc", "best_of_n", "svdd"):
        result, recorder = _search(model, algorithm, seed=1, temperature=0.7, top_k=3)
        assert recorder.devices == {model.device.type} and len(result.designs) > 0


def test_a_budget_that_ends_mid_pass_still_returns_designs_on_the_device(model):
    recorder = DeviceRecorder(model.denoiser)
    problem = _problem(model, recorder)
    for algorithm in ("smc", "svdd", "beam"):
        result = run_search(algorithm, problem, Budget(nfe=37), generator=make_generator(0, model.device),
                            **ALGORITHM_PARAMS[algorithm])  # fmt: skip
        assert len(result.designs) > 0, algorithm


def test_a_resumed_tree_search_equals_an_uninterrupted_one_on_the_device(model, tmp_path):
    """The saved state holds the device generator and, off the CPU, the host generator that selection draws from."""
    for algorithm in ("dts", "mcts"):
        params = dict(ALGORITHM_PARAMS[algorithm])
        path = tmp_path / f"{algorithm}.safetensors"
        problem = _problem(model, DeviceRecorder(model.denoiser))
        whole = run_search(algorithm, problem, Budget(), generator=make_generator(5, model.device), max_iterations=6,
                           **params)  # fmt: skip
        run_search(algorithm, problem, Budget(), generator=make_generator(5, model.device), max_iterations=3,
                   save_to=str(path), **params)  # fmt: skip
        resumed = run_search(algorithm, problem, Budget(), generator=make_generator(99, model.device),
                             max_iterations=6, resume_from=str(path), **params)  # fmt: skip
        assert resumed.designs.sequences == whole.designs.sequences, algorithm
        assert resumed.nfe == whole.nfe


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs_on_the_device_and_repeats_per_seed(model, sampler):
    root = initial_tokens(model.tokenizer, length=LENGTH, row_length=model.max_length)
    options = {} if sampler == "first_hitting" else {"num_steps": 8}

    def draw():
        generator = make_generator(11, model.device)
        return sample_sequences(model, root, 6, sampler=sampler, generator=generator, batch_size=4, **options)

    first, again = draw(), draw()
    assert first.output.tokens.device.type == model.device.type
    assert first.sequences == again.sequences
    assert all(len(s) == LENGTH and set(s) <= set("ACGT") for s in first.sequences)


def test_mixed_precision_returns_float32_logits_and_valid_designs(model):
    precision = "bf16"
    wrapped = with_precision(model.denoiser, precision)
    assert isinstance(wrapped, AutocastDenoiser) and with_precision(model.denoiser, "fp32") is model.denoiser
    root = initial_tokens(model.tokenizer, length=LENGTH, row_length=model.max_length).to(model.device)
    tokens = root.unsqueeze(0).expand(3, -1)
    logits = wrapped(tokens, torch.ones(3, device=model.device))
    assert logits.dtype == torch.float32 and torch.isfinite(logits[..., 2:]).all()
    result, recorder = _search(model, "best_of_n", seed=2)
    low = dataclasses.replace(model, precision=precision)
    low_result = run_search("best_of_n", _problem(low, DeviceRecorder(low.inference_denoiser)), Budget(nfe=240),
                            generator=make_generator(2, model.device), **ALGORITHM_PARAMS["best_of_n"])  # fmt: skip
    assert len(low_result.designs) == len(result.designs)
    assert all(len(s) == LENGTH and set(s) <= set("ACGT") for s in low_result.designs.sequences)


def test_a_generator_on_another_device_is_refused_with_a_hint():
    """A CPU generator for a CUDA problem (or the reverse) would fail deep in torch; the engine names the fix."""
    model = load_model("dna-tiny")
    problem = _problem(model, DeviceRecorder(model.denoiser))
    elsewhere = SimpleNamespace(device=torch.device("cuda", 0))  # only the device is read before the refusal
    with pytest.raises(ValueError, match="make_generator"):
        run_search("best_of_n", problem, Budget(nfe=8), generator=elsewhere)


def test_device_names_resolve_or_name_what_is_missing():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:1")
    else:
        with pytest.raises(DeviceError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_recipe_asking_for_cuda_without_cuda_exits_2_naming_model_device(tmp_path):
    out = tmp_path / "run"
    for command in ("validate", "design"):
        args = [command, "recipes/dna.yaml", "--set", "model.device=cuda", "--set", "budget.nfe=50"]
        result = seqtree_inprocess(*args, *(["--out", str(out)] if command == "design" else []))
        assert result.returncode == 2, result.stderr
        assert "model.device" in result.stderr and "CUDA is not available" in result.stderr
        assert "Traceback" not in result.stderr
    assert not out.exists()  # refused before the run folder was made
    flag = seqtree_inprocess("design", "recipes/dna.yaml", "--device", "cuda:0", "--out", str(out))
    assert flag.returncode == 2 and "model.device" in flag.stderr
    sample = seqtree_inprocess("sample", "dna-tiny", "--num", "2", "--length", "8", "--device", "cuda")
    assert sample.returncode == 2 and "--device" in sample.stderr


def test_fp16_on_cpu_is_a_recipe_error_naming_model_precision():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so auto resolves to it")
    result = seqtree_inprocess("validate", "recipes/dna.yaml", "--set", "model.precision=fp16")
    assert result.returncode == 2 and "model.precision" in result.stderr


def test_host_arrays_carry_every_dtype_bit_for_bit_in_one_copy():
    """The engine's reads, packed (forced here; on a GPU it is the default) and plain: each tensor comes back with
    its shape and bits. Floats with NaN, infinities, -0 and subnormals are reinterpreted, not converted (a
    conversion through int64 would drop fractions and NaN payloads), integers keep their extremes, and the columns
    of tensors of different widths stay apart; an empty batch reads as empty arrays, and bfloat16, which numpy
    lacks, is refused by name."""
    import numpy as np

    from seqtree.device import host_arrays

    float32 = torch.tensor([[float("nan"), -0.0, 1e-45], [float("-inf"), 3.25, -7.1]])
    tensors = [
        torch.tensor([2, -5]), float32, float32.double() / 3, float32.half(), torch.tensor([2.0**-1074, -1.0]).double(),
        torch.tensor([True, False]), torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4),
        torch.tensor([[-(2**63), 2**63 - 1], [0, -1]]), torch.tensor([[7], [9]], dtype=torch.int16),
        torch.tensor([[1.5, 65504.0], [-0.0, 6e-8]], dtype=torch.float16),
    ]  # fmt: skip
    for pack in (True, False):
        for back, sent in zip(host_arrays(*tensors, pack=pack), tensors, strict=True):
            assert isinstance(back, np.ndarray) and back.shape == tuple(sent.shape)
            assert back.dtype == sent.numpy().dtype and back.tobytes() == sent.numpy().tobytes(), (pack, sent.dtype)
    empty = host_arrays(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), pack=True)
    assert [a.shape for a in empty] == [(0, 3), (0,)] and host_arrays() == []
    with pytest.raises(TypeError, match="bfloat16"):
        host_arrays(torch.zeros(2, dtype=torch.bfloat16), pack=True)
