"""Each tokenizer round-trips its domain's strings and names the bad character and its position."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqtree.models.tokenizers import (
    DNA_ALPHABET,
    PROTEIN_ALPHABET,
    ByteTokenizer,
    HFTokenizer,
    RegexTokenizer,
    TokenizationError,
    dna_tokenizer,
    load_tokenizer,
    protein_tokenizer,
    tokenizer_for_domain,
)

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O", "Clc1ccc(Br)cc1", "C1CC[NH2+]CC1", "O=C(O)C%10CC%10"]


@given(st.text(alphabet=DNA_ALPHABET, max_size=50))
def test_dna_round_trip(sequence):
    tokenizer = dna_tokenizer()
    assert tokenizer.decode(tokenizer.encode(sequence)) == sequence


@given(st.text(alphabet=PROTEIN_ALPHABET, max_size=50))
def test_protein_round_trip(sequence):
    tokenizer = protein_tokenizer()
    ids = tokenizer.encode(sequence)
    assert all(i not in tokenizer.special_ids for i in ids)
    assert tokenizer.decode(ids) == sequence


def test_lowercase_dna_is_accepted_as_the_same_bases():
    tokenizer = dna_tokenizer()
    assert tokenizer.encode("acgt") == tokenizer.encode("ACGT")


@pytest.mark.parametrize(
    ("tokenizer", "text", "char", "position"),
    [(dna_tokenizer(), "ACGNT", "N", 3), (protein_tokenizer(), "MKTX", "X", 3), (protein_tokenizer(), "MK-T", "-", 2)],
)
def test_bad_character_names_character_and_position(tokenizer, text, char, position):
    with pytest.raises(TokenizationError, match=rf"{char!r} at position {position}"):
        tokenizer.encode(text)


def test_smiles_round_trip_and_atom_level_tokens():
    tokenizer = RegexTokenizer.fit(SMILES)
    for smiles in SMILES:
        assert tokenizer.decode(tokenizer.encode(smiles)) == smiles
    assert (
        "Cl" in tokenizer.vocab and "Br" in tokenizer.vocab and "[C@H]" in tokenizer.vocab and "%10" in tokenizer.vocab
    )
    assert tokenizer.split("Clc1ccccc1") == ["Cl", "c", "1", "c", "c", "c", "c", "c", "1"]


def test_smiles_unknown_token_is_named():
    tokenizer = RegexTokenizer.fit(["CCO"])
    with pytest.raises(TokenizationError, match=r"'N' at position 2"):
        tokenizer.encode("CCN")
    with pytest.raises(TokenizationError, match=r"position 1"):
        tokenizer.encode("C&C")


@given(st.text(max_size=40))
def test_byte_tokenizer_round_trips_any_text(text):
    tokenizer = ByteTokenizer()
    assert tokenizer.decode(tokenizer.encode(text)) == text


@pytest.mark.parametrize(
    "tokenizer",
    [dna_tokenizer(), protein_tokenizer(), RegexTokenizer.fit(SMILES), ByteTokenizer()],
    ids=["dna", "protein", "smiles", "bytes"],
)
def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.to_dict() == tokenizer.to_dict()
    assert (loaded.pad_id, loaded.mask_id, loaded.vocab_size) == (
        tokenizer.pad_id,
        tokenizer.mask_id,
        tokenizer.vocab_size,
    )


def test_special_ids_never_decoded():
    tokenizer = protein_tokenizer()
    ids = tokenizer.encode("MKT")
    assert tokenizer.decode([tokenizer.pad_id, *ids, tokenizer.mask_id, tokenizer.pad_id]) == "MKT"


def test_padding_and_overlong_batch():
    tokenizer = dna_tokenizer()
    assert tokenizer.encode_batch(["AC", "G"], length=3) == [[2, 3, 0], [4, 0, 0]]
    with pytest.raises(TokenizationError, match="sequence 1 has 4 tokens"):
        tokenizer.encode_batch(["A", "ACGT"], length=3)


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown domain 'rna'"):
        tokenizer_for_domain("rna")


def test_hugging_face_tokenizer_wrapper(tiny_esm_dir):
    tokenizer = HFTokenizer(str(tiny_esm_dir))
    ids = tokenizer.encode("MKTAYIAK")
    assert tokenizer.decode(ids) == "MKTAYIAK"
    assert tokenizer.mask_id == tokenizer.hf.mask_token_id
    assert tokenizer.mask_id in tokenizer.special_ids
    with pytest.raises(TokenizationError, match=r"'\$' at position 2"):
        tokenizer.encode("MK$T")
