"""CUDA graphs of the denoiser (seqtree.cuda_graphs) and the engine's grouping of equal rows (issue 13).

The graph cases need a GPU and are skipped without one; run ``pytest tests/test_cuda_graphs.py`` on a GPU machine.
The bucket rule, the pass-through off the GPU and the exact grouping run everywhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqtree.cuda_graphs import GraphedDenoiser, bucket_rows
from seqtree.device import AutocastDenoiser
from seqtree.models.loading import load_model
from seqtree.search import result as result_module
from seqtree.search.result import first_copies, row_groups

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_rows_are_padded_to_buckets_of_at_most_7_padding_rows_up_to_256_and_63_above():
    assert [bucket_rows(n) for n in (1, 8, 9, 59, 64, 65, 100, 105, 256, 257, 1000, 1024)] == [
        8, 8, 16, 64, 64, 72, 104, 112, 256, 320, 1024, 1024]  # fmt: skip
    assert bucket_rows(1025) is None
    for rows in range(1, 1025):
        assert 0 <= bucket_rows(rows) - rows <= (7 if rows <= 256 else 63)


def test_training_calls_are_told_by_the_network_under_the_precision_wrapper():
    """bf16 wraps the network in an AutocastDenoiser, created in training mode and never switched: reading the
    wrapper's flag made every bf16 call a training call, run eagerly (found on an H200: no graph was captured)."""
    network = nn.Linear(2, 2).eval()
    graphed = GraphedDenoiser(AutocastDenoiser(network, "bf16"))
    assert graphed.network is network and graphed.inner.training and not graphed.network.training
    network.train()
    assert graphed.network.training
    assert list(graphed.state_dict()) == ["inner.inner.weight", "inner.inner.bias"]  # the weights appear once


def _exact_groups(rows: torch.Tensor) -> list[int]:
    """Group ids by first appearance, from Python tuples (the reference)."""
    seen: dict[tuple, int] = {}
    return [seen.setdefault(tuple(r), len(seen)) for r in rows.tolist()]


def _relabel(group: torch.Tensor) -> list[int]:
    seen: dict[int, int] = {}
    return [seen.setdefault(g, len(seen)) for g in group.tolist()]


@pytest.mark.parametrize("collide", [False, True])
def test_equal_rows_share_a_group_and_different_rows_never_do(monkeypatch, collide):
    """With ``collide`` every row projects to the same number (a worst-case hash), so only the exact check keeps
    different rows apart: without it all rows would be one group and this test fails."""
    if collide:
        monkeypatch.setattr(result_module, "_projection", lambda width, device: torch.zeros(width, dtype=torch.long))
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 3, (200, 5), generator=generator)  # 243 possible rows: many repeats
    group, first = row_groups(rows)
    assert _relabel(group) == _exact_groups(rows)
    assert sorted(set(group.tolist())) == list(range(len(first)))  # ids 0..G-1, one first row each
    assert torch.equal(rows[first[group]], rows)
    assert torch.equal(first_copies(rows), torch.tensor(sorted(set(first.tolist()))))


def test_the_graphed_denoiser_is_the_network_itself_off_the_gpu():
    model = load_model("dna-tiny")
    graphed = GraphedDenoiser(model.denoiser)
    tokens = torch.full((5, 12), model.diffusion.mask_id)
    with torch.no_grad():
        assert torch.equal(graphed(tokens, torch.ones(5)), model.denoiser(tokens, torch.ones(5)))
    assert not graphed.graphs


@CUDA
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_replays_match_the_eager_network_for_every_row_count(precision):
    """Real rows' logits do not depend on the padding rows or on the bucket: equal to the eager pass up to the
    rounding of a different matrix shape (fp32: 1e-4; bf16 autocast: 0.05 on logits of order 1-10)."""
    model = load_model("dna-tiny", device="cuda", precision=precision, cuda_graphs=True)
    graphed = model.inference_denoiser
    assert isinstance(graphed, GraphedDenoiser) and model.inference_denoiser is graphed  # kept, with its graphs
    eager = graphed.inner
    vocabulary = eager.config.vocab_size
    generator = torch.Generator(device="cuda").manual_seed(0)
    tolerance = 1e-4 if precision == "fp32" else 5e-2
    with torch.no_grad():
        for rows in (1, 5, 8, 59, 64, 100):
            tokens = torch.randint(2, vocabulary, (rows, 40), generator=generator, device="cuda")  # bases
            tokens[:, ::3] = model.diffusion.mask_id
            t = torch.rand(rows, generator=generator, device="cuda")
            replayed = graphed(tokens, t)
            again = graphed(tokens, t)
            assert torch.equal(replayed, again)  # a replay is deterministic
            assert torch.allclose(replayed, eager(tokens, t), atol=tolerance, rtol=0)
    assert {key[0] for key in graphed.graphs} == {8, 64, 104}


@CUDA
def test_replaced_weights_are_seen_and_training_runs_eagerly():
    model = load_model("dna-tiny", device="cuda", cuda_graphs=True)
    graphed = model.inference_denoiser
    tokens = torch.full((4, 16), model.diffusion.mask_id, device="cuda")
    t = torch.ones(4, device="cuda")
    with torch.no_grad():
        before = graphed(tokens, t)
        for parameter in model.denoiser.parameters():  # an in-place update: the same storage
            parameter.mul_(0.5)
        halved = graphed(tokens, t)
        assert torch.allclose(halved, model.denoiser(tokens, t), atol=1e-4)
        model.denoiser.head.weight = nn.Parameter(torch.zeros_like(model.denoiser.head.weight))  # new storage
        replaced = graphed(tokens, t)
        assert torch.allclose(replaced, model.denoiser(tokens, t), atol=1e-4)
    assert not torch.allclose(before, halved)
    model.denoiser.train()
    with torch.enable_grad():
        assert graphed(tokens, t).requires_grad  # training calls are eager, with autograd


class _HostBranch(nn.Module):
    """A network that reads a tensor value on the host inside its forward pass: it cannot be captured."""

    def forward(self, tokens, t=None):
        scale = 2.0 if float(t.max()) > 0.5 else 1.0
        return torch.nn.functional.one_hot(tokens, 9).float() * scale


@CUDA
def test_a_network_that_cannot_be_captured_runs_eagerly_with_a_warning():
    graphed = GraphedDenoiser(_HostBranch().cuda().eval())
    tokens = torch.randint(0, 9, (3, 7), device="cuda")
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="CUDA graph capture"):
        out = graphed(tokens, torch.ones(3, device="cuda"))
    assert torch.equal(out, _HostBranch()(tokens, torch.ones(3, device="cuda")))
    assert graphed.failed and not graphed.graphs
