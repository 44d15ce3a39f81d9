"""DNA oracles: GC content, homopolymer runs and transcription-factor motif scores.

Motif scores use position weight matrices from JASPAR (Rauluseviciute et al. 2024, Nucleic Acids Res.
52:D174), read offline from the SQLite database shipped by the ``pyjaspar`` package, and Biopython's
``Bio.motifs`` position-specific scoring matrices (log2-odds against a uniform background) scanned on both
strands. Only uppercase A, C, G, T is accepted; anything else gets the floor with a reason.
"""

from __future__ import annotations

import itertools
import warnings
from functools import lru_cache
from typing import Literal

import numpy as np

from seqtree.oracles.base import Oracle, check_alphabet
from seqtree.oracles.registry import register_oracle

DNA_ALPHABET = "ACGT"
DEFAULT_JASPAR_RELEASE = "JASPAR2024"


class _DnaOracle(Oracle):
    domain = "dna"

    def _check(self, sequence: str) -> str | None:
        return check_alphabet(sequence, DNA_ALPHABET, "DNA (A, C, G, T)")


def gc_content(sequence: str) -> float:
    """Fraction of G and C letters."""
    return (sequence.count("G") + sequence.count("C")) / len(sequence)


def homopolymer_excess(sequence: str, max_run: int) -> int:
    """Sum over runs of one letter of how far each run exceeds ``max_run``."""
    return sum(max(0, len(list(g)) - max_run) for _, g in itertools.groupby(sequence))


@register_oracle("gc_content", family="dna", domain="dna")
class GCContent(_DnaOracle):
    """GC content: fraction of G and C (use with a window, e.g. [0.4, 0.6])."""

    name = "gc_content"
    bounds = (0.0, 1.0)

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.array([gc_content(s) for s in sequences], dtype=np.float64)


@register_oracle("homopolymer_penalty", family="dna", domain="dna")
class HomopolymerPenalty(_DnaOracle):
    """Homopolymer penalty: total length by which runs of one base exceed max_run (minimise; optimum 0)."""

    name = "homopolymer_penalty"
    direction = "minimize"
    optimum = 0.0

    def __init__(self, max_run: int = 4) -> None:
        if max_run < 1:
            raise ValueError(f"max_run must be >= 1, got {max_run}")
        self.max_run = max_run
        super().__init__()

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.array([homopolymer_excess(s, self.max_run) for s in sequences], dtype=np.float64)


@lru_cache(maxsize=8)
def _jaspar(release: str):
    try:
        from pyjaspar import jaspardb
    except ImportError as err:  # pragma: no cover - pyjaspar is a core dependency
        raise ImportError("the tf_motif oracle needs the 'pyjaspar' package (pip install pyjaspar)") from err
    return jaspardb(release=release)


def load_jaspar_motif(key: str, release: str = DEFAULT_JASPAR_RELEASE):
    """A Bio.motifs JASPAR motif by matrix ID (``"MA0047.4"``) or TF name (first match JASPAR lists)."""
    db = _jaspar(release)
    if key.startswith(("MA", "UN", "PB", "PF", "PH", "PL", "CN", "POL")) and "." in key:
        motif = db.fetch_motif_by_id(key)
    else:
        with warnings.catch_warnings():  # pyjaspar warns on zero matches; we raise a clearer error below
            warnings.simplefilter("ignore")
            found = db.fetch_motifs_by_name(key)
        motif = found[0] if found else None
    if motif is None:
        raise ValueError(f"JASPAR motif {key!r} not found in {release}")
    return motif


class _Pssm:
    """A log-odds matrix for both strands with its score range."""

    def __init__(self, motif, pseudocounts: float) -> None:
        pssm = motif.counts.normalize(pseudocounts=pseudocounts).log_odds()
        self.key = f"{motif.matrix_id} {motif.name}"
        self.length = motif.length
        self.fwd, self.rev = pssm, pssm.reverse_complement()
        self.min, self.max = float(pssm.min), float(pssm.max)

    def scores(self, sequence: str) -> np.ndarray:
        """Log-odds at every position on both strands, [2 * (L - w + 1)]; empty when L < w."""
        if len(sequence) < self.length:
            return np.zeros(0)
        return np.concatenate([self.fwd.calculate(sequence), self.rev.calculate(sequence)]).astype(np.float64)


@register_oracle("tf_motif", family="dna", domain="dna")
class TFMotifScore(_DnaOracle):
    """JASPAR motif scan on both strands: reward promoted motifs, penalise avoided ones."""

    name = "tf_motif"

    def __init__(
        self,
        motifs: tuple[str, ...] = ("HNF4A", "FOXA2"),
        avoid: tuple[str, ...] = (),
        score: Literal["relative", "log_odds", "sites"] = "relative",
        site_threshold: float = 0.8,
        release: str = DEFAULT_JASPAR_RELEASE,
        pseudocounts: float = 0.5,
    ) -> None:
        """``score``: ``relative`` = best hit scaled to [0, 1] by the matrix's score range; ``log_odds`` = best
        hit in bits; ``sites`` = number of hits (both strands) whose relative score >= ``site_threshold``.
        The value is the sum over ``motifs`` minus the sum over ``avoid``."""
        if not motifs and not avoid:
            raise ValueError("give at least one motif to promote or avoid")
        if not 0.0 <= site_threshold <= 1.0:
            raise ValueError("site_threshold must lie in [0, 1]")
        self.score_mode, self.site_threshold = score, site_threshold
        self.release = release
        self.promote = [_Pssm(load_jaspar_motif(k, release), pseudocounts) for k in motifs]
        self.avoid = [_Pssm(load_jaspar_motif(k, release), pseudocounts) for k in avoid]
        self.objective_names = ["tf_motif"]
        if score == "relative":
            self.bounds = (-float(len(self.avoid)), float(len(self.promote)))
        super().__init__()

    def motif_score(self, pssm: _Pssm, sequence: str) -> float:
        """One motif's score on one sequence, per ``score``."""
        s = pssm.scores(sequence)
        if self.score_mode == "log_odds":
            return float(s.max()) if s.size else pssm.min
        rel = (s - pssm.min) / (pssm.max - pssm.min)
        if self.score_mode == "sites":
            return float((rel >= self.site_threshold).sum())
        return float(rel.max()) if rel.size else 0.0

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        out = np.empty(len(sequences), dtype=np.float64)
        for i, seq in enumerate(sequences):
            plus = sum(self.motif_score(p, seq) for p in self.promote)
            minus = sum(self.motif_score(p, seq) for p in self.avoid)
            out[i] = plus - minus
        return out
