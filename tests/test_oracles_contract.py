"""Contract suite: every registered oracle, built offline, scores a small batch of good and bad sequences.

A new registered oracle is picked up automatically; one with required parameters needs an entry in
``seqtree.oracles.testing.example_params``.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from seqtree.oracles import FLOOR, Oracle, available_oracles, build_oracle, build_oracle_from_spec
from seqtree.oracles.testing import BAD_EXAMPLES, example_params, examples_for

INFOS = {info.name: info for info in available_oracles()}
_EXTRA_MODULES = {"holo": "holo", "text": "sentence_transformers"}


def _skip_if_missing(requires: str | None) -> None:
    module = _EXTRA_MODULES.get(requires or "")
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"optional extra {requires!r} not installed ({module})")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("oracle_models")


@pytest.fixture(scope="module")
def built(workdir):
    cache: dict[str, Oracle] = {}

    def get(name: str) -> Oracle:
        if name not in cache:
            info = INFOS[name]
            _skip_if_missing(info.requires)
            missing = [p.name for p in info.parameters if p.required]
            params = example_params(name, workdir)
            assert set(missing) <= set(params), f"add example params for {name} in oracles/testing.py"
            cache[name] = build_oracle(name, **params)
        return cache[name]

    return get


def test_registry_lists_every_family() -> None:
    families = {i.family for i in INFOS.values()}
    assert {"ehrlich", "protein", "dna", "molecules", "text", "learned", "custom"} <= families
    for info in INFOS.values():
        assert info.description, f"{info.name} needs a docstring"


@pytest.mark.parametrize("name", sorted(INFOS))
def test_oracle_contract(name: str, built) -> None:
    info = INFOS[name]
    oracle = built(name)
    assert oracle.direction in ("maximize", "minimize")
    assert len(oracle.objective_names) == oracle.num_objectives >= 1
    good = examples_for(oracle, info.domain)
    bad = BAD_EXAMPLES.get(info.domain, [""]) if name not in ("mol_validity", "custom") else []
    batch = good + bad
    calls0 = oracle.calls
    out = oracle.score(batch)
    shape = (len(batch),) if oracle.num_objectives == 1 else (len(batch), oracle.num_objectives)
    assert out.values.dtype == torch.float64 and tuple(out.values.shape) == shape
    assert out.valid.dtype == torch.bool and len(out.reasons) == len(batch)
    assert oracle.calls - calls0 == len(batch)
    assert bool(out.valid[: len(good)].all()), f"{name}: example sequences invalid: {out.reasons}"
    assert all(math.isfinite(v) for v in out.values[: len(good)].reshape(-1).tolist())
    for i in range(len(good), len(batch)):
        assert not out.valid[i] and out.reasons[i], f"{name}: {batch[i]!r} should be invalid"
        assert bool((out.values[i] == FLOOR).all())
    if oracle.bounds is not None:
        lo, hi = oracle.bounds
        vals = out.values[out.valid]
        assert bool(((vals >= lo - 1e-9) & (vals <= hi + 1e-9)).all()), f"{name}: value outside bounds"
    # deterministic, and __call__ agrees with score
    assert torch.equal(oracle(batch), out.values)
    # a single string is a programming error, not a sequence
    with pytest.raises(TypeError):
        oracle.score(good[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(INFOS))
def test_oracle_as_reward_maximises(name: str, built) -> None:
    oracle = built(name)
    reward = oracle.as_reward()
    assert reward.direction == "maximize"
    batch = examples_for(oracle, INFOS[name].domain, n=2)
    sign = 1.0 if oracle.direction == "maximize" else -1.0
    assert torch.allclose(reward(batch), sign * oracle(batch))


def test_empty_batch() -> None:
    oracle = build_oracle_from_spec({"name": "gc_content"})
    out = oracle.score([])
    assert out.values.shape == (0,) and out.reasons == []
