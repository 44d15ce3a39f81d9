"""Seeding a replay buffer with scored sequences from a file (lab data, an earlier campaign, another tool's designs).

Formats: CSV (a ``sequence`` column and one reward column per objective, ``reward`` by default; seqtree's own
``designs.csv`` qualifies) and FASTA with ``reward=<value>`` in each record's description (seqtree's own
``designs.fasta`` qualifies). Each sequence must complete the design's root: either the whole designed row (prompt
and scaffold letters where the root has them) or exactly the free positions. Imported rows have no sampling path, so
their importance weight is their reward alone (see :mod:`seqtree.buffer`). Every problem names the file and record.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import Tensor

from seqtree.buffer import UNKNOWN_STEP, BufferError

FASTA_SUFFIXES = {".fasta", ".fa", ".faa", ".fna"}
REWARD_IN_DESCRIPTION = re.compile(r"reward=([^\s,;]+)")


def read_scored(path: str | Path, reward_columns: list[str] | None = None) -> tuple[list[str], Tensor]:
    """(sequences, rewards [N, K] float64) of a scored CSV or FASTA file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scored sequence file {path} does not exist")
    if path.suffix.lower() in FASTA_SUFFIXES:
        return _read_fasta(path)
    if path.suffix.lower() != ".csv":
        raise BufferError(f"{path}: unknown scored-sequence file type {path.suffix!r}; use .csv or .fasta")
    import pandas as pd

    table = pd.read_csv(path)
    columns = reward_columns or ["reward"]
    missing = [c for c in ["sequence", *columns] if c not in table.columns]
    if missing:
        raise BufferError(f"{path}: no column {missing[0]!r} (columns: {', '.join(map(str, table.columns))})")
    rewards = torch.tensor(table[columns].to_numpy(dtype=float), dtype=torch.float64)
    sequences = [str(s) for s in table["sequence"]]
    return sequences, rewards


def _read_fasta(path: Path) -> tuple[list[str], Tensor]:
    from Bio import SeqIO

    sequences, rewards = [], []
    for index, record in enumerate(SeqIO.parse(str(path), "fasta")):
        found = REWARD_IN_DESCRIPTION.search(record.description)
        if found is None:
            raise BufferError(f"{path}, record {index + 1} ({record.id}): no reward=<value> in its description")
        try:
            rewards.append(float(found.group(1)))
        except ValueError:
            raise BufferError(f"{path}, record {index + 1}: reward {found.group(1)!r} is not a number") from None
        sequences.append(str(record.seq))
    if not sequences:
        raise BufferError(f"{path}: no FASTA records")
    return sequences, torch.tensor(rewards, dtype=torch.float64).unsqueeze(1)


def imported_rows(
    sequences: list[str], rewards: Tensor, *, tokenizer, root: Tensor, num_steps: int, source: str = "file"
) -> dict[str, Tensor]:
    """Buffer rows for scored sequences completing ``root`` [L] (masked positions free); an unusable sequence or a
    non-finite reward is an error naming its record."""
    mask_id = tokenizer.mask_id
    free = root == mask_id
    fixed_ids = root[~free]
    pad = tokenizer.pad_id
    rows = []
    for index, sequence in enumerate(sequences):
        where = f"{source}, record {index + 1}"
        if not all(math.isfinite(v) for v in rewards[index].tolist()):
            raise BufferError(f"{where}: reward {rewards[index].tolist()} is not finite")
        try:
            ids = torch.tensor(tokenizer.encode(sequence), dtype=torch.long)
        except ValueError as error:
            raise BufferError(f"{where}: {error}") from None
        row = root.clone()
        content = root != pad
        if ids.numel() == int(free.sum()):
            row[free] = ids
        elif ids.numel() == int(content.sum()) and torch.equal(ids[~free[content]], fixed_ids[fixed_ids != pad]):
            row[content] = ids
        else:
            raise BufferError(
                f"{where}: {ids.numel()} tokens do not complete the design ({int(free.sum())} free positions, "
                f"{int(content.sum())} with the fixed ones)"
            )
        rows.append(row)
    count = len(rows)
    tokens = torch.stack(rows) if rows else root.new_zeros((0, root.numel()))
    unmask = torch.where(free, UNKNOWN_STEP, -1).expand(count, -1).clone()
    zeros = torch.zeros(count, num_steps)
    return {
        "tokens": tokens, "designed": free.expand(count, -1).clone(), "unmask_step": unmask, "log_prob": zeros,
        "log_prob_model": zeros.clone(), "log_prob_pretrained": torch.zeros(count, dtype=torch.float64),
        "rewards": rewards.double(), "scores": rewards.double().mean(-1),
        "round": torch.full((count,), -1, dtype=torch.long), "seed": torch.full((count,), -1, dtype=torch.long),
    }  # fmt: skip
