"""The replay buffer (seqtree.buffer): weights, deduplication, eviction, the Pareto archive, persistence, imports
from scored files, refusal of non-finite weights, and the design run's append."""

import math

import pytest
import torch

from seqtree.buffer import (
    UNKNOWN_STEP,
    BufferError,
    ReplayBuffer,
    append_to_buffer,
    check_compatible,
    crowding_distance,
    pareto_archive,
    read_buffer,
)
from seqtree.buffer_import import imported_rows, read_scored
from seqtree.models.tokenizers import tokenizer_for_domain
from seqtree.search.result import Designs, SearchResult, Trajectories

LENGTH, STEPS = 6, 3


def _rows(tokens, scores, *, proposal=None, pretrained=None, rewards=None) -> dict[str, torch.Tensor]:
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    count = tokens.shape[0]
    scores = torch.as_tensor(scores, dtype=torch.float64)
    log_prob = torch.zeros(count, STEPS)
    if proposal is not None:
        log_prob[:, 0] = torch.as_tensor(proposal, dtype=torch.float32)
    return {
        "tokens": tokens, "designed": torch.ones(count, LENGTH, dtype=torch.bool),
        "unmask_step": torch.zeros(count, LENGTH, dtype=torch.long), "log_prob": log_prob,
        "log_prob_model": log_prob.clone(),
        "log_prob_pretrained": torch.zeros(count, dtype=torch.float64) if pretrained is None
        else torch.as_tensor(pretrained, dtype=torch.float64),
        "rewards": scores[:, None] if rewards is None else torch.as_tensor(rewards, dtype=torch.float64),
        "scores": scores, "round": torch.zeros(count, dtype=torch.long), "seed": torch.zeros(count, dtype=torch.long),
    }  # fmt: skip


def _seq(value: int) -> list[int]:
    return [value] * LENGTH


def _buffer(**options) -> ReplayBuffer:
    return ReplayBuffer.empty(model="m", length=LENGTH, num_steps=STEPS, **options)


def test_log_weight_is_reward_over_alpha_plus_the_path_log_ratio():
    buffer = _buffer(alpha=0.5)
    buffer.add(_rows([_seq(2), _seq(3)], [1.0, 2.0], proposal=[-1.5, -0.5], pretrained=[-2.0, -0.25]), source="s")
    # rows sorted best first: score 2 -> 4 + (-0.25 + 0.5); score 1 -> 2 + (-2 + 1.5)
    assert buffer.log_weights().tolist() == pytest.approx([4.25, 1.5])
    assert buffer.normalized_weights().sum() == pytest.approx(1.0)
    assert buffer.log_weights(alpha=1.0).tolist() == pytest.approx([2.25, 0.5])


def test_weights_are_self_normalised_per_round_unless_pooled(tmp_path):
    rows = _rows([_seq(2), _seq(3), _seq(4), _seq(5)], [1.0, 0.0, 2.0, 1.0], pretrained=[0.0, 0.0, -20.0, -20.0])
    rows["round"] = torch.tensor([1, 1, 2, 2])
    weights = {}
    for normalization in ("round", "buffer"):
        buffer = _buffer(normalization=normalization)
        buffer.add(rows, source="s")
        first_tokens = buffer.columns["tokens"][:, 0].tolist()
        weights[normalization] = dict(zip(first_tokens, buffer.normalized_weights().tolist()))
    e = math.e
    assert weights["round"][2] == pytest.approx(0.5 * e / (e + 1))  # each round's best: the same share
    assert weights["round"][4] == pytest.approx(weights["round"][2])
    assert sum(weights["round"].values()) == pytest.approx(1.0)
    assert weights["buffer"][4] < 1e-7  # pooled, round 2's correction drowns its better find
    assert ReplayBuffer.load(buffer.save(tmp_path / "b.safetensors")).normalization == "buffer"


def test_duplicates_keep_the_best_weighted_copy():
    buffer = _buffer()
    buffer.add(_rows([_seq(2), _seq(3)], [1.0, 0.0]), source="a")
    buffer.add(_rows([_seq(2), _seq(2), _seq(4)], [0.5, 3.0, 0.2]), source="b")
    assert len(buffer) == 3
    assert buffer.columns["tokens"][:, 0].tolist() == [2, 4, 3]  # sorted by weight, one copy of sequence 2
    assert buffer.columns["scores"].tolist() == [3.0, 0.2, 0.0]
    assert [buffer.sources[i] for i in buffer.columns["source"].tolist()] == ["b", "b", "a"]


def test_capacity_evicts_the_lowest_weights_first():
    buffer = _buffer(capacity=3)
    buffer.add(_rows([_seq(v) for v in range(2, 7)], [0.1, 0.5, 0.3, 0.9, 0.2]), source="a")
    assert buffer.columns["scores"].tolist() == [0.9, 0.5, 0.3]
    buffer.add(_rows([_seq(7)], [0.4]), source="a")  # beats 0.3, which leaves
    assert buffer.columns["scores"].tolist() == [0.9, 0.5, 0.4]
    buffer.add(_rows([_seq(8)], [0.05]), source="a")  # too weak to enter
    assert buffer.columns["scores"].tolist() == [0.9, 0.5, 0.4]


def test_pareto_archive_keeps_whole_fronts_then_the_most_spread_out():
    rewards = torch.tensor(
        [[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.55, 0.45], [1.0, 0.0], [0.1, 0.1], [0.2, 0.2]], dtype=torch.float64
    )
    # front 1 = rows 0-4; row 3 crowds row 2, so thinning front 1 to 4 drops one of those two, never an extreme
    chosen = set(pareto_archive(rewards, 4).tolist())
    assert {0, 4} <= chosen and len(chosen) == 4 and len({2, 3} & chosen) == 1
    assert set(pareto_archive(rewards, 6).tolist()) == {0, 1, 2, 3, 4, 6}  # the whole first front, then front 2
    distance = crowding_distance(rewards[:5])
    assert math.isinf(distance[0]) and math.isinf(distance[4]) and distance[1] > distance[2]
    # Row 0 is unlikely under the pretrained model, so its weight is the lowest: only the archive keeps it.
    rows = _rows([_seq(v) for v in range(2, 9)], rewards.mean(1), rewards=rewards, pretrained=[-10.0] + [0.0] * 6)
    kept = {}
    for eviction in ("pareto", "weight"):
        buffer = _buffer(capacity=5, eviction=eviction, num_objectives=2)
        buffer.add(rows, source="mo")
        kept[eviction] = {tuple(r) for r in buffer.columns["rewards"].tolist()}
    assert kept["pareto"] == {tuple(r) for r in rewards[:5].tolist()}
    assert kept["weight"] == {tuple(r) for r in rewards[[1, 2, 3, 4, 6]].tolist()}


def test_persistence_round_trip(tmp_path):
    buffer = _buffer(alpha=0.2, capacity=10)
    buffer.add(_rows([_seq(2), _seq(3)], [1.0, 2.0], proposal=[-1.0, -2.0]), source="dts", run={"round": 1})
    path = buffer.save(tmp_path / "buffer.safetensors")
    again = ReplayBuffer.load(path)
    assert (again.model, again.alpha, again.capacity, again.eviction) == ("m", 0.2, 10, "weight")
    assert again.sources == ["dts"] and again.runs == [{"round": 1, "rows": 2}]
    for name, column in buffer.columns.items():
        assert torch.equal(again.columns[name], column), name
    assert torch.equal(again.log_weights(), buffer.log_weights())


def test_non_finite_weights_are_refused_with_the_row_and_the_reason():
    buffer = _buffer()
    rows = _rows([_seq(2), _seq(3), _seq(4)], [1.0, -math.inf, 0.5], pretrained=[0.0, 0.0, -math.inf])
    with pytest.raises(BufferError, match=r"row 1: log weight is not finite \(reward -inf"):
        buffer.add(rows, source="s")
    assert len(buffer) == 0  # nothing half-added
    reasons = buffer.add(rows, source="s", skip_invalid=True)
    assert len(buffer) == 1 and len(reasons) == 2
    assert "row 2" in reasons[1] and "pretrained log-probability -inf" in reasons[1]


def test_rows_of_another_shape_are_refused():
    buffer = _buffer()
    rows = _rows([_seq(2)], [1.0])
    rows["log_prob"] = torch.zeros(1, STEPS + 1)
    with pytest.raises(BufferError, match="column log_prob has shape"):
        buffer.add(rows, source="s")


def test_import_from_a_scored_csv_and_fasta(tmp_path):
    tokenizer = tokenizer_for_domain("dna")
    root = torch.tensor([tokenizer.mask_id] * 4 + [tokenizer.pad_id] * 2)
    csv = tmp_path / "lab.csv"
    csv.write_text("sequence,reward,other\nACGT,1.5,x\nGGGG,-0.5,y\n")
    sequences, rewards = read_scored(csv)
    rows = imported_rows(sequences, rewards, tokenizer=tokenizer, root=root, num_steps=STEPS, source=str(csv))
    assert [tokenizer.decode(r) for r in rows["tokens"].tolist()] == ["ACGT", "GGGG"]
    assert rows["designed"].sum(1).tolist() == [4, 4]
    assert (rows["unmask_step"][:, :4] == UNKNOWN_STEP).all() and (rows["unmask_step"][:, 4:] == -1).all()
    buffer = ReplayBuffer.empty(model="dna-tiny", length=6, num_steps=STEPS, alpha=0.5)
    buffer.add(rows, source="file")
    assert buffer.log_weights().tolist() == pytest.approx([3.0, -1.0])  # reward alone for imported rows
    fasta = tmp_path / "lab.fasta"
    fasta.write_text(">d1 reward=2.0\nACGA\n>d2 reward=0.25\nTTTT\n")
    assert read_scored(fasta)[1].flatten().tolist() == [2.0, 0.25]
    fasta.write_text(">d1 score=2.0\nACGA\n")
    with pytest.raises(BufferError, match=r"lab.fasta, record 1 \(d1\): no reward=<value>"):
        read_scored(fasta)
    with pytest.raises(BufferError, match="no column 'affinity'"):
        read_scored(csv, ["affinity"])
    with pytest.raises(BufferError, match="record 2: 3 tokens do not complete the design"):
        imported_rows(["ACGT", "ACG"], torch.ones(2, 1), tokenizer=tokenizer, root=root, num_steps=STEPS)
    with pytest.raises(BufferError, match="record 1: .*not finite"):
        imported_rows(["ACGT"], torch.tensor([[math.nan]]), tokenizer=tokenizer, root=root, num_steps=STEPS)


def _result(rows: int, steps: int = STEPS, seed: int = 0) -> SearchResult:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, 6, (rows, LENGTH), generator=generator)
    scores = torch.rand(rows, generator=generator, dtype=torch.float64).sort(descending=True).values
    log_prob = -torch.rand(rows, steps, generator=generator)
    unmask = torch.randint(0, steps, (rows, LENGTH), generator=generator)
    designs = Designs(["x"] * rows, tokens, scores[:, None], scores, log_prob.sum(1), None)
    paths = Trajectories(tokens=tokens, log_prob=log_prob, log_prob_model=log_prob, unmask_step=unmask)
    return SearchResult("best_of_n", designs, paths, [], 0, 0, 0.0, "completed")


def test_design_runs_append_and_a_mismatched_run_is_refused(tmp_path):
    path, designed = tmp_path / "b.safetensors", torch.ones(LENGTH, dtype=torch.bool)
    first, second = _result(3), _result(2, seed=1)
    assert append_to_buffer(path, first, designed, {"model": "m", "seed": 0, "algorithm": "dts"}) == 3
    assert append_to_buffer(path, second, designed, {"model": "m", "seed": 1, "algorithm": "smc"}) == 5
    columns, runs = read_buffer(path)
    assert [run["seed"] for run in runs] == [0, 1]
    assert torch.equal(columns["unmask_step"][columns["seed"] == 1].sort(0).values,
                       second.trajectories.unmask_step.sort(0).values)  # fmt: skip
    # the pretrained model ran the search: its untempered log-probabilities are log p_pre
    assert torch.allclose(columns["log_prob_pretrained"], columns["log_prob_model"].double().sum(1))
    before = path.read_bytes()
    with pytest.raises(BufferError, match="column log_prob has shape"):
        append_to_buffer(path, _result(2, steps=4), designed, {"model": "m"})
    with pytest.raises(BufferError, match="holds trajectories of model m, this run uses other"):
        check_compatible(path, "other", {"tokens": (LENGTH,)})
    assert path.read_bytes() == before
    (tmp_path / "junk.safetensors").write_text("not a buffer")
    with pytest.raises(BufferError, match="junk.safetensors: not a readable seqtree buffer"):
        check_compatible(tmp_path / "junk.safetensors", "m", {"tokens": (LENGTH,)})
