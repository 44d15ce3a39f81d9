"""Recorded unmasking paths replay exactly: for every search algorithm, the designs' (tokens, unmask_step) replayed
under the model that sampled them (``seqtree.trajectory.replay_log_probs``) give back the per-step log-probabilities
the search recorded. This is what TR2-D2's importance weights (log p_pretrained - log p_policy along the path) rest
on, so a path recorded one step off must not replay.

The toy is the exact one of test_search.py (an enumerated joint over 4^5 DNA sequences, time-independent, so the
no-change cache is exact), with 8 reverse steps branched every 2.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from fakes import MASK_ID, ExactJointDenoiser, TableOracle, random_joint
from seqtree.models.tokenizers import dna_tokenizer
from seqtree.search import ALGORITHMS, UNKNOWN_STEP, Budget, SearchProblem, SearchResult, Tree, run_search
from seqtree.trajectory import replay_log_probs

V, L, STEPS, BRANCH = 4, 5, 8, 2
PROMPT = torch.tensor([3, 4, MASK_ID, MASK_ID, MASK_ID])  # "CG" fixed, three positions designed
# Small runs: each algorithm takes well under a second on the toy.
PARAMS: dict[str, dict[str, object]] = {
    "mcts": {"num_children": 3, "max_iterations": 8},
    "dts": {"max_iterations": 12, "leaves_per_iteration": 2, "num_samples": 8},
    "dts_star": {"max_iterations": 12, "leaves_per_iteration": 2, "num_samples": 8},
    "svdd": {"num_particles": 4, "num_candidates": 3},
    "smc": {"num_particles": 8, "ess_threshold": 1.0},  # resample at every branch point
    "beam": {"beam_width": 3, "branching": 3},
    "best_of_n": {"num_samples": 12, "batch_size": 6},
    "remask": {"initial_samples": 6, "elite_size": 3, "children": 3, "max_iterations": 6},
}


class Toy:
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.denoiser = ExactJointDenoiser(random_joint(V, L, g), V, L)
        self.diffusion = self.denoiser.diffusion()
        self.rewards = torch.rand(V**L, generator=g, dtype=torch.float64) * 2.0
        self.tokenizer = dna_tokenizer()

    def search(self, name: str, root: torch.Tensor | None = None, **kwargs) -> SearchResult:
        root = torch.full((L,), MASK_ID) if root is None else root
        problem = SearchProblem(
            self.denoiser, self.diffusion, self.tokenizer, TableOracle(self.rewards, "ACGT", L), root,
            num_steps=STEPS, branch_every=BRANCH, **kwargs,
        )  # fmt: skip
        return run_search(name, problem, Budget(nfe=600), generator=torch.Generator().manual_seed(5), **PARAMS[name])


@pytest.fixture(scope="module")
def toy() -> Toy:
    return Toy()


def assert_replays(toy: Toy, result: SearchResult, root: torch.Tensor) -> None:
    """unmask_step is -1 exactly on the root's fixed positions and a step elsewhere, and the path replays."""
    designs, paths = result.designs, result.trajectories
    assert len(designs) > 0
    steps = paths.unmask_step
    assert steps.dtype == torch.long and steps.shape == (len(designs), L)
    designed = root == MASK_ID
    assert (steps[:, ~designed] == -1).all()
    # a remask child has no path: every designed position UNKNOWN_STEP, zero log-probabilities, nothing to replay
    unknown = (steps[:, designed] == UNKNOWN_STEP).all(-1)
    assert (unknown | (steps[:, designed] != UNKNOWN_STEP).all(-1)).all()  # all or nothing per row
    assert (~unknown).any() and (paths.log_prob_model[unknown] == 0).all()
    known = steps[~unknown][:, designed]
    assert ((known >= 0) & (known < STEPS)).all()
    replay = replay_log_probs(toy.denoiser, toy.diffusion, designs.tokens, steps, STEPS)
    torch.testing.assert_close(replay.step_log_prob, paths.log_prob_model, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_recorded_paths_replay_exactly(toy, name, cache):
    root = torch.full((L,), MASK_ID)
    assert_replays(toy, toy.search(name, cache=cache), root)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_tempered_paths_replay_under_the_untempered_model(toy, name):
    result = toy.search(name, temperature=0.7)
    assert_replays(toy, result, torch.full((L,), MASK_ID))
    assert not torch.allclose(result.trajectories.log_prob, result.trajectories.log_prob_model)  # tempering showed


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_prompt_positions_are_fixed_and_paths_replay(toy, name):
    result = toy.search(name, root=PROMPT)
    assert (result.designs.tokens[:, :2] == PROMPT[:2]).all()
    assert_replays(toy, result, PROMPT)


def test_a_path_one_step_off_does_not_replay(toy):
    result = toy.search("best_of_n")
    paths = result.trajectories
    wrong = paths.unmask_step.clone()
    k = wrong[:, 0]
    wrong[:, 0] = torch.where(k + 1 < STEPS, k + 1, k - 1)  # position 0 unmasked one step later (or earlier)
    replay = replay_log_probs(toy.denoiser, toy.diffusion, result.designs.tokens, wrong, STEPS)
    off = (replay.step_log_prob - paths.log_prob_model).abs().amax(-1) > 1e-4  # [N] rows that no longer replay
    assert off.all(), off


# ------------------------------------------------------------------------------------------------- tree
def _small_tree() -> tuple[Tree, int]:
    """Root [M, 3, M, M] (position 1 fixed), one child (steps 0 -> 2) and one grandchild (2 -> 4)."""
    root = torch.tensor([MASK_ID, 3, MASK_ID, MASK_ID])
    tree = Tree.create(root, num_steps=4, branch_every=2, num_objectives=1, vocab_size=6, mask_id=MASK_ID)
    child = tree.add_children(
        np.array([0]), torch.tensor([[2, 3, MASK_ID, 5]]), np.array([2]), torch.zeros(1, 2), torch.zeros(1, 2),
        torch.zeros(1, dtype=torch.bool), torch.tensor([[1, -1, -1, 0]]),
    )  # fmt: skip
    leaf = tree.add_children(
        child, torch.tensor([[2, 3, 4, 5]]), np.array([4]), torch.zeros(1, 2), torch.zeros(1, 2),
        torch.ones(1, dtype=torch.bool), torch.tensor([[-1, -1, 3, -1]]),
    )  # fmt: skip
    return tree, int(leaf[0])


def test_tree_path_unmask_steps_survive_save_and_load(tmp_path):
    tree, leaf = _small_tree()
    assert tree.path_unmask_steps(leaf).tolist() == [1, -1, 3, 0]
    assert tree.path_unmask_steps(int(tree.parent[leaf])).tolist() == [1, -1, -1, 0]  # position 2 still masked
    assert tree.path_unmask_steps(0).tolist() == [-1, -1, -1, -1]
    loaded = Tree.load(tree.save(tmp_path / "tree.safetensors"))
    assert loaded.path_unmask_steps(leaf).tolist() == [1, -1, 3, 0]
    grown = loaded.add_children(
        np.array([leaf]), torch.tensor([[2, 3, 4, 5]]), np.array([4]), torch.zeros(1, 2), torch.zeros(1, 2),
        torch.ones(1, dtype=torch.bool), torch.full((1, 4), -1),
    )  # fmt: skip
    assert loaded.path_unmask_steps(int(grown[0])).tolist() == [1, -1, 3, 0]


def test_tree_refuses_unmask_steps_outside_the_segment():
    tree, leaf = _small_tree()
    with pytest.raises(ValueError, match="outside the segment"):
        tree.add_children(
            np.array([leaf]), torch.tensor([[2, 3, 4, 5]]), np.array([4]), torch.zeros(1, 2), torch.zeros(1, 2),
            torch.ones(1, dtype=torch.bool), torch.tensor([[1, -1, -1, -1]]),  # step 1 is before the leaf's step 4
        )  # fmt: skip


def test_a_tree_saved_without_unmask_offsets_is_refused(tmp_path):
    tree, _ = _small_tree()
    path = tree.save(tmp_path / "tree.safetensors")
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
        arrays = {k: handle.get_tensor(k) for k in handle.keys() if k != "unmask_offset"}
    save_file(arrays, str(path), metadata=metadata)  # what an older seqtree wrote
    with pytest.raises(ValueError, match="unmask_offset.*older seqtree"):
        Tree.load(path)
