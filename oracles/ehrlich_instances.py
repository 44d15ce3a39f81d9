"""Ehrlich instances by their parameters: parse ``"v=32,L=64,c=2,k=4,seed=1"``, name them, build their oracle.

An Ehrlich function (Stanton et al. 2024, arXiv:2407.00236, sec. 3) is fixed by its number of states v, length L,
number of motifs c, motif length k, quantisation q and seed; :class:`EhrlichInstance` is that tuple with a stable
name (``ehrlich-v32-l64-c2-k4-s1``, or the benchmark names ``ehrlich-l32`` / ``ehrlich-l128`` for the two shipped
instances), so commands can take any instance and files can be named after it. :func:`parse_instance` reads a
benchmark name, a generated name, or ``key=value`` pairs, so every name it writes it can read back.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES, EhrlichOracle, default_alphabet

# Short and long spellings of each parameter in a ``key=value`` spec.
KEYS = {
    "v": "num_states", "num_states": "num_states", "states": "num_states",
    "l": "dim", "dim": "dim", "length": "dim",
    "c": "num_motifs", "num_motifs": "num_motifs", "motifs": "num_motifs",
    "k": "motif_length", "motif_length": "motif_length",
    "q": "quantization", "quantization": "quantization",
    "s": "seed", "seed": "seed",
}  # fmt: skip
NAME_PATTERN = re.compile(r"ehrlich-v(\d+)-l(\d+)-c(\d+)-k(\d+)(?:-q(\d+))?-s(\d+)")
SPEC_HELP = (
    "an Ehrlich instance: a benchmark name (ehrlich-l32, ehrlich-l128), a generated name (ehrlich-v32-l64-c2-k4-s1) "
    "or key=value pairs, e.g. v=32,L=64,c=2,k=4,seed=1 (v states, L length, c motifs, k motif length, "
    "q quantisation (default k), seed; defaults v=20, L=32, c=2, k=4, seed=0)"
)


@dataclass(frozen=True)
class EhrlichInstance:
    """The parameters of one Ehrlich function (holo's ``Ehrlich``); ``quantization`` None means q = k."""

    num_states: int = 20
    dim: int = 32
    num_motifs: int = 2
    motif_length: int = 4
    quantization: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for field, value in asdict(self).items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"Ehrlich instance: {field} must be an integer, got {value!r}")
        if self.num_states < 2 or self.dim < 1 or self.num_motifs < 1 or self.motif_length < 2 or self.seed < 0:
            raise ValueError(f"Ehrlich instance: need v >= 2, L >= 1, c >= 1, k >= 2, seed >= 0; got {self}")
        if self.num_motifs * self.motif_length > self.dim:
            raise ValueError(
                f"Ehrlich instance: c * k = {self.num_motifs * self.motif_length} motif positions do not fit "
                f"in length L = {self.dim}"
            )
        if self.quantization is not None and not 1 <= self.quantization <= self.motif_length:
            raise ValueError(f"Ehrlich instance: q must lie in [1, k={self.motif_length}], got {self.quantization}")
        default_alphabet(self.num_states)  # raises if there are more states than default letters

    @property
    def params(self) -> dict[str, int]:
        """Keyword arguments of :class:`~seqtree.oracles.ehrlich.EhrlichOracle` (and a recipe's ``oracle.params``)."""
        params = asdict(self)
        if params["quantization"] is None:
            del params["quantization"]
        return params

    @property
    def name(self) -> str:
        for name, params in BENCHMARK_INSTANCES.items():
            if params == self.params:
                return name
        q = f"-q{self.quantization}" if self.quantization is not None else ""
        return f"ehrlich-v{self.num_states}-l{self.dim}-c{self.num_motifs}-k{self.motif_length}{q}-s{self.seed}"

    @property
    def alphabet(self) -> str:
        return default_alphabet(self.num_states)

    @property
    def is_benchmark(self) -> bool:
        return self.name in BENCHMARK_INSTANCES

    def oracle(self) -> EhrlichOracle:
        return EhrlichOracle(**self.params)


def parse_instance(spec: str) -> EhrlichInstance:
    """The instance a benchmark name, a generated name or a ``key=value,...`` spec names; ValueError otherwise."""
    text = spec.strip()
    if text in BENCHMARK_INSTANCES:
        return EhrlichInstance(**BENCHMARK_INSTANCES[text])
    match = NAME_PATTERN.fullmatch(text)
    if match:
        v, length, c, k, q, seed = match.groups()
        return EhrlichInstance(int(v), int(length), int(c), int(k), int(q) if q else None, int(seed))
    if "=" not in text:
        raise ValueError(f"unknown Ehrlich instance {spec!r}; expected {SPEC_HELP}")
    values: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in re.split(r"[,\s]+", text))):
        key, _, raw = part.partition("=")
        field = KEYS.get(key.strip().lower())
        if field is None:
            raise ValueError(f"Ehrlich instance {spec!r}: unknown key {key!r}; use v, L, c, k, q or seed")
        if field in values:
            raise ValueError(f"Ehrlich instance {spec!r}: {key!r} given twice")
        try:
            values[field] = int(raw)
        except ValueError:
            raise ValueError(f"Ehrlich instance {spec!r}: {key}={raw!r} is not an integer") from None
    return EhrlichInstance(**values)
