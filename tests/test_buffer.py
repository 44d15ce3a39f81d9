"""The replay buffer file a design run appends to (seqtree.buffer)."""

import pytest
import torch

from seqtree.buffer import append_to_buffer, check_compatible, read_buffer
from seqtree.search.result import Designs, SearchResult, Trajectories


def _result(rows: int, length: int = 6, steps: int = 3, seed: int = 0) -> SearchResult:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 4, (rows, length), generator=generator)
    scores = torch.rand(rows, generator=generator, dtype=torch.float64).sort(descending=True).values
    log_prob = -torch.rand(rows, steps, generator=generator)
    designs = Designs(["x"] * rows, tokens, scores[:, None], scores, log_prob.sum(1), None)
    return SearchResult("best_of_n", designs, Trajectories(tokens, log_prob, log_prob), [], 0, 0, 0.0, "completed")


def test_appends_keep_rows_aligned_and_record_each_run(tmp_path):
    path, designed = tmp_path / "b.safetensors", torch.tensor([False, True, True, True, True, False])
    first, second = _result(3), _result(2, seed=1)
    assert append_to_buffer(path, first, designed, {"model": "m", "seed": 0}) == 3
    assert append_to_buffer(path, second, designed, {"model": "m", "seed": 1}) == 5
    columns, runs = read_buffer(path)
    assert [run["seed"] for run in runs] == [0, 1]
    assert torch.equal(columns["tokens"], torch.cat([first.designs.tokens, second.designs.tokens]))
    assert torch.equal(columns["log_prob"][3:], second.trajectories.log_prob)
    assert columns["designed"].tolist() == [designed.tolist()] * 5
    assert torch.isnan(columns["weights"]).all()  # best-of-N designs here carry no weights


def test_a_mismatched_run_is_refused_and_leaves_the_buffer_unchanged(tmp_path):
    path, designed = tmp_path / "b.safetensors", torch.ones(6, dtype=torch.bool)
    append_to_buffer(path, _result(3), designed, {"model": "m"})
    before = path.read_bytes()
    with pytest.raises(ValueError, match="column log_prob has shape"):
        append_to_buffer(path, _result(2, steps=4), designed, {"model": "m"})
    with pytest.raises(ValueError, match="holds trajectories of model m, this run uses other"):
        check_compatible(path, "other", {"tokens": (6,)})
    assert path.read_bytes() == before
    (tmp_path / "junk.safetensors").write_text("not a buffer")
    with pytest.raises(ValueError, match="junk.safetensors: not a readable seqtree buffer"):
        check_compatible(tmp_path / "junk.safetensors", "m", {"tokens": (6,)})
