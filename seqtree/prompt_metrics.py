"""Alignment metrics of a multi-prompt run: per prompt, over prompts, and the anytime curve averaged over prompts.

- reward: mean and best over a prompt's written completions; the mean leaves out completions that got the oracle's
  floor (counted apart as ``floored``), as the anytime curve's mean does, since one floor of -1000 would swamp it;
- fluency: mean over the completions that have one (:mod:`seqtree.oracles.fluency`, minus bits per byte);
- distinct-n (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models", NAACL,
  Sec. 4.3): the number of distinct n-grams over all n-grams of a prompt's completions, n-grams taken within each
  completion over **whitespace-separated words** (``str.split()``), so the measure reads the same for byte-level
  and sub-word models. NaN when the completions hold no n-gram (all shorter than n words);
- the anytime curve: each prompt's best reward so far is a step function of its NFE; the mean over prompts at a
  grid of NFE values counts only the prompts that have scored something by then (``prompts`` says how many).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

DISTINCT_N = (1, 2, 3)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / all n-grams over whitespace words, n-grams within each text; NaN without any n-gram."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.split()
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else math.nan


def completion_metrics(completions: list[str], rewards: list[float], fluency: list[float], floor: float) -> dict:
    """A prompt's metrics over its written completions (module docstring)."""
    valid = [r for r in rewards if r > floor]
    fluent = [f for f in fluency if f is not None and not math.isnan(f)]
    out = {
        "completions": len(completions),
        "reward_mean": float(np.mean(valid)) if valid else math.nan,
        "reward_best": max(rewards) if rewards else math.nan,
        "floored": len(rewards) - len(valid),
        "fluency_mean": float(np.mean(fluent)) if fluent else math.nan,
    }
    for n in DISTINCT_N:
        out[f"distinct_{n}"] = distinct_n(completions, n)
    return out


def mean_curve(curves: dict[str, pd.DataFrame], points: int = 100) -> pd.DataFrame:
    """Best reward (and mean reward of the valid sequences, and oracle calls) so far, averaged over prompts at
    ``points`` NFE values from 0 to the largest NFE any prompt reached (each prompt's own last NFE included), with the
    prompts counted."""
    curves = {k: c for k, c in curves.items() if len(c)}
    columns = ["nfe", "oracle_calls", "best_reward", "mean_reward", "prompts"]
    if not curves:
        return pd.DataFrame(columns=columns)
    ends = [int(c["nfe"].max()) for c in curves.values()]
    grid = np.unique(np.concatenate([np.linspace(0, max(ends), points).round(), ends]))
    best = np.full((len(curves), len(grid)), np.nan)
    mean = np.full((len(curves), len(grid)), np.nan)
    calls = np.full((len(curves), len(grid)), np.nan)
    for row, curve in enumerate(curves.values()):
        nfe = curve["nfe"].to_numpy()
        at = np.searchsorted(nfe, grid, side="right") - 1  # the last point at or before each grid value
        seen = at >= 0
        best[row, seen] = curve["best_reward"].to_numpy()[at[seen]]
        mean[row, seen] = curve["mean_reward"].to_numpy()[at[seen]]
        calls[row, seen] = curve["oracle_calls"].to_numpy()[at[seen]]
    return pd.DataFrame({
        "nfe": grid.astype(int), "oracle_calls": _nanmean(calls), "best_reward": _nanmean(best),
        "mean_reward": _nanmean(mean),
        "prompts": (~np.isnan(best)).sum(0),
    })  # fmt: skip


def _nanmean(values: np.ndarray) -> np.ndarray:
    counts = (~np.isnan(values)).sum(0)
    return np.where(counts > 0, np.nansum(values, 0) / np.maximum(counts, 1), np.nan)
