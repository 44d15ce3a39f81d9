"""How recognisable sampled text is: the share of its words that are words of the training text.

A text model's NELBO says how well it predicts held-out text, not whether its samples read as language. The card
of a text checkpoint also reports the fraction of sampled words (runs of letters, case kept) that occur anywhere
in the training text: a model that writes invented sub-word compounds or byte soup ("thesthratan") scores low, one
that writes real words in any order scores high. It is a vocabulary check, not a grammar check; the samples in the
card show the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[A-Za-z]+")


def words_of(texts: Iterable[str]) -> set[str]:
    """Every run of ASCII letters in ``texts`` (the King James text is ASCII)."""
    found: set[str] = set()
    for text in texts:
        found.update(WORD.findall(text))
    return found


def known_word_fraction(samples: Iterable[str], vocabulary: set[str]) -> tuple[float, int]:
    """(fraction of the words of ``samples`` that are in ``vocabulary``, number of words); (0.0, 0) for no words."""
    words = [w for text in samples for w in WORD.findall(text)]
    if not words:
        return 0.0, 0
    return sum(w in vocabulary for w in words) / len(words), len(words)
