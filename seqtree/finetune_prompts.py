"""Fine-tuning rounds over a prompts file (issue 15): ``seqtree finetune`` of a recipe with ``design.prompts_file``.

TR2-D2's loop (Tang et al. 2025, Alg. 1) with a prompt as the condition: the target is, for every prompt c of the
file, pi*(x | c) ~ p_pre(x | c) exp(r(c, x) / alpha). Each round

1. searches every prompt with the current policy on the multi-prompt path of ``seqtree design``
   (:func:`seqtree.prompts.run_prompts`: one search per prompt, their denoiser calls batched in lockstep), seeded by
   the round, into ``rounds/<k>/`` (a complete prompts run directory: ``prompts.csv``, per-prompt designs, curves);
2. adds every prompt's trajectories to the one replay buffer (:func:`prompt_rows`). A prompt is fixed tokens like a
   scaffold: its positions are never ``designed``, so WDCE never masks them and never takes them as targets
   (:func:`seqtree.training.wdce.wdce_loss` masks designed positions only), the path replay under the pretrained
   model keeps them visible (:mod:`seqtree.trajectory`), and the buffer self-normalises the weights of each
   (round, prompt) group on its own (:func:`seqtree.buffer.weight_groups`);
3. trains WDCE on the buffer (unchanged: a row carries its own prompt);
4. judges the policy by ``finetune.eval_samples`` plain (untempered ancestral) samples **per prompt**
   (:func:`evaluate_prompts`): the oracle's reward of each prompt's samples and their fluency, each averaged over the
   prompt's samples and then over prompts, so every prompt counts the same.

The fluency guard and the fluency metric score with the **frozen pretrained** model (``fluency.model: self``), never
with the policy being trained: the guard is part of the reward, which must stay fixed across rounds, and a policy
judging its own fluency could raise it by changing itself. Fine-tuning needs every prompt's rows to be one length
(one buffer); seqtree's checkpoints pad every row to their length, so any prompts file qualifies there.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqtree.buffer import result_rows
from seqtree.config import RecipeError
from seqtree.device import make_generator
from seqtree.finetune_eval import (
    distinct_kmer_fraction,
    kmer_size,
    mean_pairwise_hamming,
    pretrained_nelbo,
    reward_summary,
)
from seqtree.prompt_metrics import distinct_n
from seqtree.prompts import PreparedPrompts, prepare_prompts, prompt_objective, run_prompts
from seqtree.recipe import DesignRecipe

EVAL_CSV = "eval.csv"  # rounds/<k>/: one row per prompt, the plain samples' metrics
SAMPLES_CSV = "samples.csv"  # rounds/<k>/: every plain sample with its reward and fluency


def prepare(recipe: DesignRecipe) -> PreparedPrompts:
    """:func:`seqtree.prompts.prepare_prompts` plus what fine-tuning needs of the prompts: rows of one length, and
    no lab data (scored rows name no prompt). Errors name the field."""
    if recipe.finetune is not None and recipe.finetune.seed_buffer is not None:
        raise RecipeError(
            "finetune.seed_buffer: scored sequences carry no prompt, so they cannot seed the buffer of a prompts "
            "file's fine-tuning; remove finetune.seed_buffer or design.prompts_file"
        )
    prepared = prepare_prompts(recipe)
    lengths = sorted({len(root) for root in prepared.roots.values()})
    if len(lengths) > 1:
        raise RecipeError(
            f"design.prompts_file: fine-tuning keeps one replay buffer of rows of one length, but model "
            f"{recipe.model.name!r} frames these prompts in rows of {lengths[0]} to {lengths[-1]} tokens (its rows are "
            "not padded to its length); fine-tune on prompts of one length in tokens"
        )
    return prepared


def with_pretrained_fluency(prepared: PreparedPrompts, pretrained) -> PreparedPrompts:
    """``prepared`` whose ``self`` fluency scores with ``pretrained`` (a LoadedModel holding the frozen copy) instead
    of the model being trained (module docstring); a causal LM scorer is kept."""
    from seqtree.oracles.fluency import SelfNelboFluency

    if not isinstance(prepared.scorer, SelfNelboFluency):
        return prepared
    scorer = SelfNelboFluency(pretrained, samples=prepared.scorer.samples, seed=prepared.scorer.seed)
    return dataclasses.replace(prepared, scorer=scorer)


# ------------------------------------------------------------------------------------------------------ search
@dataclass
class PromptsSearch:
    """One round's searches: each prompt's result (with its trajectories) and the merged run summary."""

    results: dict[str, Any]  # prompt id -> SearchResult
    summary: dict[str, Any]  # the round's prompts run summary.json
    algorithm: str

    @property
    def nfe(self) -> int:
        return sum(int(r.nfe) for r in self.results.values())

    @property
    def oracle_calls(self) -> int:
        return sum(int(r.oracle_calls) for r in self.results.values())

    @property
    def best_reward(self) -> float:
        """The mean over prompts of each prompt's best reward found (the searched objective, guard included)."""
        values = [float(r.best_reward) for r in self.results.values() if math.isfinite(float(r.best_reward))]
        return float(np.mean(values)) if values else math.nan

    def mean_reward(self, floor: float) -> float:
        """The mean over prompts of the mean reward of each prompt's designs above the floor."""
        means = []
        for result in self.results.values():
            scores = result.designs.scores
            valid = scores[scores > floor]
            if valid.numel():
                means.append(float(valid.mean()))
        return float(np.mean(means)) if means else math.nan


def search_round(
    recipe: DesignRecipe,
    prepared: PreparedPrompts,
    policy,
    out: Path,
    *,
    algorithm: str,
    params: dict[str, Any],
    seed: int,
    stop,
    progress: bool,
    log,
) -> PromptsSearch:
    """Search every prompt with ``policy`` (a LoadedModel) in lockstep, ``algorithm`` with ``params``, prompt i
    seeded ``seed`` + i, into ``out`` (removed first: it may hold the search of a round that was dropped)."""
    from seqtree.design import InterruptedBeforeStart
    from seqtree.recipe import SearchSection

    if out.exists():
        shutil.rmtree(out)
    round_recipe = recipe.model_copy(update={"seed": seed, "search": SearchSection(algorithm=algorithm, **params)})
    try:
        run = run_prompts(round_recipe, out=out, progress=progress, stop=stop, log=log,
                          prepared=dataclasses.replace(prepared, model=policy))  # fmt: skip
    except InterruptedBeforeStart:  # Ctrl-C before the round's searches began: the caller drops the round
        return PromptsSearch({}, {}, algorithm)
    return PromptsSearch(dict(run.result), run.summary, algorithm)


def prompt_rows(
    search: PromptsSearch, prepared: PreparedPrompts, mask_id: int, *, round_index: int, seed: int
) -> dict[str, torch.Tensor] | None:
    """Buffer rows of every prompt's designs, prompts in file order, or None when no prompt completed a design.
    A row's ``designed`` mask is its own prompt's free positions; its ``seed`` is the prompt's search seed."""
    parts = []
    for item in prepared.prompts:
        result = search.results.get(item.id)
        if result is None or not len(result.designs):
            continue
        designed = prepared.roots[item.id] == mask_id
        parts.append(result_rows(result, designed, round_index=round_index, seed=seed + item.index))
    if not parts:
        return None
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


# -------------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class PromptsEvaluation:
    """A round's plain samples: the metrics averaged over prompts (``metrics.csv``'s columns), one row per prompt
    (``eval.csv``) and every sample (``samples.csv``)."""

    metrics: dict[str, float]
    per_prompt: pd.DataFrame
    samples: pd.DataFrame

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)

    def write(self, folder: Path) -> None:
        from seqtree import rundir

        folder.mkdir(parents=True, exist_ok=True)
        rundir.write_atomic(folder / EVAL_CSV, self.per_prompt.to_csv(index=False))
        rundir.write_atomic(folder / SAMPLES_CSV, self.samples.to_csv(index=False))


@torch.no_grad()
def evaluate_prompts(
    recipe: DesignRecipe, policy, pretrained, prepared: PreparedPrompts, *, num_samples: int, seed: int
) -> PromptsEvaluation:
    """Draw ``num_samples`` plain samples of ``policy`` for every prompt (one generator seeded ``seed``, all prompts'
    rows batched), score each prompt's samples with the oracle and the fluency of ``prepared`` (which must score with
    the pretrained model), and measure them against ``pretrained`` (a LoadedModel of the frozen copy).

    Per prompt: the oracle's reward (mean, median, mean of the top 10 %, best; the recipe's ``oracle`` without the
    fluency guard, so that reward and fluency show apart), fluency (mean over the samples it can score), the share
    of samples the guard would floor (``fluency_floored``: below ``fluency.min_fluency``), the oracle's own floors
    (``invalid_fraction``), the pretrained NELBO, distinct 3-mers and word 2-grams of the completions and their mean
    pairwise Hamming distance. ``metrics``: each averaged over prompts, named as single-prompt fine-tuning names
    them (``eval_reward_mean``, ...), plus ``eval_fluency_mean``, ``eval_fluency_floored``, ``eval_distinct_2`` and
    the fluency model's rows (``eval_fluency_rows``, apart from ``eval_nfe``)."""
    from seqtree.design import build_problem
    from seqtree.generate import sample_sequences

    items = prepared.prompts
    tokenizer, mask_id = policy.tokenizer, policy.diffusion.mask_id
    roots = torch.stack([prepared.roots[item.id] for item in items]).repeat_interleave(num_samples, 0)
    generator = make_generator(seed, policy.device)
    drawn = sample_sequences(policy, roots, roots.shape[0], sampler="ancestral", num_steps=recipe.model.num_steps,
                             generator=generator)  # fmt: skip
    tokens = drawn.output.tokens.cpu()
    inner = prepared.oracle.oracle
    scalarize = build_problem(recipe, policy, prepared.oracle, prepared.roots[items[0].id]).scalarize
    min_fluency = prepared.fluency.min_fluency
    rows, samples, fluency_rows = [], [], 0
    for position, item in enumerate(items):
        part = slice(position * num_samples, (position + 1) * num_samples)
        sequences, rows_tokens = drawn.sequences[part], tokens[part]
        designed = prepared.roots[item.id] == mask_id
        _, fluency = prompt_objective(prepared, item, tokenizer.decode)
        failures_before = sum(dict(getattr(inner, "failures", {}) or {}).values())
        rewards = torch.as_tensor(prepared.oracle(sequences)).double()
        invalid = sum(dict(getattr(inner, "failures", {}) or {}).values()) - failures_before
        scores = scalarize(rewards.unsqueeze(-1) if rewards.dim() == 1 else rewards)
        scored = fluency.score(sequences)
        fluency_rows += fluency.count.rows
        fluent = [v if ok else math.nan for v, ok in zip(scored.values.tolist(), scored.valid.tolist())]
        completions = [tokenizer.decode(row[designed].tolist()) for row in rows_tokens]
        nats, bits = pretrained_nelbo(pretrained.denoiser, pretrained.diffusion, rows_tokens, designed, seed=seed)
        mean, median, top, best = reward_summary(scores)
        floored = [math.isnan(v) or (min_fluency is not None and v < min_fluency) for v in fluent]
        known = [v for v in fluent if not math.isnan(v)]
        rows.append({
            "prompt_id": item.id, "prompt": item.text, "samples": num_samples, "reward_mean": mean,
            "reward_median": median, "reward_top10": top, "reward_best": best,
            "fluency_mean": float(np.mean(known)) if known else math.nan,
            "fluency_floored": float(np.mean(floored)) if min_fluency is not None else 0.0,
            "invalid_fraction": invalid / num_samples, "pretrained_nll_nats": nats, "pretrained_bits_per_token": bits,
            "distinct_kmers": distinct_kmer_fraction(completions, kmer_size(completions)),
            "kmer_k": kmer_size(completions), "distinct_2": distinct_n(completions, 2),
            "mean_hamming": mean_pairwise_hamming(rows_tokens, designed),
        })  # fmt: skip
        samples.extend(
            {"prompt_id": item.id, "sample": i, "completion": c, "reward": float(s), "fluency": f, "sequence": q}
            for i, (c, s, f, q) in enumerate(zip(completions, scores.tolist(), fluent, sequences))
        )
    per_prompt = pd.DataFrame(rows)

    def over(column: str) -> float:
        values = per_prompt[column].dropna()
        return float(values.mean()) if len(values) else math.nan

    metrics = {
        "eval_reward_mean": over("reward_mean"), "eval_reward_median": over("reward_median"),
        "eval_reward_top10": over("reward_top10"), "eval_reward_best": over("reward_best"),
        "pretrained_nll_nats": over("pretrained_nll_nats"),
        "pretrained_bits_per_token": over("pretrained_bits_per_token"),
        "distinct_kmers": over("distinct_kmers"), "kmer_k": int(per_prompt["kmer_k"].max()),
        "mean_hamming": over("mean_hamming"), "invalid_fraction": over("invalid_fraction"),
        "eval_nfe": int(drawn.output.nfe), "eval_oracle_calls": len(items) * num_samples,
        "eval_fluency_mean": over("fluency_mean"), "eval_fluency_floored": over("fluency_floored"),
        "eval_distinct_2": over("distinct_2"), "eval_fluency_rows": fluency_rows, "prompts": len(items),
    }  # fmt: skip
    return PromptsEvaluation(metrics, per_prompt, pd.DataFrame(samples))
