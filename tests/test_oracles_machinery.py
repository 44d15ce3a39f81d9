"""Oracle machinery: floors and reasons, failure isolation, cache, composition, spec, pool, registry errors."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from seqtree.oracles import (
    FLOOR,
    CachedOracle,
    Clip,
    Constrained,
    Constraint,
    Negate,
    Normalize,
    Oracle,
    OracleShapeError,
    ParetoVector,
    PooledOracle,
    WeightedSum,
    Window,
    as_reward,
    build_oracle,
    build_oracle_from_spec,
)


class Length(Oracle):
    """Toy oracle: length of the sequence; raises on 'boom', NaN on 'nan', -inf on 'ninf', sleeps on 'sleep'."""

    name = "length"
    bounds = (0.0, 10.0)

    def __init__(self, direction: str = "maximize") -> None:
        self.direction = direction  # type: ignore[assignment]
        super().__init__()
        self.seen: list[str] = []

    def _check(self, sequence: str) -> str | None:
        return "empty sequence" if not sequence else None

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        self.seen.extend(sequences)
        out = []
        for s in sequences:
            if s == "boom":
                raise RuntimeError("scorer exploded")
            if s == "sleep":
                time.sleep(30)
            out.append({"nan": math.nan, "ninf": -math.inf}.get(s, float(len(s))))
        return np.array(out)


def test_bad_entries_get_floor_and_reasons() -> None:
    o = Length()
    out = o.score(["ab", "", "boom", "nan", "ninf", "abcd"])
    assert out.values.tolist() == [2.0, FLOOR, FLOOR, FLOOR, FLOOR, 4.0]
    assert out.valid.tolist() == [True, False, False, False, False, True]
    assert out.reasons[0] is None and out.reasons[1] == "empty sequence"
    assert out.reasons[2] == "exception: RuntimeError: scorer exploded"
    assert out.reasons[3] == "nan" and out.reasons[4] == "infeasible (-inf)"
    assert o.calls == 6
    assert o.failures == {"empty sequence": 1, "exception: RuntimeError: scorer exploded": 1, "nan": 1,
                          "infeasible (-inf)": 1}


def test_non_string_entries_are_floored() -> None:
    out = Length().score(["ab", None, 3])  # type: ignore[list-item]
    assert out.valid.tolist() == [True, False, False]
    assert out.reasons[1] == "not a string: NoneType"


def test_wrong_shape_from_scorer_is_an_error_not_a_floor() -> None:
    class Bad(Length):
        def _evaluate(self, sequences: list[str]) -> np.ndarray:
            return np.zeros(len(sequences) + 1)

    with pytest.raises(OracleShapeError, match=r"'length' returned 3 values .*batch of 2 sequences"):
        Bad().score(["a", "b"])


def one_value(sequences: list[str]) -> list[float]:
    """A custom oracle's bug: one number for the whole batch."""
    return [1.0]


def two_columns(sequences: list[str]) -> list[list[float]]:
    return [[1.0, 2.0] for _ in sequences]


def test_a_custom_oracle_answering_one_value_for_a_batch_is_never_broadcast() -> None:
    """Issue 16: ``[1.0]`` for three sequences gave all three reward 1.0."""
    oracle = build_oracle("custom", function="test_oracles_machinery:one_value")
    with pytest.raises(OracleShapeError, match=r"'one_value' returned 1 value \(shape \(1,\)\) for a batch of 3 "):
        oracle.score(["AAA", "CC", "G"])
    assert oracle([]).shape == (0,) and oracle(["A"]).tolist() == [1.0]  # right for a batch of one
    spec = {"sum": [{"name": "custom", "params": {"function": "test_oracles_machinery:one_value"}, "weight": 1.0}]}
    with pytest.raises(OracleShapeError, match="batch of 2"):  # through composition and the cache alike
        CachedOracle(build_oracle_from_spec(spec)).score(["AC", "GT"])


def test_a_wrong_number_of_objectives_is_an_error_naming_both() -> None:
    three = build_oracle("custom", function="test_oracles_machinery:two_columns", num_objectives=3)
    with pytest.raises(OracleShapeError, match=r"'two_columns' returned 2 objectives per sequence, expected 3"):
        three.score(["A", "C"])
    one = build_oracle("custom", function="test_oracles_machinery:two_columns")
    with pytest.raises(OracleShapeError, match="returned 2 objectives per sequence, expected 1"):
        one.score(["A", "C"])
    two = build_oracle("custom", function="test_oracles_machinery:two_columns", num_objectives=2)
    assert two(["A"]).shape == (1, 2)


def test_a_pooled_oracle_raises_its_workers_shape_error() -> None:
    inner = build_oracle("custom", function="test_oracles_machinery:one_value")
    pooled = PooledOracle(inner, workers=1, chunk_size=4, start_method="fork")
    try:
        with pytest.raises(OracleShapeError, match="batch of 3"):
            pooled.score(["A", "C", "G"])
    finally:
        pooled.close()


def test_cache_hits_do_not_call_scorer() -> None:
    inner = Length()
    cached = CachedOracle(inner)
    first = cached(["ab", "abc", "ab", "boom"])
    # 'ab' goes to the scorer once per attempt (batch, then one by one after 'boom' raised), never twice per batch
    assert set(inner.seen) == {"ab", "abc", "boom"} and inner.calls == 3
    assert cached.calls == 3 and cached.hits == 1
    inner.seen.clear()
    second = cached.score(["abc", "boom", "ab"])
    assert inner.seen == [] and cached.calls == 3 and cached.hits == 4
    assert torch.equal(second.values, first[[1, 3, 0]])
    assert second.reasons[1] == "exception: RuntimeError: scorer exploded"
    cached(["abcde"])
    assert inner.seen == ["abcde"] and cached.calls == 4


def test_cache_lru_maxsize() -> None:
    cached = CachedOracle(Length(), maxsize=2)
    cached(["a", "bb", "ccc"])
    assert len(cached) == 2
    cached(["a"])
    assert cached.calls == 4


def test_negate_and_as_reward() -> None:
    m = Length(direction="minimize")
    r = as_reward(m)
    assert isinstance(r, Negate) and r.direction == "maximize" and r.bounds == (-10.0, 0.0)
    assert r(["abc", ""]).tolist() == [-3.0, FLOOR]
    plain = Length()
    assert as_reward(plain) is plain


def test_clip_normalize_window_by_hand() -> None:
    seqs = ["a", "aaa", "aaaaaa", "aaaaaaaaaaaa"]  # lengths 1, 3, 6, 12
    assert Clip(Length(), 2.0, 6.0)(seqs).tolist() == [2.0, 3.0, 6.0, 6.0]
    assert Normalize(Length())(seqs).tolist() == pytest.approx([0.1, 0.3, 0.6, 1.0])
    assert Normalize(Length(direction="minimize"))(seqs).tolist() == pytest.approx([0.9, 0.7, 0.4, 0.0])
    w = Window(Length(), 3.0, 6.0)  # scale = 3
    assert w(seqs).tolist() == pytest.approx([math.exp(-2 / 3), 1.0, 1.0, math.exp(-2.0)])
    assert w(["", "aaaa"]).tolist() == [FLOOR, 1.0]
    with pytest.raises(ValueError, match="no known bounds"):
        Normalize(build_oracle("logp"))


def test_weighted_sum_by_hand() -> None:
    s = WeightedSum([Length(), Normalize(Length())], [2.0, 10.0])
    assert s(["ab", "abcd"]).tolist() == pytest.approx([2 * 2 + 10 * 0.2, 2 * 4 + 10 * 0.4])
    out = s.score(["ab", "", "boom"])
    assert out.values.tolist()[1:] == [FLOOR, FLOOR]
    assert out.reasons[1] == "length: empty sequence"
    assert s.bounds == (0.0, 30.0)
    with pytest.raises(ValueError, match="minimises"):
        WeightedSum([Length(direction="minimize")], [1.0])


def test_pareto_vector_by_hand() -> None:
    p = ParetoVector([Length(), Negate(Length(direction="minimize"))])
    out = p.score(["ab", "abc", ""])
    assert p.num_objectives == 2 and out.values.shape == (3, 2)
    assert out.values[:2].tolist() == [[2.0, -2.0], [3.0, -3.0]]
    assert out.values[2].tolist() == [FLOOR, FLOOR] and not out.valid[2]


def test_constraints_floor_and_skip_scoring() -> None:
    objective = Length()
    c = Constrained(objective, [Constraint("short", oracle=Length(), hi=3.0),
                                Constraint("no_z", predicate=lambda s: "z" not in s)])
    out = c.score(["ab", "abcdef", "az", ""])
    assert out.values.tolist() == [2.0, FLOOR, FLOOR, FLOOR]
    assert out.reasons[1] == "constraint short=6 outside [-inf, 3]"
    assert out.reasons[2] == "constraint no_z violated"
    assert out.reasons[3] == "short: empty sequence"
    assert objective.seen == ["ab"]  # infeasible sequences are never scored


def test_spec_sum_with_constraints_molecules() -> None:
    spec = {
        "sum": [{"name": "qed", "weight": 1.0}, {"name": "sa_score", "weight": 0.5, "normalize": True}],
        "constraints": [{"name": "mol_weight", "max": 300}],
    }
    o = build_oracle_from_spec(spec)
    assert isinstance(o, CachedOracle) and o.direction == "maximize"
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"
    qed, sa = build_oracle("qed")([aspirin]).item(), build_oracle("sa_score")([aspirin]).item()
    out = o.score([aspirin, "C" * 40, "C1CC("])
    assert out.values[0].item() == pytest.approx(qed + 0.5 * (1 - (sa - 1) / 9))
    assert out.reasons[1].startswith("constraint mol_weight=") and out.reasons[2] == "mol_weight: invalid SMILES"


def test_spec_leaf_window_and_minimise_orientation() -> None:
    gc = build_oracle_from_spec({"name": "gc_content", "window": [0.4, 0.6], "cache": False})
    assert gc(["GCGCAAAATT", "GCGCGCGCGC"]).tolist() == pytest.approx([1.0, math.exp(-0.4 / 0.2)])
    hp = build_oracle_from_spec({"name": "homopolymer_penalty", "params": {"max_run": 3}, "cache": False})
    assert hp.direction == "maximize" and hp(["AAAAACGT", "ACGT"]).tolist() == [-2.0, -0.0]


def test_spec_pareto() -> None:
    o = build_oracle_from_spec({"pareto": [{"name": "qed"}, {"name": "sa_score"}]})
    assert o.num_objectives == 2 and o.objective_names == ["qed", "neg_sa_score"]
    v = o(["CC(=O)Oc1ccccc1C(=O)O"])
    assert v.shape == (1, 2) and v[0, 1].item() < 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"name": "qed", "sum": []}, "exactly one of"),
        ({"nme": "qed"}, "nme"),
        ({"name": "gc_content", "window": [0.4, 0.6], "normalize": True}, "either normalize or window"),
        ({"sum": [{"name": "qed", "weight": "heavy"}]}, "weight"),
        ({"name": "qed", "constraints": [{"name": "mol_weight"}]}, "min and/or max"),
        ({"name": "qed", "timeout_s": 1.0}, "workers"),
    ],
)
def test_spec_errors_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_oracle_from_spec(spec)


def test_registry_errors() -> None:
    with pytest.raises(KeyError, match="unknown oracle"):
        build_oracle("no_such_oracle")
    with pytest.raises(ValueError, match="max_run"):
        build_oracle("homopolymer_penalty", max_run="long")
    with pytest.raises(ValueError, match="extra"):
        build_oracle("qed", colour="blue")
    with pytest.raises(ValueError, match="not found"):
        build_oracle("tf_motif", motifs=["NOT_A_TF_NAME"])


def test_custom_oracle_only_by_explicit_name() -> None:
    o = build_oracle_from_spec({"name": "custom", "params": {"function": "seqtree.oracles.custom:example_length"}})
    assert o(["abc", ""]).tolist() == [3.0, 0.0]
    with pytest.raises(ValueError, match="module:function"):
        build_oracle("custom", function="no_colon")


def test_pool_matches_inline_and_times_out() -> None:
    inner = build_oracle("gc_content")
    pooled = PooledOracle(inner, workers=2, chunk_size=2, timeout_s=20.0)
    try:
        seqs = ["GGCC", "ATAT", "GATC", "", "GGGA"]
        out = pooled.score(seqs)
        ref = inner.score(seqs)
        assert torch.equal(out.values, ref.values) and out.reasons == ref.reasons
    finally:
        pooled.close()
    slow = PooledOracle(Length(), workers=1, chunk_size=1, timeout_s=1.0, start_method="fork")
    try:
        t0 = time.perf_counter()
        out = slow.score(["ab", "sleep", "abc"])
        assert time.perf_counter() - t0 < 15
        assert out.values.tolist() == [2.0, FLOOR, 3.0] and out.reasons[1] == "timeout"
        assert slow.failures == {"timeout": 1}
    finally:
        slow.close()


def test_cache_does_not_store_timeouts() -> None:
    slow = PooledOracle(Length(), workers=1, chunk_size=1, timeout_s=1.0, start_method="fork")
    cached = CachedOracle(slow)
    try:
        cached(["sleep", "ab"])
        assert "sleep" not in cached._store and "ab" in cached._store
    finally:
        slow.close()


def test_describe_reports_counters_of_every_part() -> None:
    o = build_oracle_from_spec({"sum": [{"name": "qed"}], "constraints": [{"name": "mol_weight", "max": 300}]})
    o(["CCO", "C1CC(", "CCO"])
    d = o.describe()
    assert d["type"] == "CachedOracle" and d["calls"] == 2 and d["cache_hits"] == 1
    assert d["failures"] == {"mol_weight: invalid SMILES": 1}
    constrained = d["parts"][0]
    assert [p["type"] for p in constrained["parts"]] == ["WeightedSum", "MolWeight"]


def test_wrappers_forward_extras_of_the_inner_oracle() -> None:
    cached = build_oracle_from_spec({"name": "tf_motif", "params": {"motifs": ["FOXA2"]}})
    assert cached.release == "JASPAR2024"  # forwarded from TFMotifScore through CachedOracle
    with pytest.raises(AttributeError):
        cached._private_thing  # noqa: B018
