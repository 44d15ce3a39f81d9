"""Oracles: scoring functions for designed sequences (protein, DNA, SMILES molecules, text), composable and robust.

Contract (:class:`Oracle`): ``oracle(list[str]) -> torch.float64 [B]`` (or ``[B, K]`` for K objectives), with
``name``, ``direction`` (``"maximize"`` / ``"minimize"``), optional ``optimum`` and ``bounds``,
``num_objectives`` and ``objective_names``. ``oracle.score(seqs)`` returns :class:`OracleOutput` (values, valid
mask, reason per sequence). Invalid inputs and scorer failures (exception, NaN, -inf, time-out) never raise: they
get :data:`FLOOR` (-1e3, finite so soft-value backups stay finite) and a reason; ``oracle.calls`` counts scored
sequences (cache misses only for :class:`CachedOracle`) and ``oracle.failures`` counts reasons. Configuration
errors (unknown parameter, missing model file) do raise, with a message naming the field, and so does a scorer that
returns the wrong number of values or objectives for its batch (:class:`OracleShapeError`: never broadcast).

Direction: search maximises. Registered oracles return natural values in their natural direction;
:func:`as_reward` negates a minimise objective, and :func:`build_oracle_from_spec` always returns a
maximise-oriented pipeline.

Registry: ``build_oracle("qed")``, ``build_oracle("tf_motif", motifs=["HNF4A", "FOXA2"], avoid=["CTCF"])``;
:func:`available_oracles` lists names, families, descriptions and typed parameters (``seqtree oracles list``).

Spec format (the ``oracle:`` section of a recipe; validated by pydantic, unknown keys are errors)::

    # a single oracle (a "leaf")
    name: qed                     # a registered name
    params: {}                    # constructor parameters, checked against its signature
    clip: [lo, hi]                # optional: clamp the raw value first
    window: [lo, hi]              # optional: reward exp(-distance / window_scale), 1 inside [lo, hi]
    window_scale: 0.1             #   (default hi - lo)
    normalize: true               # optional: min-max to [0, 1] by the oracle's bounds (or bounds: [lo, hi]);
    bounds: [lo, hi]              #   minimise objectives are flipped so 1 is best; not with window
    # ... or a weighted sum of leaves (each term takes the leaf keys above plus weight)
    sum:
      - {name: qed, weight: 1.0}
      - {name: sa_score, weight: 0.5, normalize: true}      # minimise -> 1 - normalised
      - {name: logp, window: [1.0, 3.0]}
    # ... or a reward vector for Pareto search ([B, K], K = number of terms)
    pareto:
      - {name: tf_motif, params: {motifs: [HNF4A]}}
      - {name: gc_content, window: [0.4, 0.6]}
    # hard constraints, checked first: an infeasible sequence gets the floor and is not scored
    constraints:
      - {name: mol_weight, max: 500}
      - {name: num_rings, min: 1}
      - {function: "my_pkg.filters:no_cysteine"}             # explicit Python predicate str -> bool
    cache: true                   # CachedOracle around the whole pipeline (default true)
    workers: 0                    # >0: score chunks in a process pool (PooledOracle) ...
    chunk_size: 16
    timeout_s: 30                 # ... with a per-chunk time-out (needs workers >= 1)

Families (one file each): ``ehrlich`` (pytorch-holo, optional extra), ``protein`` (Biopython ProtParam),
``dna`` (GC, homopolymers, JASPAR motifs), ``molecules`` (RDKit), ``text`` (VADER, Hugging Face classifiers,
sentence-transformers similarity), ``learned`` (trained CNN checkpoints, two shipped), ``custom``
(``module:function`` callables, explicit only).
"""

from seqtree.oracles.base import FLOOR, Direction, Oracle, OracleOutput, OracleShapeError
from seqtree.oracles.cache import CachedOracle
from seqtree.oracles.compose import (
    Clip,
    Constrained,
    Constraint,
    Negate,
    Normalize,
    ParetoVector,
    WeightedSum,
    Window,
    as_reward,
)
from seqtree.oracles.pool import PooledOracle
from seqtree.oracles.registry import (
    OracleInfo,
    ParamInfo,
    available_oracles,
    build_oracle,
    oracle_info,
    register_oracle,
)
from seqtree.oracles.spec import ConstraintSpec, OracleSpec, TermSpec, build_oracle_from_spec

__all__ = [
    "FLOOR",
    "CachedOracle",
    "Clip",
    "Constrained",
    "Constraint",
    "ConstraintSpec",
    "Direction",
    "Negate",
    "Normalize",
    "Oracle",
    "OracleInfo",
    "OracleOutput",
    "OracleShapeError",
    "OracleSpec",
    "ParamInfo",
    "ParetoVector",
    "PooledOracle",
    "TermSpec",
    "WeightedSum",
    "Window",
    "as_reward",
    "available_oracles",
    "build_oracle",
    "build_oracle_from_spec",
    "oracle_info",
    "register_oracle",
]
