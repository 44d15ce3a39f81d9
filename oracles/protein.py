"""Protein sequence properties computed by Biopython's ``Bio.SeqUtils.ProtParam.ProteinAnalysis``.

Each property is its own registered oracle so a recipe can use it as an objective or as a window / constraint:

- instability index (Guruprasad, Reddy & Pandit 1990, Protein Eng. 4:155); below 40 predicts a stable protein;
- GRAVY, grand average of hydropathy (Kyte & Doolittle 1982, J. Mol. Biol. 157:105);
- isoelectric point and net charge at a pH (Bjellqvist et al. 1993 pK values, as implemented by Biopython);
- aromaticity (Lobry & Gautier 1994: relative frequency of F, W, Y);
- helix / turn / sheet fractions (fractions of residues favouring each structure, Biopython's sets);
- molecular weight (average isotopes, Da).

Only the 20 standard amino acids in uppercase are accepted: empty sequences, lowercase letters and non-standard
letters (X, B, Z, U, O, '*', ...) get the floor with the reason naming the letter and position.
"""

from __future__ import annotations

import numpy as np
from Bio.SeqUtils.ProtParam import ProteinAnalysis

from seqtree.oracles.base import Direction, Oracle, check_alphabet
from seqtree.oracles.registry import register_oracle

PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


class _ProtParamOracle(Oracle):
    """Shared machinery: validate the alphabet, apply one ProteinAnalysis property per sequence."""

    domain = "protein"

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        super().__init__()

    def _check(self, sequence: str) -> str | None:
        return check_alphabet(sequence, PROTEIN_ALPHABET, "protein (20 standard amino acids)")

    def _property(self, analysis: ProteinAnalysis) -> float:
        raise NotImplementedError

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.array([self._property(ProteinAnalysis(s)) for s in sequences], dtype=np.float64)


@register_oracle("protein_instability", family="protein", domain="protein")
class ProteinInstability(_ProtParamOracle):
    """Instability index (Guruprasad 1990); below 40 predicts a stable protein."""

    name = "protein_instability"
    bounds = None

    def __init__(self, direction: Direction = "minimize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.instability_index())


@register_oracle("protein_gravy", family="protein", domain="protein")
class ProteinGravy(_ProtParamOracle):
    """GRAVY: mean Kyte-Doolittle hydropathy of the residues."""

    name = "protein_gravy"
    bounds = (-4.5, 4.5)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.gravy())


@register_oracle("protein_pi", family="protein", domain="protein")
class ProteinIsoelectricPoint(_ProtParamOracle):
    """Isoelectric point (pI) of the protein."""

    name = "protein_pi"
    bounds = (0.0, 14.0)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.isoelectric_point())


@register_oracle("protein_aromaticity", family="protein", domain="protein")
class ProteinAromaticity(_ProtParamOracle):
    """Aromaticity: relative frequency of F, W and Y."""

    name = "protein_aromaticity"
    bounds = (0.0, 1.0)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.aromaticity())


@register_oracle("protein_helix", family="protein", domain="protein")
class ProteinHelix(_ProtParamOracle):
    """Fraction of residues favouring helix (V, I, Y, F, W, L)."""

    name = "protein_helix"
    bounds = (0.0, 1.0)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.secondary_structure_fraction()[0])


@register_oracle("protein_turn", family="protein", domain="protein")
class ProteinTurn(_ProtParamOracle):
    """Fraction of residues favouring turns (N, P, G, S)."""

    name = "protein_turn"
    bounds = (0.0, 1.0)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.secondary_structure_fraction()[1])


@register_oracle("protein_sheet", family="protein", domain="protein")
class ProteinSheet(_ProtParamOracle):
    """Fraction of residues favouring sheet (E, M, A, L)."""

    name = "protein_sheet"
    bounds = (0.0, 1.0)

    def __init__(self, direction: Direction = "maximize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.secondary_structure_fraction()[2])


@register_oracle("protein_mw", family="protein", domain="protein")
class ProteinMolecularWeight(_ProtParamOracle):
    """Average molecular weight of the protein in Da."""

    name = "protein_mw"
    bounds = None

    def __init__(self, direction: Direction = "minimize") -> None:
        super().__init__(direction)

    def _property(self, a: ProteinAnalysis) -> float:
        return float(a.molecular_weight())


@register_oracle("protein_charge", family="protein", domain="protein")
class ProteinCharge(_ProtParamOracle):
    """Net charge of the protein at a given pH."""

    name = "protein_charge"

    def __init__(self, ph: float = 7.0, direction: Direction = "maximize") -> None:
        if not 0.0 <= ph <= 14.0:
            raise ValueError(f"ph must be in [0, 14], got {ph}")
        self.ph = ph
        super().__init__(direction)

    def _property(self, analysis: ProteinAnalysis) -> float:
        return float(analysis.charge_at_pH(self.ph))
