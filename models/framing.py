"""How a model family frames a sequence: the special tokens around its content and the length of its rows.

Each family of masked LM saw its sequences in one frame during training, and a denoiser must be called in the same
frame: ESM-2 reads ``<cls> MKT... <eos>``, BERT ``[CLS] ... [SEP]``, RoBERTa ``<s> ... </s>``; seqtree's own
checkpoints read the bare sequence padded to their full row, as in their training. The frame of a Hugging Face
model is read from its tokenizer's own rule for one sequence (``build_inputs_with_special_tokens``, or the
difference between encoding with and without special tokens), one hook for every family instead of a switch per
model type. Rows of a Hugging Face model are as long as the design plus its frame, not the model's maximum length
(issue 14: a 60-residue ESM-2 design padded to 1,026 positions cost 17 times the work, and with ESM-2's token
dropout a fully masked row without its frame divided by zero).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framing:
    """Special ids before (``prefix``) and after (``suffix``) the content, and whether rows are padded to the
    model's maximum length (``pad_rows``). The frame is fixed during sampling and never decoded."""

    family: str
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    pad_rows: bool = False
    forbidden: tuple[int, ...] = ()  # ids that are not design tokens (control tokens, gaps), never sampled

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.suffix)

    def frame(self, ids: list[int]) -> list[int]:
        return [*self.prefix, *ids, *self.suffix]


def seqtree_framing(model_type: str) -> Framing:
    """seqtree's own checkpoints: no special tokens, rows padded to ``max_positions`` as in their training."""
    return Framing(family=model_type, pad_rows=True)


# A protein masked LM's vocabulary (ESM-2's: the 20 amino acids, X B U Z O, the gap and insertion symbols "." and "-")
# holds letters a design must not contain; when its pieces are single residue letters (and gap or stop symbols) that
# include all 20 canonical amino acids, only those 20 are designed. A text vocabulary also holds the 20 letters as
# single pieces (byte-level BPE holds every byte), but among pieces of other characters and of several characters.
CANONICAL_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PROTEIN_SYMBOLS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ.-*")
# A nucleotide vocabulary (Nucleotide Transformer's 6-mers and single bases) holds N, the unknown base: pieces with N
# are not designed, so oracles receive A, C, G and T only.
NUCLEOTIDES = "ACGT"


def hf_framing(hf_tokenizer, model_type: str | None) -> Framing:
    """The frame a Hugging Face tokenizer puts around one sequence, probed with one ordinary token, and the ids that
    are not design tokens: control tokens written ``<...>`` that the tokenizer does not call special (ESM-2's
    ``<null_1>``), and for a protein vocabulary every single character but the 20 canonical amino acids."""
    special = set(hf_tokenizer.all_special_ids)
    probe = next((i for i in range(len(hf_tokenizer)) if i not in special), None)
    family = model_type or type(hf_tokenizer).__name__
    forbidden = _not_design_tokens(hf_tokenizer, special)
    framed = None if probe is None else _framed_probe(hf_tokenizer, probe)
    if framed is None or framed.count(probe) != 1:
        return Framing(family=family, forbidden=forbidden)
    at = framed.index(probe)
    return Framing(family=family, prefix=tuple(framed[:at]), suffix=tuple(framed[at + 1 :]), forbidden=forbidden)


def _not_design_tokens(hf_tokenizer, special: set[int]) -> tuple[int, ...]:
    vocab = hf_tokenizer.get_vocab()
    control = {i for token, i in vocab.items() if token.startswith("<") and token.endswith(">") and i not in special}
    singles = {token: i for token, i in vocab.items() if len(token) == 1 and i not in special}
    pieces = {token: i for token, i in vocab.items() if i not in special and i not in control}
    protein = set(CANONICAL_AMINO_ACIDS) <= set(singles) and set(pieces) <= PROTEIN_SYMBOLS
    if protein:
        control |= {i for token, i in singles.items() if token not in CANONICAL_AMINO_ACIDS}
    elif pieces and all(set(token.upper()) <= set(NUCLEOTIDES + "N") for token in pieces):
        control |= {i for token, i in pieces.items() if "N" in token.upper()}
    return tuple(sorted(control))


def _framed_probe(hf_tokenizer, probe: int) -> list[int] | None:
    builder = getattr(hf_tokenizer, "build_inputs_with_special_tokens", None)
    if builder is not None:
        try:
            return [int(i) for i in builder([probe])]
        except (TypeError, ValueError, NotImplementedError):
            pass
    text = hf_tokenizer.decode([probe])
    bare = hf_tokenizer.encode(text, add_special_tokens=False)
    full = hf_tokenizer.encode(text, add_special_tokens=True)
    for start in range(len(full) - len(bare) + 1):  # the bare encoding inside the framed one
        if full[start : start + len(bare)] == bare:
            return [*full[:start], probe, *full[start + len(bare) :]]
    return None
