"""A molecule model's samples measured as MOSES measures generative models (Polykovskiy et al. 2020, Front.
Pharmacol. 11:565644): validity, uniqueness, novelty against the training set, and the distributions of QED, SA
score and Crippen logP beside the training set's, with the 1-Wasserstein distance between them (MOSES's property
metrics).

Samples are the model's design strings; each is turned into the SMILES an oracle would score by the model's
tokenizer (:meth:`Tokenizer.to_oracle`: SELFIES decode to canonical SMILES, SMILES stay as they are). Definitions:

- validity: the fraction of samples RDKit parses into a non-empty molecule;
- uniqueness: distinct canonical SMILES among the valid samples, as a fraction of the valid samples;
- novelty: distinct valid samples absent from the training set (compared as canonical SMILES), as a fraction of the
  distinct valid samples;
- properties: over the valid samples; the training set's over a seeded sample of its molecules
  (:data:`REFERENCE_SIZE`; the whole set when smaller).

The model card's sample report (:func:`seqtree.training.run.write_sample_report`) calls :func:`evaluate` for
molecule models; ``python -m seqtree.training.molecules CHECKPOINT --train FILE --num 2048`` re-draws a shipped
card's report without training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REFERENCE_SIZE = 4096  # training molecules whose properties are the reference distribution
QUANTILES = {"p05": 5, "p25": 25, "median": 50, "p75": 75, "p95": 95}
PROPERTY_LABELS = {"qed": "QED", "sa": "SA score", "logp": "logP"}


def _properties() -> dict[str, Callable]:
    from rdkit.Chem import QED, Crippen

    from seqtree.oracles.molecules import sa_score

    return {"qed": QED.qed, "sa": sa_score, "logp": Crippen.MolLogP}


def canonical_molecules(smiles: list[str]) -> list[tuple[str, object] | None]:
    """(canonical SMILES, molecule) of each string RDKit parses into a non-empty molecule, else None."""
    from rdkit import Chem

    from seqtree.oracles.molecules import parse_smiles

    out = []
    for s in smiles:
        mol, _ = parse_smiles(s)
        out.append(None if mol is None else (Chem.MolToSmiles(mol), mol))
    return out


def property_values(mols: list) -> dict[str, np.ndarray]:
    """QED, SA score and logP of each molecule: name -> Float64[N]."""
    return {name: np.array([float(f(m)) for m in mols], dtype=np.float64) for name, f in _properties().items()}


def distribution(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation and quantiles of ``values`` (NaN for an empty set)."""
    if not len(values):
        return {"mean": float("nan"), "sd": float("nan"), **{k: float("nan") for k in QUANTILES}}
    quantiles = np.percentile(values, list(QUANTILES.values()))
    return {
        "mean": round(float(values.mean()), 4),
        "sd": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
        **{k: round(float(q), 4) for k, q in zip(QUANTILES, quantiles)},
    }


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between two empirical distributions on the line: the integral of |F_a - F_b|."""
    if not len(a) or not len(b):
        return float("nan")
    a, b = np.sort(a), np.sort(b)
    points = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, points[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, points[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(points)))


@dataclass(frozen=True)
class TrainingReference:
    """The training set as the samples are compared with it: its canonical SMILES and a sample's properties."""

    canonical: frozenset[str]
    properties: dict[str, np.ndarray]  # name -> Float64[min(REFERENCE_SIZE, N)]
    size: int  # training molecules
    property_sample: int  # of them, the ones whose properties are the reference


def training_reference(designs: list[str], to_oracle: Callable[[str], str], *, seed: int = 0) -> TrainingReference:
    """The reference of a training file's design strings (SMILES or SELFIES, turned into SMILES by ``to_oracle``)."""
    parsed = [p for p in canonical_molecules([to_oracle(s) for s in designs]) if p is not None]
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(parsed), size=min(REFERENCE_SIZE, len(parsed)), replace=False).tolist())
    properties = property_values([parsed[i][1] for i in picked])
    return TrainingReference(frozenset(c for c, _ in parsed), properties, len(designs), len(picked))


@dataclass(frozen=True)
class MoleculeSetReport:
    """What :func:`evaluate` measures on one set of samples."""

    samples: int
    valid: int
    unique: int  # distinct canonical SMILES among the valid samples
    novel: int  # of the distinct ones, those not in the training set
    properties: dict[str, dict[str, float]]  # name -> distribution of the valid samples
    reference: dict[str, dict[str, float]]  # name -> distribution of the training sample
    wasserstein: dict[str, float]  # name -> W1(samples, training sample)

    @property
    def validity(self) -> float:
        return self.valid / self.samples if self.samples else float("nan")

    @property
    def uniqueness(self) -> float:
        return self.unique / self.valid if self.valid else float("nan")

    @property
    def novelty(self) -> float:
        return self.novel / self.unique if self.unique else float("nan")

    def to_dict(self) -> dict:
        return {
            "rdkit_valid_fraction": self.validity,
            "unique_valid_fraction": self.unique / self.samples if self.samples else float("nan"),
            "validity": round(self.validity, 4),
            "uniqueness": round(self.uniqueness, 4),
            "novelty": round(self.novelty, 4),
            "properties": self.properties,
            "training_properties": self.reference,
            "wasserstein": {k: round(v, 4) for k, v in self.wasserstein.items()},
        }

    def markdown(self) -> list[str]:
        """Lines for a model card: the three fractions, then one row per property, samples beside training."""
        lines = [
            f"Validity **{self.validity:.1%}** (RDKit parses the SMILES; {self.valid} of {self.samples}), "
            f"uniqueness **{self.uniqueness:.1%}** of the valid, novelty **{self.novelty:.1%}** of the unique valid "
            "against the training set.",
            "",
            "| property | samples: mean (sd) | p05 / p25 / median / p75 / p95 | training: mean (sd) | "
            "p05 / p25 / median / p75 / p95 | W1 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, label in PROPERTY_LABELS.items():
            s, r = self.properties[name], self.reference[name]
            lines.append(
                f"| {label} | {s['mean']:.3f} ({s['sd']:.3f}) | {_quantiles(s)} | {r['mean']:.3f} ({r['sd']:.3f}) | "
                f"{_quantiles(r)} | {self.wasserstein[name]:.3f} |"
            )
        return lines


def _quantiles(stats: dict[str, float]) -> str:
    return " / ".join(f"{stats[k]:.2f}" for k in QUANTILES)


def evaluate(smiles: list[str], reference: TrainingReference) -> MoleculeSetReport:
    """Validity, uniqueness, novelty and property distributions of sampled molecules (SMILES, one per sample)."""
    parsed = [p for p in canonical_molecules(smiles) if p is not None]
    distinct = {c for c, _ in parsed}
    values = property_values([m for _, m in parsed])
    return MoleculeSetReport(
        samples=len(smiles),
        valid=len(parsed),
        unique=len(distinct),
        novel=len(distinct - reference.canonical),
        properties={k: distribution(v) for k, v in values.items()},
        reference={k: distribution(v) for k, v in reference.properties.items()},
        wasserstein={k: wasserstein_1d(values[k], reference.properties[k]) for k in values},
    )


def main(argv: list[str] | None = None) -> int:
    """Re-draw a molecule checkpoint's sample report (:mod:`seqtree.training.report`, 2,048 samples by default)."""
    from seqtree.training.report import main as report_main

    return report_main(argv, default_num=2048, prog="python -m seqtree.training.molecules")


if __name__ == "__main__":
    raise SystemExit(main())
