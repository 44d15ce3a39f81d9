"""The byte-level BPE tokenizer (``SubwordTokenizer``) of text-small: round trips, characters the training text
never had, special ids, serialisation, and the reproducibility of the shipped tokenizer file."""

from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqtree.models.tokenizers import (
    MASK_TOKEN,
    PAD_TOKEN,
    SubwordTokenizer,
    load_tokenizer,
    tokenizer_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TOKENIZER = ROOT / "data/text/kjv-bpe-4096.json"
TRAIN = ROOT / "data/text/train.txt"
TOY_TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "And God said, Let there be light: and there was light.",
    "And the evening and the morning were the first day.",
] * 20


@pytest.fixture(scope="module")
def kjv() -> SubwordTokenizer:
    return SubwordTokenizer.from_file(SHIPPED_TOKENIZER)


@pytest.fixture(scope="module")
def toy() -> SubwordTokenizer:
    return SubwordTokenizer.train(TOY_TEXTS, 300, name="toy")


def test_shipped_tokenizer_has_the_recipe_layout(kjv):
    assert kjv.vocab_size == 4096
    assert (kjv.pad_id, kjv.mask_id) == (0, 1)
    assert kjv.special_ids == frozenset({0, 1})
    assert len(kjv.content_ids) == 4094


def test_verses_round_trip_in_fewer_tokens_than_bytes(kjv):
    verses = [line for line in TRAIN.read_text().splitlines()[:2000:7]] + (ROOT / "data/text/val.txt").read_text(
    ).splitlines()[:300:3]  # fmt: skip
    tokens = nbytes = 0
    for verse in verses:
        ids = kjv.encode(verse)
        assert kjv.decode(ids) == verse
        assert not set(ids) & kjv.special_ids
        tokens, nbytes = tokens + len(ids), nbytes + len(verse.encode())
    # 4.08 bytes per token over train.txt (data/text/tokenizer.py prints it); a tokenizer that had fallen back to
    # bytes or characters would give 1
    assert nbytes / tokens > 3.5


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200))
def test_any_printable_ascii_round_trips_but_for_trailing_spaces(text):
    tokenizer = SubwordTokenizer.from_file(SHIPPED_TOKENIZER)
    assert tokenizer.decode(tokenizer.encode(text)) == text.rstrip(" ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_unicode_text_round_trips_through_its_utf8_bytes(text):
    assume(not text[-1:].isspace())  # trailing whitespace is dropped (next test)
    tokenizer = SubwordTokenizer.from_file(SHIPPED_TOKENIZER)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) <= len(text.encode("utf-8"))  # never more tokens than bytes


def test_trailing_whitespace_is_dropped_so_a_prompt_ends_where_its_next_piece_begins(kjv):
    # Pieces carry their leading space: " Let" is one piece. A prompt typed with a trailing space would otherwise
    # end in a lone space piece that never occurs in the (stripped) training lines.
    assert kjv.encode("And the LORD said, ") == kjv.encode("And the LORD said,")
    assert kjv.encode("said, \t\n") == kjv.encode("said,")
    assert kjv.decode(kjv.encode("And the LORD said,") + kjv.encode(" Let")) == "And the LORD said, Let"
    assert kjv.encode("  leading spaces stay") != kjv.encode("leading spaces stay")


def test_characters_outside_the_training_text_become_their_bytes(kjv):
    # The King James text is ASCII: é (2 UTF-8 bytes), 中 (3) and an emoji (4) were never seen, and encode as one
    # token per byte; they decode back exactly.
    for char, nbytes in [("é", 2), ("中", 3), ("\N{GRINNING FACE}", 4)]:
        ids = kjv.encode(char)
        assert len(ids) == nbytes, (char, ids)
        assert kjv.decode(ids) == char
    assert kjv.decode(kjv.encode("Café of the LORD 中")) == "Café of the LORD 中"


def test_a_broken_byte_sequence_decodes_with_the_replacement_character(kjv):
    first_byte_of_e_acute = kjv.encode("é")[:1]
    assert kjv.decode(first_byte_of_e_acute) == "\ufffd"


def test_special_ids_are_never_decoded(kjv):
    ids = kjv.encode("And the LORD said")
    noisy = [kjv.pad_id, *ids[:2], kjv.mask_id, kjv.mask_id, *ids[2:], kjv.pad_id, kjv.pad_id]
    assert kjv.decode(noisy) == "And the LORD said"
    assert kjv.decode([kjv.pad_id, kjv.mask_id]) == ""


def test_special_token_text_in_the_input_is_text_not_a_special_id(kjv):
    text = f"a {MASK_TOKEN} and a {PAD_TOKEN}"
    ids = kjv.encode(text)
    assert kjv.mask_id not in ids and kjv.pad_id not in ids
    assert kjv.decode(ids) == text


def test_an_id_outside_the_vocabulary_is_an_error_naming_it(kjv):
    with pytest.raises(ValueError, match="id 5000 is outside the vocabulary of 4096"):
        kjv.decode([2, 5000])


def test_decoding_is_a_concatenation_so_prompt_plus_completion_is_the_text(kjv):
    prompt, completion = kjv.encode("And the LORD said"), kjv.encode(", Let there be light.")
    assert kjv.decode(prompt + completion) == kjv.decode(prompt) + kjv.decode(completion)


def test_to_dict_round_trip_and_saved_folder(kjv, tmp_path):
    rebuilt = tokenizer_from_dict(kjv.to_dict())
    assert isinstance(rebuilt, SubwordTokenizer)
    assert rebuilt.to_dict() == kjv.to_dict()
    text = "Then Paul stood in the midst of Mars' hill, and said, Ye men of Athens."
    assert rebuilt.encode(text) == kjv.encode(text)
    kjv.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.encode(text) == kjv.encode(text) and loaded.vocab_size == kjv.vocab_size
    assert loaded.encode(MASK_TOKEN) != [loaded.mask_id]  # the setting survives the file


def test_training_is_deterministic_and_puts_specials_first(toy):
    again = SubwordTokenizer.train(TOY_TEXTS, 300, name="toy")
    assert again.to_json() == toy.to_json()
    assert (toy.pad_id, toy.mask_id, toy.vocab_size) == (0, 1, 300)
    assert len(toy.encode("the light")) == 2  # " light" was merged into one piece


def test_a_vocabulary_without_room_for_merges_is_refused():
    with pytest.raises(ValueError, match="vocab_size must exceed"):
        SubwordTokenizer.train(TOY_TEXTS, 258)


def test_a_tokenizers_file_without_pad_and_mask_is_refused(toy):
    import json

    data = json.loads(toy.to_json())
    data["added_tokens"] = []
    data["model"]["vocab"] = {k: v for k, v in data["model"]["vocab"].items() if k not in (PAD_TOKEN, MASK_TOKEN)}
    with pytest.raises(ValueError, match="no <pad> or <mask> token"):
        SubwordTokenizer(data)


def test_the_shipped_file_is_what_the_script_trains_on_train_txt(kjv):
    """data/text/tokenizer.py is the reproducible command: retraining on train.txt gives the shipped file."""
    texts = [line for line in TRAIN.read_text().splitlines() if line.strip()]
    retrained = SubwordTokenizer.train(texts, 4096, name="kjv-bpe-4096")
    assert retrained.to_json() + "\n" == SHIPPED_TOKENIZER.read_text()
