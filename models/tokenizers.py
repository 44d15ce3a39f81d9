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

    Its own mask and pad ids become the diffusion's absorbing and padding ids; a model whose mask id is not in its
    tokenizer (MDLM appends one after GPT-2's vocabulary; LLaDA's config names it) passes it as ``mask_id``. Without
    a pad token, rows are padded with the end-of-sequence id (a finished document), else with the mask id. Other
    special ids (CLS, EOS, UNK) are treated as special too and never decoded. An unknown piece encodes to the UNK
    id; that is reported as an error naming the character, because a design silently containing UNK is a lost
    design.

    Character-level vocabularies (ESM-2's amino acids) and nucleotide vocabularies (Nucleotide Transformer's 6-mers,
    DNABERT-2's BPE pieces over ACGT) decode by concatenation, where their tokenizer would put spaces between the
    pieces; a nucleotide vocabulary with pieces of several bases states its design lengths in tokens and reports
    them in bases (``length_unit``).
    """

    kind = "hf"

    def __init__(
        self, name_or_path: str, *, trust_remote_code: bool = False, mask_id: int | None = None, hf: Any = None
    ) -> None:
        self.name_or_path = name_or_path
        self.trust_remote_code = trust_remote_code
        self.hf = hf if hf is not None else self.load_hf(name_or_path, trust_remote_code=trust_remote_code)
        own = self.hf.mask_token_id
        if own is None and mask_id is None:
            raise ValueError(
                f"model {name_or_path!r} has no mask token: neither its tokenizer (mask_token) nor its config "
                "(mask_token_id) names one, and masked diffusion needs one"
            )
        self.external_mask_id = None if own is not None else int(mask_id)
        self.mask_id = int(own) if own is not None else int(mask_id)
        pad = self.hf.pad_token_id if self.hf.pad_token_id is not None else self.hf.eos_token_id
        self.pad_id = int(pad) if pad is not None else self.mask_id
        special = set(self.hf.all_special_tokens)
        pieces = [t for t in self.hf.get_vocab() if t not in special and not (t.startswith("<") and t.endswith(">"))]
        if not pieces:  # transformers builds an empty tokenizer for a folder without tokenizer files
            raise ValueError(
                f"model {name_or_path!r}: its tokenizer has only special tokens (no tokenizer files in the folder?); "
                "save the model's tokenizer there"
            )
        self.character_level = bool(pieces) and all(len(t) == 1 for t in pieces)
        nucleotides = bool(pieces) and all(set(t.upper()) <= set("ACGTN") for t in pieces)
        self.concatenate = self.character_level or nucleotides or type(self.hf).__name__.startswith("EsmTokenizer")
        # Design lengths are counted in tokens; where a token holds several bases the designs table counts bases too.
        self.length_unit = "bases" if nucleotides and not self.character_level else None

    @staticmethod
    def load_hf(name_or_path: str, *, trust_remote_code: bool = False) -> Any:
        """The Hugging Face tokenizer of a model; a folder without one is an error that says what to save there."""
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, TypeError) as error:  # no tokenizer files, or files transformers cannot read
            raise ValueError(
                f"model {name_or_path!r}: its tokenizer could not be loaded ({str(error).splitlines()[0]}); save the "
                "model's tokenizer in its folder (MDLM checkpoints use GPT-2's: "
                "AutoTokenizer.from_pretrained('gpt2').save_pretrained(FOLDER))"
            ) from None

    @property
    def vocab_size(self) -> int:
        return max(len(self.hf), self.mask_id + 1)

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

    def token_names(self, ids: list[int]) -> list[str]:
        """The tokenizer's name of each id (``seqtree models inspect``); a mask id beyond the tokenizer (MDLM's) is
        ``<mask>``."""
        size = len(self.hf)
        return [
            self.hf.convert_ids_to_tokens(int(i)) if 0 <= i < size else "<mask>" if i == self.mask_id else f"<id {i}>"
            for i in ids
        ]

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "name_or_path": self.name_or_path, "trust_remote_code": self.trust_remote_code}
        if self.external_mask_id is not None:
            data["mask_id"] = self.external_mask_id
        return data


# Words with their leading space, runs of digits, runs of punctuation (with a leading space) and runs of whitespace:
# the pre-tokenisation of GPT-2 (Radford et al. 2019, Sec. 2.2) without its English contraction rules, so that BPE
# merges never cross a word boundary and " the" is one piece wherever it occurs.
SUBWORD_PRETOKENIZER = r" ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+"


class SubwordTokenizer(Tokenizer):
    """Byte-level BPE sub-words from a Hugging Face ``tokenizers`` model trained offline (:meth:`train`).

    Byte-level BPE (Sennrich et al., ACL 2016, Sec. 3.1 for BPE; GPT-2's byte-level alphabet, Radford et al. 2019,
    Sec. 2.2) starts from the 256 bytes, so every string encodes: a character the training text never had (``é``,
    ``中``) becomes its UTF-8 bytes, one token each, and decodes back exactly. A piece carries several bytes, so a
    model over pieces spends its compute on fewer, more informative positions than a byte model.

    ``<pad>`` and ``<mask>`` are the tokenizer's special tokens (ids 0 and 1 when trained by :meth:`train`); a
    literal ``"<mask>"`` in the input is text, never the mask id. Decoding drops special ids, and a sampled piece
    sequence that is not valid UTF-8 decodes with U+FFFD in place of the broken bytes. Decoding is a
    concatenation: ``decode(a + b) == decode(a) + decode(b)`` unless a multi-byte character is split between
    ``a`` and ``b``, so a prompt's text followed by its completion's text is the design's text.

    Trailing whitespace is dropped when encoding (a right-strip normaliser): pieces carry their leading space, so a
    prompt typed as ``"said, "`` would otherwise end in a lone space piece that the stripped training lines never
    hold, and the completion's first piece (``" Let"``) brings its own space.

    The whole ``tokenizers`` JSON is kept in :meth:`to_dict`, so a checkpoint folder needs no other file.
    """

    kind = "subword"

    def __init__(self, spec: str | dict[str, Any], *, name: str = "subword") -> None:
        from tokenizers import Tokenizer as HFFastTokenizer

        self.name = name
        text = spec if isinstance(spec, str) else json.dumps(spec)
        self.backend = HFFastTokenizer.from_str(text)
        self.backend.encode_special_tokens = True  # "<mask>" typed in a prompt is text, not the absorbing state
        ids = {token: self.backend.token_to_id(token) for token in (PAD_TOKEN, MASK_TOKEN)}
        missing = [token for token, token_id in ids.items() if token_id is None]
        if missing:
            raise ValueError(f"{name} tokenizer: the tokenizers model has no {' or '.join(missing)} token")
        self.pad_id, self.mask_id = ids[PAD_TOKEN], ids[MASK_TOKEN]
        added = self.backend.get_added_tokens_decoder()
        self._special = frozenset(int(i) for i, token in added.items() if token.special) | {self.pad_id, self.mask_id}
        self._size = self.backend.get_vocab_size(with_added_tokens=True)

    @classmethod
    def train(cls, texts: list[str], vocab_size: int, *, name: str = "subword") -> SubwordTokenizer:
        """Fit byte-level BPE with ``vocab_size`` ids (``<pad>`` = 0, ``<mask>`` = 1, the 256 bytes, then merges
        by frequency) on ``texts``. Deterministic: the same texts and size give the same JSON."""
        from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
        from tokenizers import Tokenizer as HFFastTokenizer

        if vocab_size < 258 + 1:
            raise ValueError(f"vocab_size must exceed the 256 bytes and 2 special tokens, got {vocab_size}")
        backend = HFFastTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(SUBWORD_PRETOKENIZER), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])  # fmt: skip
        backend.normalizer = normalizers.Strip(left=False, right=True)  # see the class docstring
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[PAD_TOKEN, MASK_TOKEN],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer, length=len(texts))
        return cls(backend.to_str(), name=name)

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> SubwordTokenizer:
        """Load a ``tokenizers`` JSON file (as :meth:`train` output is saved by ``data/text/tokenizer.py``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        return cls(path.read_text(), name=name or path.stem)

    @property
    def vocab_size(self) -> int:
        return self._size

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        kept = [int(i) for i in ids if int(i) not in self._special]
        bad = [i for i in kept if not 0 <= i < self._size]
        if bad:
            raise ValueError(f"{self.name} tokenizer: id {bad[0]} is outside the vocabulary of {self._size}")
        return self.backend.decode(kept, skip_special_tokens=True)

    def to_json(self) -> str:
        """The ``tokenizers`` JSON (what :meth:`from_file` reads)."""
        return self.backend.to_str(pretty=True)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "tokenizers_json": json.loads(self.backend.to_str())}


_FROM_DICT = {
    CharTokenizer.kind: lambda d: CharTokenizer(
        d["alphabet"], name=d.get("name", "char"), case_insensitive=d.get("case_insensitive", False)
    ),
    RegexTokenizer.kind: lambda d: RegexTokenizer(d["vocab"], d.get("pattern", SMILES_REGEX), name=d.get("name", "")),
    SelfiesTokenizer.kind: lambda d: SelfiesTokenizer(d["vocab"]),
    ByteTokenizer.kind: lambda d: ByteTokenizer(),
    HFTokenizer.kind: lambda d: HFTokenizer(
        d["name_or_path"], trust_remote_code=d.get("trust_remote_code", False), mask_id=d.get("mask_id")
    ),
    SubwordTokenizer.kind: lambda d: SubwordTokenizer(d["tokenizers_json"], name=d.get("name", "subword")),
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
