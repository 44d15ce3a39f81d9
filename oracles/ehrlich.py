"""Ehrlich functions: closed-form test functions for biological sequence design with a known optimum of 1.0.

Stanton et al. 2024, "Closed-Form Test Functions for Biophysical Sequence Design" (arXiv:2407.00236), as
implemented by prescient-design's ``pytorch-holo`` (``holo.test_functions.closed_form.Ehrlich``). An instance is
fixed by (states, length, motifs, motif length, quantisation, seed): a sparse ergodic discrete Markov process (DMP)
defines the feasible set (sequences with a zero-probability transition are infeasible, value -inf, mapped here to
the floor with reason ``"infeasible (-inf)"``) and c spaced motifs define the value, the product over motifs of
the quantised fraction of each motif present, so the value lies in [0, 1] and is 1 exactly when all are present.

States are written as letters: state i is ``alphabet[i]`` (default: :func:`default_alphabet`, the 20 amino-acid
letters first, so instances of up to 20 states read like proteins), so designs are ordinary strings.
``pytorch-holo`` is an optional extra imported lazily (:mod:`seqtree.extras`): ``pip install 'seqtree[holo]'`` and
``pip install --no-deps pytorch-holo``.
"""

from __future__ import annotations

from typing import Any

import torch

from seqtree.extras import import_extra
from seqtree.oracles.base import Oracle
from seqtree.oracles.registry import register_oracle

DEFAULT_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
# Letters for instances with more states: the six other capitals, then lower case, then digits (62 in all).
EXTENDED_ALPHABET = DEFAULT_ALPHABET + "BJOUXZ" + "abcdefghijklmnopqrstuvwxyz" + "0123456789"
# The benchmark instances of Stanton et al. (2024), sec. 5, at the sizes the seqtree issue names: "ehrlich-l32" is
# L=32 with c=2 motifs of length k=4 and "ehrlich-l128" is L=128 with c=4, k=4; v=20 states (one amino-acid letter
# each), quantisation q=k, seed 0. data/ehrlich/prepare.py draws the training sets of the shipped ehrlich checkpoints
# from these instances' own DMP, and recipes/ehrlich.yaml and ``seqtree bench ehrlich`` search the same instances.
BENCHMARK_INSTANCES: dict[str, dict[str, int]] = {
    "ehrlich-l32": {"num_states": 20, "dim": 32, "num_motifs": 2, "motif_length": 4, "seed": 0},
    "ehrlich-l128": {"num_states": 20, "dim": 128, "num_motifs": 4, "motif_length": 4, "seed": 0},
}


def default_alphabet(num_states: int) -> str:
    """The letters of states 0 .. num_states - 1: a prefix of :data:`EXTENDED_ALPHABET`, so the 20-state benchmark
    instances keep their amino-acid letters and larger instances stay printable."""
    if not 1 <= num_states <= len(EXTENDED_ALPHABET):
        raise ValueError(
            f"num_states must lie in [1, {len(EXTENDED_ALPHABET)}] for the default alphabet, got {num_states}; "
            "give an explicit alphabet of that many distinct letters"
        )
    return EXTENDED_ALPHABET[:num_states]


def import_holo() -> Any:
    """The ``holo.test_functions`` modules, or a :class:`~seqtree.extras.MissingExtra` naming the holo extra."""
    closed_form = import_extra("holo.test_functions.closed_form", extra="holo", what="the ehrlich oracle")
    elemental = import_extra("holo.test_functions.elemental", extra="holo", what="the ehrlich oracle")
    return closed_form, elemental


def holo_available() -> bool:
    try:
        import_holo()
    except ImportError:
        return False
    return True


@register_oracle("ehrlich", family="ehrlich", domain="ehrlich", requires="holo")
class EhrlichOracle(Oracle):
    """Ehrlich closed-form test function (Stanton 2024, pytorch-holo); optimum 1.0, infeasible -> floor."""

    name = "ehrlich"
    optimum = 1.0
    bounds = (0.0, 1.0)
    domain = "ehrlich"

    def __init__(
        self,
        num_states: int = 20,
        dim: int = 32,
        num_motifs: int = 2,
        motif_length: int = 4,
        quantization: int | None = None,
        epistasis_factor: float = 0.0,
        seed: int = 0,
        alphabet: str | None = None,
    ) -> None:
        alphabet = alphabet if alphabet is not None else default_alphabet(num_states)
        if len(alphabet) != num_states or len(set(alphabet)) != num_states:
            raise ValueError(f"alphabet must have num_states={num_states} distinct letters, got {alphabet!r}")
        if quantization is not None and not 1 <= quantization <= motif_length:
            raise ValueError(f"quantization must lie in [1, motif_length={motif_length}], got {quantization}")
        closed_form, self._elemental = import_holo()
        try:
            self.fn = closed_form.Ehrlich(
                num_states=num_states,
                dim=dim,
                num_motifs=num_motifs,
                motif_length=motif_length,
                quantization=quantization,
                epistasis_factor=epistasis_factor,
                random_seed=seed,
            )
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            raise ValueError(f"invalid Ehrlich configuration: {err}") from err
        self.num_states, self.dim, self.alphabet, self.seed = num_states, dim, alphabet, seed
        self._index = {c: i for i, c in enumerate(alphabet)}
        super().__init__()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_elemental": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._elemental = import_holo()[1]

    # ---- string <-> states -------------------------------------------------------------------------------
    def encode(self, sequences: list[str]) -> torch.Tensor:
        """Letters to states, Long[B, dim]."""
        return torch.tensor([[self._index[c] for c in s] for s in sequences], dtype=torch.long)

    def decode(self, states: torch.Tensor) -> list[str]:
        """States Long[B, dim] (or [dim]) to strings."""
        rows = states.reshape(-1, self.dim).tolist()
        return ["".join(self.alphabet[i] for i in r) for r in rows]

    # ---- the test function's own helpers -----------------------------------------------------------------
    def optimal_solution(self) -> str:
        """A sequence with value 1.0 (built by holo from the motifs and spacings)."""
        return self.decode(self.fn.optimal_solution())[0]

    def sample_feasible(self, n: int, *, generator: torch.Generator) -> list[str]:
        """n feasible sequences drawn from the function's DMP (training data for a pretrained prior)."""
        samples = self._elemental.sample_dmp(
            initial_dist=self.fn.stationary_dist.squeeze(-1),
            transition_matrix=self.fn.transition_matrix,
            num_steps=self.dim,
            num_samples=n,
            generator=generator,
        )
        return self.decode(samples)

    # ---- oracle ------------------------------------------------------------------------------------------
    def _check(self, sequence: str) -> str | None:
        if len(sequence) != self.dim:
            return f"length {len(sequence)} != dim {self.dim}"
        for i, c in enumerate(sequence):
            if c not in self._index:
                return f"letter {c!r} at position {i} not in the Ehrlich alphabet {self.alphabet!r}"
        return None

    def _evaluate(self, sequences: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.fn.evaluate_true(self.encode(sequences)).to(torch.float64)
