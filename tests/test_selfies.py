"""SELFIES molecules (issue 16): the tokenizer round trips MOSES molecules, its data reads from gzip, designs are
scored and written as canonical SMILES, a SELFIES prompt keeps its fragment, and the ring-count and substructure oracles
the molecule recipes use."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
import selfies as sf
from inprocess import seqtree_inprocess
from rdkit import Chem

from seqtree.models.tokenizers import (
    SelfiesTokenizer,
    TokenizationError,
    load_tokenizer,
    tokenizer_for_domain,
    tokenizer_from_dict,
)
from seqtree.oracles import FLOOR, build_oracle, build_oracle_from_spec
from seqtree.training.data import read_sequences

ROOT = Path(__file__).resolve().parents[1]
MOSES_HELD_OUT = 300  # molecules of data/smiles/val.smi (MOSES molecules no model here was trained on)


@pytest.fixture(scope="module")
def tokenizer() -> SelfiesTokenizer:
    """The tokenizer ``seqtree train`` fits on data/selfies/train.txt.gz."""
    return tokenizer_for_domain("selfies", read_sequences(ROOT / "data/selfies/train.txt.gz"))


def test_tokenizer_round_trips_moses_molecules_to_their_canonical_smiles(tokenizer):
    smiles = (ROOT / "data/smiles/val.smi").read_text().split()[:MOSES_HELD_OUT]
    shipped = read_sequences(ROOT / "data/selfies/val.txt.gz")[:MOSES_HELD_OUT]
    for canonical, selfies in zip(smiles, shipped):
        assert sf.encoder(canonical) == selfies  # data/selfies is data/smiles, written as SELFIES
        ids = tokenizer.encode(selfies)
        assert len(ids) == sf.len_selfies(selfies) and min(ids) >= 2  # one token per symbol, no special id
        assert tokenizer.decode(ids) == selfies
        assert tokenizer.to_oracle(selfies) == canonical


def test_tokenizer_is_saved_with_the_checkpoint_and_loads_back(tokenizer, tmp_path):
    assert tokenizer.kind == "selfies" and tokenizer.oracle_domain == "smiles"
    assert tokenizer.vocab == sorted(tokenizer.vocab) and "[C]" in tokenizer.vocab and "[Ring1]" in tokenizer.vocab
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, SelfiesTokenizer) and loaded.vocab == tokenizer.vocab
    assert load_tokenizer(ROOT / "models/checkpoints/selfies-tiny").vocab == tokenizer.vocab
    assert tokenizer_from_dict(tokenizer.to_dict()).encode("[C][=O]") == tokenizer.encode("[C][=O]")


def test_tokenizer_errors_and_degenerate_designs(tokenizer):
    with pytest.raises(TokenizationError, match=r"'CC' at position 3 is not a token"):
        tokenizer.encode("[C]CC")
    with pytest.raises(TokenizationError, match=r"token '\[Xe\]' at position 3 is not in the vocabulary"):
        tokenizer.encode("[C][Xe]")
    # what the model can write always decodes; a design with no atom is "" (the oracle's "empty sequence" floor)
    assert tokenizer.to_oracle("[Ring1][Branch1][C][C][O]") == "CCO"
    assert tokenizer.to_oracle("[Ring1][=Branch1]") == ""
    assert tokenizer.to_oracle("[C][Qq]") == ""  # a symbol outside the SELFIES grammar
    assert tokenizer.to_oracle("[C][=C][C][=C][C][=C][Ring1][=Branch1]") == "c1ccccc1"  # canonical, aromatic


def test_training_data_reads_from_gzip(tmp_path):
    path = tmp_path / "mols.txt.gz"
    with gzip.open(path, "wt") as stream:
        stream.write("[C][O]\n\n[C][C]\n")
    assert read_sequences(path) == ["[C][O]", "[C][C]"]
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(b"x\n"))
    with pytest.raises(ValueError, match=r"unknown sequence file type '.csv'"):
        read_sequences(tmp_path / "x.csv.gz")


def test_designs_are_scored_and_written_as_canonical_smiles(tmp_path):
    """A design run of recipes/molecules.yaml with a tiny budget: the oracle saw SMILES, designs.csv and
    designs.jsonl show each SELFIES design beside its canonical SMILES, and every design is a molecule."""
    out = tmp_path / "run"
    budget = ["--set", "budget.nfe=240", "--set", "design.num_designs=8", "--set", "model.num_steps=8"]
    result = seqtree_inprocess("design", "recipes/molecules.yaml", "--out", str(out), *budget)
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv")
    assert list(designs.columns[:4]) == ["rank", "sequence", "smiles", "reward"]
    assert not (out / "designs.fasta").exists()
    jsonl = [json.loads(line) for line in (out / "designs.jsonl").read_text().splitlines()]
    assert [row["smiles"] for row in jsonl] == list(designs["smiles"])
    assert designs["smiles"].is_unique  # designs are distinct molecules, not distinct SELFIES
    qed = build_oracle("qed")
    for selfies, smiles, reward in zip(designs["sequence"], designs["smiles"], designs["reward"]):
        mol = Chem.MolFromSmiles(smiles)
        assert mol is not None and mol.GetNumAtoms() > 0, f"{selfies} -> {smiles!r}"
        assert Chem.MolToSmiles(Chem.MolFromSmiles(sf.decoder(selfies))) == smiles  # canonical
        if reward > FLOOR:  # feasible (SA score <= 4): the reward is the SMILES's QED
            assert reward == pytest.approx(qed([smiles]).item())


def test_scaffold_prompt_keeps_its_fragment(tmp_path):
    """recipes/molecules-scaffold.yaml: the SELFIES prompt (N-phenylpiperazine) is fixed, and the decoded designs keep
    the fragment (the free symbols attach at its last atom); the substructure constraint floors any that lost it."""
    out = tmp_path / "run"
    budget = ["--set", "budget.nfe=240", "--set", "design.num_designs=16", "--set", "model.num_steps=8"]
    result = seqtree_inprocess("design", "recipes/molecules-scaffold.yaml", "--out", str(out), *budget)
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv")
    prompt = designs["prompt"].iloc[0]
    assert sf.decoder(prompt) == "C1=CC=CC=C1N(CC2)CCN2" and designs["sequence"].str.startswith(prompt).all()
    fragment = Chem.MolFromSmarts("c1ccccc1N1CCNCC1")
    kept = [Chem.MolFromSmiles(s).HasSubstructMatch(fragment) for s in designs["smiles"]]
    assert sum(kept) >= 0.9 * len(kept)
    assert all(k for k, reward in zip(kept, designs["reward"]) if reward > FLOOR)


def test_num_rings_counts_rings_for_the_ring_window():
    rings = build_oracle("num_rings")
    molecules = ["CCO", "c1ccccc1", "c1ccc2ccccc2c1", "C1CCC2(CC1)CCCC2", "O=C(Nc1ccccc1)C1CC1", "C1CC("]
    assert rings(molecules).tolist() == [0.0, 1.0, 2.0, 2.0, 2.0, FLOOR]
    assert build_oracle("num_rings", aromatic=True)(molecules[:5]).tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    window = build_oracle_from_spec({"name": "qed", "constraints": [{"name": "num_rings", "min": 2, "max": 3}]})
    out = window.score(["c1ccccc1", "c1ccc2ccccc2c1"])
    assert out.reasons[0] == "constraint num_rings=1 outside [2, 3]" and out.values[0] == FLOOR
    assert out.valid[1] and out.values[1] == pytest.approx(build_oracle("qed")(["c1ccc2ccccc2c1"]).item())


def test_substructure_counts_matches_of_a_fragment():
    benzene = build_oracle("substructure", smarts="c1ccccc1")
    assert benzene(["CC(=O)Oc1ccccc1C(=O)O", "CCO", "c1ccc(-c2ccccc2)cc1", ""]).tolist() == [1.0, 0.0, 2.0, FLOOR]
    with pytest.raises(ValueError, match="not a valid SMARTS"):
        build_oracle("substructure", smarts="C(((")
