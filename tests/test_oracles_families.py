"""Known values of each oracle family against the field's own libraries."""

from __future__ import annotations

import random

import pytest
import torch
from Bio.Seq import Seq
from Bio.SeqUtils.ProtParam import ProteinAnalysis

from seqtree.oracles import FLOOR, build_oracle
from seqtree.oracles.ehrlich import holo_available
from seqtree.oracles.testing import build_tiny_text_classifier

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"


# ---- molecules -----------------------------------------------------------------------------------------------
def test_aspirin_known_values() -> None:
    assert build_oracle("qed")([ASPIRIN]).item() == pytest.approx(0.55, abs=0.01)
    assert build_oracle("sa_score")([ASPIRIN]).item() == pytest.approx(1.58, abs=0.05)
    assert build_oracle("mol_weight")([ASPIRIN]).item() == pytest.approx(180.16, abs=0.01)
    assert build_oracle("logp")([ASPIRIN]).item() == pytest.approx(1.31, abs=0.01)
    assert build_oracle("num_rings")([ASPIRIN]).item() == 1.0
    assert build_oracle("atom_count")([ASPIRIN]).item() == 13.0
    assert build_oracle("atom_count", element="O")([ASPIRIN]).item() == 4.0
    assert build_oracle("max_ring_size")([ASPIRIN, "CCO"]).tolist() == [6.0, 0.0]


def test_invalid_smiles_get_floor_with_reason() -> None:
    out = build_oracle("qed").score(["", "C1CC(", "[Xx]", ASPIRIN])
    assert out.values[:3].tolist() == [FLOOR] * 3
    assert out.reasons[:3] == ["empty sequence", "invalid SMILES", "invalid SMILES"]
    assert build_oracle("mol_validity")(["C1CC(", ASPIRIN, ""]).tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="unknown element"):
        build_oracle("atom_count", element="Qq")


# ---- protein ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("protein_instability", lambda a: a.instability_index()),
        ("protein_gravy", lambda a: a.gravy()),
        ("protein_pi", lambda a: a.isoelectric_point()),
        ("protein_aromaticity", lambda a: a.aromaticity()),
        ("protein_helix", lambda a: a.secondary_structure_fraction()[0]),
        ("protein_turn", lambda a: a.secondary_structure_fraction()[1]),
        ("protein_sheet", lambda a: a.secondary_structure_fraction()[2]),
        ("protein_mw", lambda a: a.molecular_weight()),
        ("protein_charge", lambda a: a.charge_at_pH(7.0)),
    ],
)
def test_protparam_equals_biopython(name: str, expected) -> None:
    got = build_oracle(name)([UBIQUITIN]).item()
    assert got == expected(ProteinAnalysis(UBIQUITIN))


def test_protein_charge_ph_and_bad_letters() -> None:
    o = build_oracle("protein_charge", ph=4.0)
    assert o([UBIQUITIN]).item() == ProteinAnalysis(UBIQUITIN).charge_at_pH(4.0)
    out = o.score(["", "mqif", "MQXF", "MQ*F"])
    assert not out.valid.any()
    assert out.reasons[0] == "empty sequence" and out.reasons[1].startswith("lowercase letter 'm'")
    assert "'X' at position 2" in out.reasons[2] and "'*'" in out.reasons[3]


# ---- DNA ---------------------------------------------------------------------------------------------------------
def test_gc_and_homopolymers() -> None:
    assert build_oracle("gc_content")(["GGCCAATT", "GGGG"]).tolist() == [0.5, 1.0]
    hp = build_oracle("homopolymer_penalty", max_run=3)
    assert hp(["AAAAACGGGGT", "ACGT"]).tolist() == [3.0, 0.0]
    assert build_oracle("gc_content").score(["ACGN"]).reasons == ["non-standard letter 'N' at position 3 for "
                                                                   "DNA (A, C, G, T)"]


def test_jaspar_consensus_beats_scrambled_reverse_complement() -> None:
    tf = build_oracle("tf_motif", motifs=["FOXA2"], score="log_odds")
    consensus = "TGTAAACA"
    rc = list(str(Seq(consensus).reverse_complement()))
    random.Random(0).shuffle(rc)
    flank = "CGCG"
    cons_score, scrambled_score = tf([flank + consensus + flank, flank + "".join(rc) + flank]).tolist()
    assert cons_score > scrambled_score
    assert cons_score == pytest.approx(tf.promote[0].max, rel=1e-5)  # the consensus is the best hit
    rel = build_oracle("tf_motif", motifs=["MA0047.4"])
    assert rel([flank + consensus + flank]).item() == pytest.approx(1.0)


def test_motif_found_on_reverse_strand_and_avoid() -> None:
    consensus = "TGTAAACA"
    rc = str(Seq(consensus).reverse_complement())
    tf = build_oracle("tf_motif", motifs=["FOXA2"])
    assert tf(["CG" + rc + "CG"]).item() == pytest.approx(tf(["CG" + consensus + "CG"]).item())
    both = build_oracle("tf_motif", motifs=["FOXA2"], avoid=["CTCF"])
    assert both(["CG" + consensus + "CG"]).item() < tf(["CG" + consensus + "CG"]).item()
    sites = build_oracle("tf_motif", motifs=["FOXA2"], score="sites", site_threshold=0.95)
    assert sites([consensus + "GG" + consensus, "CCCCCCCCCC"]).tolist() == [2.0, 0.0]


# ---- Ehrlich (pytorch-holo, optional) ---------------------------------------------------------------------------
holo = pytest.mark.skipif(not holo_available(), reason="pytorch-holo (extra 'holo') not installed")


@holo
def test_ehrlich_optimum_and_dmp_samples() -> None:
    o = build_oracle("ehrlich", num_states=8, dim=16, num_motifs=2, motif_length=4, quantization=4, seed=1)
    best = o.optimal_solution()
    assert o([best]).item() == 1.0 and o.optimum == 1.0
    samples = o.sample_feasible(16, generator=torch.Generator().manual_seed(0))
    out = o.score(samples)
    assert out.valid.all() and (out.values < 1.0).all() and (out.values >= 0.0).all()
    assert samples == o.sample_feasible(16, generator=torch.Generator().manual_seed(0))


@holo
def test_ehrlich_infeasible_and_bad_inputs() -> None:
    o = build_oracle("ehrlich", num_states=8, dim=16, num_motifs=2, motif_length=4, seed=1)
    banned = [(i, j) for i in range(8) for j in range(8) if o.fn.transition_matrix[i, j] == 0]
    i, j = banned[0]
    infeasible = (o.alphabet[i] + o.alphabet[j]) * 8
    out = o.score([infeasible, "A" * 15, "Z" * 16])
    assert out.values.tolist() == [FLOOR] * 3
    assert out.reasons[0] == "infeasible (-inf)" and "length 15" in out.reasons[1]
    with pytest.raises(ValueError):
        build_oracle("ehrlich", num_states=4, dim=8, num_motifs=4, motif_length=4)


def test_ehrlich_missing_extra_message() -> None:
    if holo_available():
        pytest.skip("holo installed")
    with pytest.raises(ImportError, match=r"seqtree\[holo\]"):
        build_oracle("ehrlich")


# ---- text ---------------------------------------------------------------------------------------------------------
def test_vader_sentiment_order() -> None:
    v = build_oracle("vader_sentiment")
    good, bad, neutral = v(["I love this, it is wonderful!", "I hate this, awful.", "A table."]).tolist()
    assert good > neutral > bad and neutral == 0.0


def test_hf_classifier_labels_and_outputs(tmp_path) -> None:
    path = str(build_tiny_text_classifier(tmp_path / "clf"))
    texts = ["a nice day", "bad news", "ok"]
    pos = build_oracle("hf_classifier", model=path, label="POSITIVE", output="prob")(texts)
    neg = build_oracle("hf_classifier", model=path, label=0, output="prob")(texts)
    assert torch.allclose(pos + neg, torch.ones(3, dtype=torch.float64))
    logp = build_oracle("hf_classifier", model=path, label="POSITIVE")(texts)
    assert torch.allclose(logp.exp(), pos) and (logp <= 0).all()
    with pytest.raises(ValueError, match="NEUTRAL"):
        build_oracle("hf_classifier", model=path, label="NEUTRAL")(texts)
