"""Training data: read sequence files, tokenise, pad, and serve batches (a ``LightningDataModule``).

Formats by file extension: FASTA (``.fasta``, ``.fa``, ``.faa``, ``.fna``; read with Biopython ``SeqIO``), one
sequence per line (``.smi``, ``.txt``, ``.seq``; blank lines skipped; for ``.smi`` the first whitespace-separated
field); any of them gzip-compressed with a further ``.gz`` (``train.txt.gz``). A sequence longer than
``max_length`` is cropped to a random window each time it is drawn in training and to its first window in
validation; shorter ones are right-padded. Padding is never masked and never scored.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from seqtree.models.tokenizers import TokenizationError, Tokenizer

FASTA_SUFFIXES = {".fasta", ".fa", ".faa", ".fna"}
LINE_SUFFIXES = {".smi", ".txt", ".seq"}


def read_sequences(path: str | Path) -> list[str]:
    """All sequences in a FASTA or one-per-line file, or a gzip of one (``.gz`` after the format's extension); an
    unknown extension or an empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data file {path} does not exist")
    compressed = path.suffix.lower() == ".gz"
    suffix = (path.with_suffix("") if compressed else path).suffix.lower()
    if suffix not in FASTA_SUFFIXES | LINE_SUFFIXES:
        known = sorted(FASTA_SUFFIXES | LINE_SUFFIXES)
        raise ValueError(f"{path}: unknown sequence file type {suffix!r}; use one of {known}, or one of them .gz")
    if compressed:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            text = stream.read()
    else:
        text = path.read_text()
    if suffix in FASTA_SUFFIXES:
        from Bio import SeqIO

        sequences = [str(record.seq) for record in SeqIO.parse(io.StringIO(text), "fasta")]
    else:
        lines = (line.strip() for line in text.splitlines())
        sequences = [line.split()[0] if suffix == ".smi" else line for line in lines if line]
    if not sequences:
        raise ValueError(f"{path}: no sequences found")
    return sequences


def tokenize_all(tokenizer: Tokenizer, sequences: list[str], source: str) -> list[list[int]]:
    """Token ids of every sequence; an untokenisable one is an error naming the file and record number."""
    encoded = []
    for index, sequence in enumerate(sequences):
        try:
            encoded.append(tokenizer.encode(sequence))
        except TokenizationError as error:
            raise TokenizationError(f"{source}, record {index + 1}: {error}") from None
    return encoded


class TokenDataset(Dataset):
    """Tokenised sequences served as fixed-length rows of ``max_length`` (cropped or padded)."""

    def __init__(self, encoded: list[list[int]], max_length: int, pad_id: int, *, random_crop: bool) -> None:
        self.encoded = [ids for ids in encoded if ids]
        self.max_length = max_length
        self.pad_id = pad_id
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, index: int) -> Tensor:
        ids = self.encoded[index]
        if len(ids) > self.max_length:
            start = int(torch.randint(0, len(ids) - self.max_length + 1, ())) if self.random_crop else 0
            ids = ids[start : start + self.max_length]
        row = torch.full((self.max_length,), self.pad_id, dtype=torch.long)
        row[: len(ids)] = torch.tensor(ids, dtype=torch.long)
        return row


def text_bytes(tokenizer: Tokenizer, ids: list[int]) -> int:
    """UTF-8 bytes of the text ``ids`` decode to, special ids (padding, mask) dropped: the unit of bits per byte.

    A window cropped inside a multi-byte character decodes the broken bytes as U+FFFD (3 bytes); no shipped data
    set has such characters (the King James text is ASCII), so there bytes = characters."""
    return len(tokenizer.decode([int(i) for i in ids]).encode("utf-8"))


def bits_per_byte(nats: float, num_bytes: int) -> float:
    """Negative log-likelihood (an upper bound of it, for a NELBO) in bits per UTF-8 byte of the text it scores:
    ``nats / ln 2 / num_bytes``. The same text costs the same bits whatever the tokenizer, so models over bytes
    and over sub-words compare in this unit, while bits per token favour the tokenizer with fewer, longer tokens
    (Gao et al., The Pile, 2020, Sec. 4: bits per UTF-8 byte as the tokenizer-independent measure)."""
    if num_bytes <= 0:
        raise ValueError(f"bits per byte needs a positive byte count, got {num_bytes}")
    return nats / math.log(2) / num_bytes


class ByteCounter:
    """Callable: a batch of rows Long[B, L] -> the UTF-8 bytes its real tokens decode to (padding contributes
    nothing). Validation divides the NELBO by this count for bits per byte."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, rows: Tensor) -> int:
        return sum(text_bytes(self.tokenizer, row) for row in rows.tolist())


@dataclass(frozen=True)
class UnigramBaseline:
    bits_per_token: float  # cross-entropy of validation tokens under training unigram frequencies (add-one)
    num_val_tokens: int
    bits_per_byte: float | None = None  # the same bits over the UTF-8 bytes the validation tokens decode to
    num_val_bytes: int | None = None


def unigram_baseline(
    train: list[list[int]], val: list[list[int]], content_ids: list[int], num_val_bytes: int | None = None
) -> UnigramBaseline:
    """The bits per token a model that ignores context would reach: the floor a denoiser must beat; with
    ``num_val_bytes`` (the bytes ``val`` decodes to) also per byte."""
    counts = torch.ones(max(content_ids) + 1, dtype=torch.float64)  # add-one smoothing
    train_ids = torch.tensor(list(itertools.chain.from_iterable(train)), dtype=torch.long)
    counts += torch.bincount(train_ids, minlength=counts.numel()).double()  # one count, not one per sequence
    keep = torch.zeros_like(counts, dtype=torch.bool)
    keep[content_ids] = True
    probs = torch.where(keep, counts, torch.zeros_like(counts))
    probs = probs / probs.sum()
    val_ids = torch.tensor([i for ids in val for i in ids], dtype=torch.long)
    total = float(-(probs[val_ids].log2()).sum())
    per_byte = total / num_val_bytes if num_val_bytes else None
    return UnigramBaseline(total / val_ids.numel(), int(val_ids.numel()), per_byte, num_val_bytes)


class SequenceDataModule(L.LightningDataModule):
    """Train / validation files -> batches of Long[B, max_length] padded with ``tokenizer.pad_id``."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        train_path: str | Path,
        val_path: str | Path,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        num_workers: int = 0,
        max_train_sequences: int | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.train_path, self.val_path = Path(train_path), Path(val_path)
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.max_train_sequences = max_train_sequences
        self.train_encoded: list[list[int]] = []
        self.val_encoded: list[list[int]] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_encoded:
            return
        train = read_sequences(self.train_path)
        if self.max_train_sequences is not None:
            train = train[: self.max_train_sequences]
        self.train_encoded = tokenize_all(self.tokenizer, train, str(self.train_path))
        self.val_encoded = tokenize_all(self.tokenizer, read_sequences(self.val_path), str(self.val_path))

    def train_dataloader(self) -> DataLoader:
        # Under DDP Lightning swaps the shuffling sampler for a DistributedSampler: each of the world_size ranks then
        # draws from its ceil(N / world_size) shard, and a short last batch is dropped only if a full one remains.
        dataset = TokenDataset(self.train_encoded, self.max_length, self.tokenizer.pad_id, random_crop=True)
        shard = math.ceil(len(dataset) / self._world_size())
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=shard > self.batch_size,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        dataset = TokenDataset(self.val_encoded, self.max_length, self.tokenizer.pad_id, random_crop=False)
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def baseline(self) -> UnigramBaseline:
        """Unigram baseline on the same (cropped) validation windows the model is scored on."""
        self.setup()
        val = [ids[: self.max_length] for ids in self.val_encoded]
        num_bytes = sum(text_bytes(self.tokenizer, ids) for ids in val)
        return unigram_baseline(self.train_encoded, val, self.tokenizer.content_ids, num_bytes)

    def steps_per_epoch(self) -> int:
        """Batches per epoch and process (under DDP each rank's shard is 1 / world_size of the data)."""
        self.setup()
        return max(1, math.floor(len(self.train_encoded) / self._world_size() / self.batch_size))

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1
