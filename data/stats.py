"""Pure statistics helpers shared by the data/<domain>/prepare.py scripts.

No I/O happens here: every function takes sequences (strings) and returns
numbers or dicts, so the module is trivially testable.

Tokenisation per domain (what "token" means in the READMEs):

* protein, dna -- one character per token (residue / base);
* smiles       -- the atom-level regex split of Schwaller et al. (``SMILES_REGEX``);
* text         -- one UTF-8 byte per token.

The unigram baseline is the cross-entropy, in bits per token, of the
validation tokens under the unigram distribution of the training tokens with
add-one (Laplace) smoothing over the joint vocabulary V = vocab(train) | vocab(val):

    p(t) = (count_train(t) + 1) / (N_train + |V|)
    H    = -(1 / N_val) * sum_{t in val} log2 p(t)

Sequence separators (newlines, FASTA headers) are not tokens.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)

SELFIES_REGEX = re.compile(r"\[[^\[\]]+]")

Tokenizer = Callable[[str], Sequence]


def char_tokens(seq: str) -> list[str]:
    """One token per character (protein residues, DNA bases)."""
    return list(seq)


def byte_tokens(text: str) -> list[int]:
    """One token per UTF-8 byte."""
    return list(text.encode("utf-8"))


def smiles_tokens(smiles: str) -> list[str]:
    """Atom-level regex split of a SMILES string."""
    return SMILES_REGEX.findall(smiles)


def selfies_tokens(selfies: str) -> list[str]:
    """One token per SELFIES symbol (a bracketed string such as ``[=C]`` or ``[Ring1]``)."""
    return SELFIES_REGEX.findall(selfies)


def smiles_roundtrips(smiles: str) -> bool:
    """True when the regex tokens concatenate back to the input (no character lost)."""
    return "".join(smiles_tokens(smiles)) == smiles


def token_counts(seqs: Iterable[str], tokenize: Tokenizer) -> Counter:
    counts: Counter = Counter()
    for s in seqs:
        counts.update(tokenize(s))
    return counts


def unigram_cross_entropy_bits(train_counts: Counter, val_counts: Counter) -> float:
    """Cross-entropy (bits/token) of val under add-one-smoothed train unigrams."""
    vocab = set(train_counts) | set(val_counts)
    n_train = sum(train_counts.values())
    n_val = sum(val_counts.values())
    if n_val == 0:
        raise ValueError("validation set has no tokens")
    denom = n_train + len(vocab)
    total = 0.0
    for tok, c in val_counts.items():
        total -= c * math.log2((train_counts.get(tok, 0) + 1) / denom)
    return total / n_val


def unigram_entropy_bits(counts: Counter) -> float:
    """Plain (unsmoothed) entropy of a unigram distribution, bits/token."""
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values() if c)


def length_stats(lengths: Sequence[int]) -> dict:
    """min / max / mean / median / 5th and 95th percentile of token lengths."""
    xs = sorted(lengths)
    if not xs:
        raise ValueError("empty split")

    def pct(q: float) -> int:
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

    return {
        "min": xs[0],
        "p05": pct(0.05),
        "median": float(statistics.median(xs)),
        "mean": round(statistics.fmean(xs), 2),
        "p95": pct(0.95),
        "max": xs[-1],
    }


def split_summary(train: Sequence[str], val: Sequence[str], tokenize: Tokenizer) -> dict:
    """Counts, token totals, length statistics and the unigram baseline for a split."""
    out: dict = {}
    counts = {}
    for name, seqs in (("train", train), ("val", val)):
        lens = [len(tokenize(s)) for s in seqs]
        counts[name] = token_counts(seqs, tokenize)
        out[name] = {
            "sequences": len(seqs),
            "tokens": sum(lens),
            "vocab": len(counts[name]),
            "length": length_stats(lens),
        }
    out["vocab_joint"] = len(set(counts["train"]) | set(counts["val"]))
    out["train_unigram_entropy_bits"] = round(unigram_entropy_bits(counts["train"]), 4)
    out["val_xent_under_train_unigram_bits"] = round(
        unigram_cross_entropy_bits(counts["train"], counts["val"]), 4
    )
    return out


def summary_markdown(summary: dict, token_name: str) -> str:
    """Render ``split_summary`` output as a Markdown table plus the baseline line."""
    lines = [
        f"| split | sequences | {token_name} | vocab | min | p05 | median | mean | p95 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("train", "val"):
        s = summary[name]
        L = s["length"]
        lines.append(
            f"| {name} | {s['sequences']:,} | {s['tokens']:,} | {s['vocab']} | {L['min']} | "
            f"{L['p05']} | {L['median']} | {L['mean']} | {L['p95']} | {L['max']} |"
        )
    lines.append("")
    lines.append(
        f"Unigram baseline: cross-entropy of val under the add-one-smoothed train unigram "
        f"distribution = **{summary['val_xent_under_train_unigram_bits']:.4f} bits/token** "
        f"(train unigram entropy {summary['train_unigram_entropy_bits']:.4f} bits/token, "
        f"joint vocabulary {summary['vocab_joint']})."
    )
    return "\n".join(lines)
