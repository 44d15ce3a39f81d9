"""Throughput benchmark of every registered oracle: sequences per second at batch 1 and batch N.

    python -m seqtree.oracles.bench [--n 1000] [--budget-s 3] [--only qed,gc_content] [--threads 2]

For each oracle: ``plain`` calls the oracle directly on distinct valid sequences; ``cache cold`` wraps it in a
:class:`CachedOracle` and scores them once (all misses, so it measures the wrapper's overhead); ``cache warm``
scores the same sequences again (all hits). Batch 1 runs sequences one by one until the time budget is spent.
Models load before timing (a warm-up call). Text models are the tiny random test models, so their numbers show the
pipeline's cost, not that of a real checkpoint.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable

import torch

from seqtree.oracles.base import Oracle
from seqtree.oracles.cache import CachedOracle
from seqtree.oracles.registry import available_oracles, build_oracle
from seqtree.oracles.testing import example_params

_WORDS = "good bad day night happy sad cat dog the a is was very not quite great awful fine".split()
_DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "OC(=O)c1ccccc1O",
    "c1ccc2ccccc2c1", "CCN(CC)CCNC(=O)c1ccc(N)cc1", "CC(=O)Nc1ccc(O)cc1", "c1ccccc1", "c1ccncc1", "Cc1ccccc1",
    "Oc1ccccc1", "CN1CCCC1c1cccnc1", "CCN(CC)CC(=O)Nc1c(C)cccc1C", "CN(C)CCOC(c1ccccc1)c1ccccc1",
    "CCOC(=O)c1ccc(N)cc1", "CN(C)C(=N)NC(=N)N", "c1ccc2[nH]ccc2c1", "Cn1c(=O)c2[nH]cnc2n(C)c1=O",
]
_HEADS = ["", "O", "N", "S", "F", "Cl", "Br"]


def _drug_like(n: int) -> list[str]:
    """n distinct valid drug-like SMILES: a small drug behind a short substituent chain (a head atom and a few C)."""
    from rdkit import Chem

    out: dict[str, None] = {}
    for chain in range(64):
        for head in _HEADS:
            for drug in _DRUGS:
                smi = head + "C" * chain + drug
                if smi not in out and Chem.MolFromSmiles(smi) is not None:
                    out[smi] = None
                if len(out) == n:
                    return list(out)
    return list(out)


def distinct_sequences(oracle: Oracle, domain: str, n: int, generator: torch.Generator) -> list[str]:
    """n distinct valid sequences of the oracle's domain."""
    def pick(alphabet: str, length: int) -> str:
        idx = torch.randint(len(alphabet), (length,), generator=generator).tolist()
        return "".join(alphabet[i] for i in idx)

    if domain == "ehrlich":
        return oracle.sample_feasible(n, generator=generator)  # type: ignore[attr-defined]
    if domain == "protein":
        return [pick("ACDEFGHIKLMNPQRSTVWY", 40) for _ in range(n)]
    if domain == "dna":
        return [pick("ACGT", 100) for _ in range(n)]
    if domain == "smiles":
        return _drug_like(n)
    return [" ".join(_WORDS[i] for i in torch.randint(len(_WORDS), (8,), generator=generator).tolist())
            + f" {k}" for k in range(n)]


def throughput(score: Callable[[list[str]], object], seqs: list[str], batch: int, budget_s: float) -> float:
    """Sequences per second scoring ``seqs`` in batches of ``batch`` (stops early after ``budget_s``)."""
    done, start = 0, time.perf_counter()
    for i in range(0, len(seqs), batch):
        score(seqs[i : i + batch])
        done += len(seqs[i : i + batch])
        if time.perf_counter() - start > budget_s:
            break
    return done / (time.perf_counter() - start)


def bench_oracle(oracle_factory: Callable[[], Oracle], domain: str, n: int, budget_s: float) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    plain = oracle_factory()
    seqs = distinct_sequences(plain, domain, n, g)
    plain(seqs[:2])  # warm-up: load models
    row = {}
    for batch in (1, n):
        row[f"plain@{batch}"] = throughput(plain, seqs, batch, budget_s)
        cached = CachedOracle(plain)
        row[f"cold@{batch}"] = throughput(cached, seqs, batch, budget_s)
        done = cached.calls  # only the sequences scored in the cold pass are cached
        row[f"warm@{batch}"] = throughput(cached, seqs[:done], batch, budget_s)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seqtree.oracles.bench", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="batch size of the large batch (and number of sequences)")
    p.add_argument("--budget-s", type=float, default=3.0, help="time budget per measurement")
    p.add_argument("--only", default="", help="comma-separated oracle names")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    only = {s for s in args.only.split(",") if s}
    cols = [f"{kind}@{b}" for b in (1, args.n) for kind in ("plain", "cold", "warm")]
    print(f"sequences/s, torch threads={torch.get_num_threads()}; plain = no cache, cold = cache misses, "
          "warm = cache hits")
    print("| oracle | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    with tempfile.TemporaryDirectory() as tmp:
        for info in available_oracles():
            if only and info.name not in only:
                continue
            try:
                params = example_params(info.name, tmp)
                factory = functools.partial(build_oracle, info.name, **params)
                row = bench_oracle(factory, info.domain, args.n, args.budget_s)
            except ImportError as err:
                print(f"| {info.name} | skipped: {err} |")
                continue
            print(f"| {info.name} | " + " | ".join(f"{row[c]:,.0f}" for c in cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
