"""Small-molecule oracles on SMILES strings, computed with RDKit.

- QED, quantitative estimate of drug-likeness (Bickerton et al. 2012, Nat. Chem. 4:90), ``rdkit.Chem.QED``;
- Crippen logP (Wildman & Crippen 1999, J. Chem. Inf. Comput. Sci. 39:868), ``rdkit.Chem.Crippen``;
- SA score, synthetic accessibility from 1 (easy) to 10 (hard) (Ertl & Schuffenhauer 2009, J. Cheminform. 1:8),
  RDKit Contrib ``SA_Score/sascorer.py``;
- molecular weight, ring and atom counts (``rdkit.Chem.Descriptors``, ``rdMolDescriptors``) for constraints;
- substructure matches of a SMARTS pattern (a fixed fragment a design must keep, as a constraint);
- validity (1 if RDKit parses and sanitises the SMILES into a non-empty molecule, else 0).

Invalid SMILES and empty molecules get the floor (reason ``"invalid SMILES"`` / ``"empty molecule"``) in every
oracle except ``mol_validity``, whose value is the validity itself. RDKit's parser warnings are silenced.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from typing import Any

import numpy as np
from rdkit import Chem, RDConfig, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

from seqtree.oracles.base import Oracle
from seqtree.oracles.registry import register_oracle

RDLogger.DisableLog("rdApp.*")


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """The sanitised molecule, or None with the reason."""
    if not smiles:
        return None, "empty sequence"
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None, "invalid SMILES"
    if mol.GetNumAtoms() == 0:
        return None, "empty molecule"
    return mol, None


@lru_cache(maxsize=1)
def _sascorer() -> Any:
    try:
        return importlib.import_module("rdkit.Contrib.SA_Score.sascorer")
    except ImportError:  # older wheels: Contrib is not a package, import from its folder
        import sys

        sys.path.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
        return importlib.import_module("sascorer")


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility score in [1, 10] (lower is easier)."""
    return float(_sascorer().calculateScore(mol))


class _MolOracle(Oracle):
    """Parse each SMILES once (``_check`` keeps the molecule for ``_evaluate``) and apply ``_value`` to it."""

    domain = "smiles"

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[str, Chem.Mol] = {}

    def _check(self, sequence: str) -> str | None:
        mol, reason = parse_smiles(sequence)
        if mol is not None:
            self._parsed[sequence] = mol
        return reason

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        out = np.empty(len(sequences), dtype=np.float64)
        for i, s in enumerate(sequences):
            mol = self._parsed.get(s)
            if mol is None:
                mol, reason = parse_smiles(s)
                if mol is None:
                    raise ValueError(reason)
            out[i] = self._value(mol)
        self._parsed.clear()
        return out

    def _value(self, mol: Chem.Mol) -> float:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_parsed": {}}


@register_oracle("mol_validity", family="molecules", domain="smiles")
class MolValidity(_MolOracle):
    """Validity: 1.0 if RDKit parses and sanitises a non-empty molecule, else 0.0 (never the floor)."""

    name = "mol_validity"
    optimum = 1.0
    bounds = (0.0, 1.0)

    def _check(self, sequence: str) -> str | None:
        return None

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.array([float(parse_smiles(s)[0] is not None) for s in sequences], dtype=np.float64)


@register_oracle("qed", family="molecules", domain="smiles")
class QEDScore(_MolOracle):
    """QED drug-likeness in [0, 1] (Bickerton 2012)."""

    name = "qed"
    bounds = (0.0, 1.0)

    def _value(self, mol: Chem.Mol) -> float:
        return float(QED.qed(mol))


@register_oracle("logp", family="molecules", domain="smiles")
class LogP(_MolOracle):
    """Crippen logP, octanol-water partition coefficient (Wildman & Crippen 1999)."""

    name = "logp"

    def _value(self, mol: Chem.Mol) -> float:
        return float(Crippen.MolLogP(mol))


@register_oracle("sa_score", family="molecules", domain="smiles")
class SAScore(_MolOracle):
    """Synthetic accessibility, 1 (easy) to 10 (hard) (Ertl & Schuffenhauer 2009); minimise."""

    name = "sa_score"
    direction = "minimize"
    bounds = (1.0, 10.0)

    def _value(self, mol: Chem.Mol) -> float:
        return sa_score(mol)


@register_oracle("mol_weight", family="molecules", domain="smiles")
class MolWeight(_MolOracle):
    """Average molecular weight in Da (use as a constraint, e.g. max 500)."""

    name = "mol_weight"
    direction = "minimize"

    def _value(self, mol: Chem.Mol) -> float:
        return float(Descriptors.MolWt(mol))


@register_oracle("num_rings", family="molecules", domain="smiles")
class NumRings(_MolOracle):
    """Number of rings (SSSR); aromatic only when aromatic=True."""

    name = "num_rings"

    def __init__(self, aromatic: bool = False) -> None:
        self.aromatic = aromatic
        super().__init__()

    def _value(self, mol: Chem.Mol) -> float:
        if self.aromatic:
            return float(rdMolDescriptors.CalcNumAromaticRings(mol))
        return float(rdMolDescriptors.CalcNumRings(mol))


@register_oracle("max_ring_size", family="molecules", domain="smiles")
class MaxRingSize(_MolOracle):
    """Size of the largest ring (0 without rings); constrain to avoid macrocycles and 3-rings."""

    name = "max_ring_size"

    def _value(self, mol: Chem.Mol) -> float:
        rings = mol.GetRingInfo().AtomRings()
        return float(max((len(r) for r in rings), default=0))


@register_oracle("atom_count", family="molecules", domain="smiles")
class AtomCount(_MolOracle):
    """Number of heavy atoms, or of one element when element is given (e.g. 'N', 'Cl')."""

    name = "atom_count"

    def __init__(self, element: str | None = None) -> None:
        if element is not None:
            try:
                Chem.GetPeriodicTable().GetAtomicNumber(element)
            except RuntimeError as err:
                raise ValueError(f"unknown element {element!r}") from err
        self.element = element
        super().__init__()

    def _value(self, mol: Chem.Mol) -> float:
        if self.element is None:
            return float(mol.GetNumHeavyAtoms())
        return float(sum(a.GetSymbol() == self.element for a in mol.GetAtoms()))


@register_oracle("substructure", family="molecules", domain="smiles")
class Substructure(_MolOracle):
    """Number of matches of a SMARTS pattern (a SMILES fragment is a SMARTS too); as a constraint with min 1, designs
    keep the fragment (e.g. the fixed scaffold of a SELFIES prompt)."""

    name = "substructure"

    def __init__(self, smarts: str) -> None:
        pattern = Chem.MolFromSmarts(smarts) if smarts else None
        if pattern is None:
            raise ValueError(f"smarts {smarts!r} is not a valid SMARTS pattern")
        self.smarts = smarts
        self._pattern = pattern
        super().__init__()

    def _value(self, mol: Chem.Mol) -> float:
        return float(len(mol.GetSubstructMatches(self._pattern)))

    def __getstate__(self) -> dict[str, Any]:  # RDKit query molecules are rebuilt from the SMARTS (process pools)
        return {**super().__getstate__(), "_pattern": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pattern = Chem.MolFromSmarts(self.smarts)
