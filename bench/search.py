"""Benchmarks of the search engine.

- exactness: total variation to the exact tilted law pi*(x) ~ p_anc(x) exp(r(x) / alpha) versus NFE for DTS (the
  tree's own law, no extra model call; grown uniformly, the default, and by the paper's Boltzmann descent), SMC / FK
  steering (weighted particles, passes pooled by their evidence until the budget ends; with the FK difference
  potential and with none) and best-of-N with importance weights, on the enumerable toy of
  ``tests/test_search.py`` (4^5 sequences, the exact denoiser of :mod:`seqtree.testing`) at alpha 0.25, where
  TV(p_anc, pi*) = 0.76, from the model itself and from a proposal tempered to 0.7 (corrected by p / q);
- overhead: wall time of each algorithm beyond the denoiser's own forward time, as a ratio, with a small
  seqtree transformer (random weights; the engine's work does not depend on the weights) at L=128 on CPU;
- memory: bytes per node of a tree at L=256 filled to ``max_nodes`` nodes.
Writes ``exactness.csv/png``, ``overhead.csv`` and ``memory.csv`` under the output directory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _toy():
    from seqtree import testing as fakes  # the exact toy denoisers the tests use
    from seqtree.models.tokenizers import dna_tokenizer
    from seqtree.search import SearchProblem

    num_states, length, steps, alpha = 4, 5, 6, 0.25
    g = torch.Generator().manual_seed(0)
    denoiser = fakes.ExactJointDenoiser(fakes.random_joint(num_states, length, g), num_states, length)
    diffusion = denoiser.diffusion()
    base = fakes.ancestral_distribution(denoiser, diffusion, steps)
    rewards = torch.rand(num_states**length, generator=g, dtype=torch.float64) * 2.0
    rewards[int(base.argsort(descending=True)[20])] = 3.0
    target = fakes.tilted_distribution(base, rewards, alpha)
    problem = SearchProblem(
        denoiser, diffusion, dna_tokenizer(), fakes.TableOracle(rewards, "ACGT", length),
        torch.full((length,), fakes.MASK_ID), num_steps=steps, branch_every=2,
    )  # fmt: skip
    return fakes, problem, denoiser, target, alpha


def exactness(out: Path, quick: bool) -> pd.DataFrame:
    from seqtree.search import Budget, run_best_of_n, run_dts, run_smc

    fakes, problem, denoiser, target, alpha = _toy()
    size = target.numel()

    def tv(tokens, weights):
        w = weights.double() / weights.sum()
        return fakes.total_variation(fakes.empirical_distribution(denoiser.index_of(tokens), size, w), target)

    rows = []
    budgets = [2000, 8000] if quick else [2000, 8000, 32000, 64000]
    runs = {
        "dts": lambda problem, budget, g: _tree_law(run_dts(problem, budget, generator=g, leaves_per_iteration=8,
                                                            alpha=alpha).tree, alpha),
        "dts (boltzmann growth)": lambda problem, budget, g: _tree_law(run_dts(
            problem, budget, generator=g, leaves_per_iteration=8, alpha=alpha, growth="boltzmann").tree, alpha),
        "smc": lambda problem, budget, g: run_smc(problem, budget, generator=g, alpha=alpha),
        "smc (no potential)": lambda problem, budget, g: run_smc(problem, budget, generator=g, alpha=alpha,
                                                                 potential="none"),
        "best_of_n": lambda problem, budget, g: run_best_of_n(problem, budget, generator=g, num_samples=10**7,
                                                              batch_size=512, alpha=alpha),
    }  # fmt: skip
    for temperature in (1.0, 0.7):
        tempered = dataclasses.replace(problem, temperature=temperature)
        for seed in range(1 if quick else 3):
            for nfe in budgets:
                for name, run in runs.items():
                    result = run(tempered, Budget(nfe=nfe), torch.Generator().manual_seed(seed))
                    tokens, weights = result if isinstance(result, tuple) else (result.designs.tokens,
                                                                                 result.designs.weights)  # fmt: skip
                    rows.append((name, temperature, seed, nfe, tv(tokens, weights)))
    table = pd.DataFrame(rows, columns=["algorithm", "temperature", "seed", "nfe", "tv"])
    table.to_csv(out / "exactness.csv", index=False)
    _plot_exactness(table, out / "exactness.png")
    return table


def _tree_law(tree, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The terminal nodes of a DTS tree and the probability of drawing each from it (no model call)."""
    from seqtree.search import terminal_probabilities

    terminal = np.nonzero(tree.terminal[: tree.size])[0]
    return tree.token_tensor(terminal), torch.from_numpy(terminal_probabilities(tree, alpha)[terminal])


def _plot_exactness(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (name, temperature), group in table.groupby(["algorithm", "temperature"]):
        mean = group.groupby("nfe")["tv"].mean()
        style = "-" if temperature == 1.0 else "--"
        ax.plot(mean.index, mean.values, style, marker="o", label=f"{name}, T={temperature:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("NFE (denoiser rows)")
    ax.set_ylabel("TV to pi* (exact)")
    ax.set_title("Exactness on the 4^5 toy (alpha = 0.25)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def overhead(out: Path, quick: bool) -> pd.DataFrame:
    """Engine time beyond the denoiser's forward time, for each algorithm at one NFE budget."""
    from seqtree.diffusion import MaskedDiffusion
    from seqtree.models.tokenizers import protein_tokenizer
    from seqtree.models.transformer import SeqTreeTransformer, SeqTreeTransformerConfig
    from seqtree.search import ALGORITHMS, Budget, SearchProblem

    tokenizer = protein_tokenizer()
    length = 128
    torch.manual_seed(0)  # benchmark script: fixes the random weights of the timing model
    config = SeqTreeTransformerConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=256, num_layers=4, num_heads=4, max_positions=length
    )
    model = SeqTreeTransformer(config).eval()
    diffusion = MaskedDiffusion.for_tokenizer(tokenizer)

    def oracle(sequences: list[str]) -> torch.Tensor:  # cheap: the benchmark times the engine, not the oracle
        return torch.tensor([s.count("A") / max(len(s), 1) for s in sequences], dtype=torch.float64)

    @torch.no_grad()
    def denoiser(tokens, t):
        return model(tokens, t)

    problem = SearchProblem(
        denoiser, diffusion, tokenizer, oracle, torch.full((length,), tokenizer.mask_id), num_steps=32, branch_every=4
    )
    params = {
        "dts": {"leaves_per_iteration": 8},
        "dts_star": {"leaves_per_iteration": 8},
        "mcts": {"num_children": 8},
        "best_of_n": {"num_samples": 256, "batch_size": 32},
        "smc": {"num_particles": 32},
        "svdd": {"num_particles": 4, "num_candidates": 8},
        "beam": {"beam_width": 4, "branching": 8},
    }
    rows = []
    nfe = 300 if quick else 1500
    for name, spec in ALGORITHMS.items():
        start = time.perf_counter()
        r = spec.run(problem, Budget(nfe=nfe), generator=torch.Generator().manual_seed(0), **params[name])
        wall = time.perf_counter() - start
        forward = float(r.extras["denoiser_seconds"])
        calls = int(r.extras["denoiser_calls"])
        rows.append((name, r.nfe, calls, r.oracle_calls, wall, forward, (wall - forward) / forward))
    table = pd.DataFrame(
        rows, columns=["algorithm", "nfe", "denoiser_calls", "oracle_calls", "wall_s", "forward_s", "overhead_ratio"]
    )
    table.to_csv(out / "overhead.csv", index=False)
    return table


def memory(out: Path, max_nodes: int) -> pd.DataFrame:
    """Bytes per node of a tree at L=256 (protein vocabulary, uint8 tokens), filled by batches of children."""
    from seqtree.search import Tree

    length, batch = 256, 8192
    tree = Tree.create(
        torch.ones(length, dtype=torch.long), num_steps=256, branch_every=4, num_objectives=1, vocab_size=22,
        mask_id=1, capacity=1024,
    )  # fmt: skip
    tokens = torch.randint(2, 22, (batch, length))
    logp = torch.zeros(batch, 4)
    terminal = torch.zeros(batch, dtype=torch.bool)
    unmask = torch.full((batch, length), -1)  # nothing unmasked (memory does not depend on the values)
    rows, start = [], time.perf_counter()
    checkpoints = {10_000, 100_000, max_nodes}
    while tree.size < max_nodes:
        count = min(batch, max_nodes - tree.size)
        parents = np.random.default_rng(tree.size).integers(0, tree.size, count)
        tree.add_children(
            parents, tokens[:count], np.full(count, 4), logp[:count], logp[:count], terminal[:count], unmask[:count]
        )
        if any(tree.size >= c > tree.size - count for c in checkpoints):
            rows.append((tree.size, tree.capacity, tree.nbytes(), tree.nbytes() / tree.capacity,
                         tree.nbytes() / tree.size, time.perf_counter() - start))  # fmt: skip
    table = pd.DataFrame(
        rows, columns=["nodes", "capacity", "bytes", "bytes_per_slot", "bytes_per_node", "fill_seconds"]
    )
    table.to_csv(out / "memory.csv", index=False)
    return table


def run(out: Path, *, quick: bool = False, max_nodes: int = 1_000_000, only: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1 if only != "overhead" else torch.get_num_threads())
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        if only in (None, "exactness"):
            table = exactness(out, quick)
            print(table.groupby(["algorithm", "temperature", "nfe"])["tv"].mean().round(4))
        if only in (None, "memory"):
            print(memory(out, 100_000 if quick else max_nodes))
        if only in (None, "overhead"):
            print(overhead(out, quick).round(4))
    print(f"wrote {out}")
