"""Tokenizers for each domain: DNA, protein, SMILES, SELFIES, text.

Every tokenizer maps a string to integer ids and back, reserves a pad id and a mask id (the absorbing state of
masked diffusion), and never decodes special ids into a design. Tokenizers are saved next to a checkpoint as
``seqtree_tokenizer.json`` and loaded back by :func:`load_tokenizer`, so a checkpoint folder is self-describing.

Ids 0 and 1 are always ``<pad>`` and ``<mask>`` for seqtree's own tokenizers; the Hugging Face wrapper takes
whatever ids the wrapped tokenizer defines.

A tokenizer whose designs are written in another representation than the oracles read (SELFIES) says so with
``oracle_domain`` and turns a design into the oracle's string with :meth:`Tokenizer.to_oracle`; everyone else's
designs are what the oracles score.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

TOKENIZER_FILE = "seqtree_tokenizer.json"  # not tokenizer.json: Hugging Face fast tokenizers use that name
PAD_TOKEN = "<pad>"
MASK_TOKEN = "<mask>"

DNA_ALPHABET = "ACGT"
PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"

# Atom-level SMILES regex of Schwaller et al. (Molecular Transformer, ACS Cent. Sci. 2019): bracket atoms,
# two-letter halogens, organic-subset atoms, bonds, branches and ring-closure digits are single tokens.
SMILES_REGEX = r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
# A SELFIES symbol (Krenn et al., Mach. Learn.: Sci. Technol. 1:045024, 2020) is one bracketed token: [C], [=N],
# [Branch1], [Ring2], [nop], ...
SELFIES_REGEX = r"\[[^\[\]]+]"
# Domains whose tokenizer's vocabulary is fitted on the training data (the symbols that occur in it)
FITTED_DOMAINS = ("smiles", "selfies")


class TokenizationError(ValueError):
    """A string holds something the tokenizer's vocabulary cannot express; the message says what and where."""


class Tokenizer(ABC):
    """The tokenizer contract shared by every domain (see ARCHITECTURE.md, contract 1)."""

    kind: ClassVar[str]
    # The domain oracles score when a design is written in another representation (SELFIES designs are scored as
    # SMILES); None: the design string is what the oracles score.
    oracle_domain: ClassVar[str | None] = None
    pad_id: int
    mask_id: int

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special ids included (the width of the denoiser's logits)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; raises :class:`TokenizationError` naming the offending character and position."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """String of ``ids``, special ids dropped."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description from which :func:`tokenizer_from_dict` rebuilds this tokenizer."""

    def to_oracle(self, design: str) -> str:
        """The string an oracle scores for ``design`` (a decoded design): the design itself, unless the tokenizer
        writes designs in another representation (:attr:`oracle_domain`)."""
        return design

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset({self.pad_id, self.mask_id})

    @property
    def content_ids(self) -> list[int]:
        """Ids a design may contain (everything but the special ids)."""
        return [i for i in range(self.vocab_size) if i not in self.special_ids]

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / TOKENIZER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def encode_batch(self, texts: list[str], length: int | None = None) -> list[list[int]]:
        """Encode several strings; with ``length`` each is right-padded with ``pad_id`` (too long is an error)."""
        out = []
        for index, text in enumerate(texts):
            ids = self.encode(text)
            if length is not None:
                if len(ids) > length:
                    raise TokenizationError(f"sequence {index} has {len(ids)} tokens, more than length={length}")
                ids = ids + [self.pad_id] * (length - len(ids))
            out.append(ids)
        return out


class CharTokenizer(Tokenizer):
    """One character per token over a fixed alphabet; ids 0/1 are pad/mask, then the alphabet in order.

    ``case_insensitive`` upper-cases input first (for DNA and protein, where lowercase letters mean the same
    residue, e.g. soft-masked repeats in genomes).
    """

    kind = "char"

    def __init__(self, alphabet: str, *, name: str = "char", case_insensitive: bool = False) -> None:
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError(f"alphabet must be non-empty with distinct characters, got {alphabet!r}")
        self.alphabet = alphabet
        self.name = name
        self.case_insensitive = case_insensitive
        self.pad_id, self.mask_id = 0, 1
        self._ids = {c: i + 2 for i, c in enumerate(alphabet)}
        self._byte_table = self._decode_table(alphabet)

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 2

    def encode(self, text: str) -> list[int]:
        if self.case_insensitive:
            text = text.upper()
        ids = []
        for position, char in enumerate(text):
            token = self._ids.get(char)
            if token is None:
                raise TokenizationError(
                    f"{self.name} tokenizer: character {char!r} at position {position} is not in the alphabet "
                    f"{self.alphabet!r}"
                )
            ids.append(token)
        return ids

    @staticmethod
    def _decode_table(alphabet: str) -> bytes | None:
        """A 256-byte table id -> character for ASCII alphabets (0xFF marks an id outside the vocabulary), so that
        decoding is one C-level ``bytes.translate`` (a search decodes every scored row: on a GPU the Python loop
        per character was a tenth of best-of-N's wall time)."""
        if not alphabet.isascii() or len(alphabet) + 2 > 256:
            return None
        table = bytearray(b"\xff" * 256)
        for index, char in enumerate(alphabet):
            table[index + 2] = ord(char)
        return bytes(table)

    def decode(self, ids: list[int]) -> str:
        if self._byte_table is not None:
            try:  # pad and mask (ids 0 and 1) are dropped; an unknown id fails the ASCII decode
                return bytes(ids).translate(self._byte_table, b"\x00\x01").decode("ascii")
            except ValueError:  # an id beyond one byte or the vocabulary: the general path raises on it
                pass
        return "".join(self.alphabet[i - 2] for i in ids if i >= 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "alphabet": self.alphabet,
            "name": self.name,
            "case_insensitive": self.case_insensitive,
        }


def dna_tokenizer() -> CharTokenizer:
    """A, C, G, T (lowercase accepted); anything else (N, IUPAC codes) is an error naming the base."""
    return CharTokenizer(DNA_ALPHABET, name="dna", case_insensitive=True)


def protein_tokenizer() -> CharTokenizer:
    """The 20 standard amino acids; X, B, Z, U, O and gaps are errors naming the residue."""
    return CharTokenizer(PROTEIN_ALPHABET, name="protein", case_insensitive=True)


def ehrlich_tokenizer() -> CharTokenizer:
    """Ehrlich function states written as letters (state i is the i-th of the 20 amino-acid letters, as the
    ``ehrlich`` oracle writes them); a separate name so an Ehrlich checkpoint is not mistaken for a protein model."""
    return CharTokenizer(PROTEIN_ALPHABET, name="ehrlich")


class RegexTokenizer(Tokenizer):
    """Tokens are the matches of a regular expression over a fixed vocabulary (SMILES atoms, bonds, rings).

    A string must be covered entirely by matches; a gap or a match outside the vocabulary is an error that names
    the text and its position.
    """

    kind = "regex"

    def __init__(self, vocab: list[str], pattern: str = SMILES_REGEX, *, name: str = "smiles") -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocabulary tokens must be distinct")
        self.vocab = list(vocab)
        self.pattern = pattern
        self.name = name
        self._regex = re.compile(pattern)
        self.pad_id, self.mask_id = 0, 1
        self._ids = {tok: i + 2 for i, tok in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: list[str], pattern: str = SMILES_REGEX, *, name: str = "smiles") -> RegexTokenizer:
        """Vocabulary of every token that occurs in ``texts``, sorted for reproducibility."""
        regex = re.compile(pattern)
        vocab: set[str] = set()
        for text in texts:
            vocab.update(regex.findall(text))
        return cls(sorted(vocab), pattern, name=name)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 2

    def split(self, text: str) -> list[str]:
        tokens, position = [], 0
        for match in self._regex.finditer(text):
            if match.start() != position:
                raise TokenizationError(
                    f"{self.name} tokenizer: {text[position : match.start()]!r} at position {position} is not a token"
                )
            tokens.append(match.group())
            position = match.end()
        if position != len(text):
            raise TokenizationError(f"{self.name} tokenizer: {text[position:]!r} at position {position} is not a token")
        return tokens

    def encode(self, text: str) -> list[int]:
        ids, position = [], 0
        for token in self.split(text):
            token_id = self._ids.get(token)
            if token_id is None:
                raise TokenizationError(
                    f"{self.name} tokenizer: token {token!r} at position {position} is not in the vocabulary"
                )
            ids.append(token_id)
            position += len(token)
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i - 2] for i in ids if i >= 2)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab, "pattern": self.pattern, "name": self.name}


def smiles_tokenizer(vocab: list[str]) -> RegexTokenizer:
    return RegexTokenizer(vocab, SMILES_REGEX, name="smiles")


class SelfiesTokenizer(RegexTokenizer):
    """One token per SELFIES symbol, over the symbols of the training data. Every string of SELFIES symbols decodes
    to a molecule, so every design is one; oracles read SMILES, and :meth:`to_oracle` gives the canonical SMILES
    (RDKit) of a design. Needs the ``selfies`` package (and RDKit) only to decode for oracles."""

    kind = "selfies"
    oracle_domain = "smiles"

    def __init__(self, vocab: list[str]) -> None:
        super().__init__(vocab, SELFIES_REGEX, name="selfies")

    @classmethod
    def fit(cls, texts: list[str]) -> SelfiesTokenizer:  # type: ignore[override]
        """Vocabulary of every symbol that occurs in ``texts`` (SELFIES strings), sorted for reproducibility."""
        return cls(RegexTokenizer.fit(texts, SELFIES_REGEX, name="selfies").vocab)

    def to_oracle(self, design: str) -> str:
        return selfies_to_smiles(design)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab}


def selfies_to_smiles(selfies: str) -> str:
    """Canonical RDKit SMILES of a SELFIES string. A string the ``selfies`` decoder refuses (a symbol outside its
    grammar) gives "", which oracles floor as an empty sequence; SMILES that RDKit cannot parse are returned as the
    decoder wrote them, so the oracle records why it failed."""
    import selfies as sf
    from rdkit import Chem, RDLogger

    try:
        smiles = sf.decoder(selfies)
    except sf.DecoderError:
        return ""
    if not smiles:
        return ""
    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    return smiles if mol is None else Chem.MolToSmiles(mol)


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes: 256 byte ids after pad and mask; any text encodes, so no character is ever out of vocabulary.

    Decoding replaces an invalid UTF-8 byte sequence (possible in a freshly sampled design) with U+FFFD.
    """

    kind = "byte"

    def __init__(self) -> None:
        self.pad_id, self.mask_id = 0, 1

    @property
    def vocab_size(self) -> int:
        return 258

    def encode(self, text: str) -> list[int]:
        return [b + 2 for b in text.encode("utf-8")]

    def decode(self, ids: list[int]) -> str:
        return bytes(i - 2 for i in ids if i >= 2).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


class HFTokenizer(Tokenizer):
    """Any Hugging Face tokenizer (loaded by local path or hub id) used without its added special tokens.

    Its own mask and pad ids become the diffusion's absorbing and padding ids. Other special ids (CLS, EOS, UNK)
    are treated as special too and never decoded. An unknown piece encodes to the UNK id; that is reported as an
    error naming the character, because a design silently containing UNK is a lost design.
    """

    kind = "hf"

    def __init__(self, name_or_path: str, *, trust_remote_code: bool = False) -> None:
        from transformers import AutoTokenizer

        self.name_or_path = name_or_path
        self.trust_remote_code = trust_remote_code
        self.hf = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        if self.hf.mask_token_id is None:
            raise ValueError(f"tokenizer {name_or_path!r} defines no mask token; masked diffusion needs one")
        self.mask_id = int(self.hf.mask_token_id)
        pad = self.hf.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.mask_id
        # Character-level vocabularies (ESM-2's amino acids) and the ESM family's k-mer vocabularies (Nucleotide
        # Transformer's 6-mers) decode by concatenation: their tokenizer would put spaces between the pieces.
        special = set(self.hf.all_special_tokens)
        pieces = [t for t in self.hf.get_vocab() if t not in special and not (t.startswith("<") and t.endswith(">"))]
        self.character_level = bool(pieces) and all(len(t) == 1 for t in pieces)
        self.concatenate = self.character_level or type(self.hf).__name__.startswith("EsmTokenizer")

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(int(i) for i in self.hf.all_special_ids) | {self.pad_id, self.mask_id}

    def encode(self, text: str) -> list[int]:
        ids = list(self.hf.encode(text, add_special_tokens=False))
        unk = self.hf.unk_token_id
        if unk is not None and unk in ids:
            for position, char in enumerate(text):
                if unk in self.hf.encode(char, add_special_tokens=False):
                    raise TokenizationError(
                        f"tokenizer {self.name_or_path!r}: character {char!r} at position {position} is unknown"
                    )
            raise TokenizationError(f"tokenizer {self.name_or_path!r}: {text!r} encodes to an unknown token")
        return ids

    def decode(self, ids: list[int]) -> str:
        special = self.special_ids
        kept = [i for i in ids if i not in special]
        if self.concatenate:
            return "".join(self.hf.convert_ids_to_tokens(kept))
        return self.hf.decode(kept, clean_up_tokenization_spaces=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name_or_path": self.name_or_path, "trust_remote_code": self.trust_remote_code}


_FROM_DICT = {
    CharTokenizer.kind: lambda d: CharTokenizer(
        d["alphabet"], name=d.get("name", "char"), case_insensitive=d.get("case_insensitive", False)
    ),
    RegexTokenizer.kind: lambda d: RegexTokenizer(d["vocab"], d.get("pattern", SMILES_REGEX), name=d.get("name", "")),
    SelfiesTokenizer.kind: lambda d: SelfiesTokenizer(d["vocab"]),
    ByteTokenizer.kind: lambda d: ByteTokenizer(),
    HFTokenizer.kind: lambda d: HFTokenizer(d["name_or_path"], trust_remote_code=d.get("trust_remote_code", False)),
}


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    kind = data.get("kind")
    if kind not in _FROM_DICT:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known kinds: {sorted(_FROM_DICT)}")
    return _FROM_DICT[kind](data)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load the tokenizer file saved beside a checkpoint."""
    path = Path(directory) / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {TOKENIZER_FILE} in {directory}; was the checkpoint saved by seqtree?")
    return tokenizer_from_dict(json.loads(path.read_text()))


def tokenizer_for_domain(domain: str, texts: list[str] | None = None) -> Tokenizer:
    """The default tokenizer of a domain; SMILES and SELFIES fit their vocabulary on ``texts``."""
    if domain == "dna":
        return dna_tokenizer()
    if domain == "protein":
        return protein_tokenizer()
    if domain == "smiles":
        if not texts:
            raise ValueError("a SMILES tokenizer is fitted on training texts; none were given")
        return RegexTokenizer.fit(texts)
    if domain == "selfies":
        if not texts:
            raise ValueError("a SELFIES tokenizer is fitted on training texts; none were given")
        return SelfiesTokenizer.fit(texts)
    if domain == "text":
        return ByteTokenizer()
    if domain == "ehrlich":
        return ehrlich_tokenizer()
    raise ValueError(f"unknown domain {domain!r}; choose one of dna, protein, smiles, selfies, text, ehrlich")
