"""DTS* against best-of-N at equal NFE on text-small and VADER: the measurement behind issue 15's alignment test
(``tests/test_alignment_text.py``), and the table its margin is derived from.

``python -m bench alignment --seeds 32 --out DIR`` runs, for each seed and each of the test's prompts, the test's
DTS*, best-of-N, and two arms that must not beat best-of-N: a reward-blind DTS* (the same tree with a UCT bonus so
large that selection ignores values) and best-of-N on other seeds. It prints, per arm and NFE, the per-seed
difference to best-of-N (mean over the prompts of the best reward each search found within that NFE) and writes
``alignment.csv`` (one row per arm, seed, prompt and NFE).

Every (arm, seed, prompt) search runs in its own thread with its own generator (``seed * 1000 + prompt index``),
their forward passes merged by one :class:`seqtree.lockstep.LockstepBatcher`: bitwise the same results as separate
runs, in a fraction of the time.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
PROMPTS_FILE = ROOT / "recipes/prompts/kjv-15.txt"

# DTS* for optimisation at a small budget: a narrow tree (widen while children < 0.5 N^0.5, so the root keeps 2 to 6
# children, where DTS*'s default 2 N^0.75 widens at almost every visit of a 192-NFE search and makes it a
# best-of-N), the max backup and a small UCT bonus (VADER's values differ by tenths). At its defaults DTS* is not
# ahead of best-of-N here (4 prompts, 8 seeds, 192 NFE: 0.667 against 0.689).
TUNED_DTS_STAR = {"leaves_per_iteration": 2, "widening_c": 0.5, "widening_a": 0.5, "backup": "max", "exploration": 0.1}


@dataclass(frozen=True)
class Setting:
    """One comparison: the prompts (their indices in kjv-15.txt), the completion, the reverse process, the budget
    per prompt and arm, and the arms as (algorithm, parameters)."""

    prompts: tuple[int, ...] = (0, 3, 6, 9)
    length: int = 20  # sub-word tokens of the completion
    num_steps: int = 8
    branch_every: int = 2
    nfe: int = 192
    arms: dict[str, tuple[str, dict]] = field(
        default_factory=lambda: {"dts_star": ("dts_star", TUNED_DTS_STAR), "best_of_n": ("best_of_n", {})}
    )


def arm_params(algorithm: str, params: dict) -> dict:
    """Best-of-N draws as many samples as the budget affords, one at a time, so that its best reward within any NFE
    is exact (a sample costs at most ``num_steps`` rows; steps that unmask nothing reuse the cached distribution)."""
    if algorithm == "best_of_n" and not params:
        return {"num_samples": 10**9, "batch_size": 1}
    return dict(params)


def best_rewards(
    model, setting: Setting, seeds: list[int], nfe_points: list[int] | None = None
) -> dict[str, np.ndarray]:
    """{arm: Float[len(seeds), len(prompts), len(nfe_points)]}: the best VADER reward each search found within each
    NFE of ``nfe_points`` (default: the setting's budget)."""
    from seqtree.generate import model_root
    from seqtree.lockstep import LockstepBatcher
    from seqtree.oracles import build_oracle
    from seqtree.prompt_file import read_prompts
    from seqtree.search import Budget, SearchProblem, run_search

    nfe_points = nfe_points or [setting.nfe]
    texts = [item.text for item in read_prompts(PROMPTS_FILE)]
    oracle = build_oracle("vader_sentiment")
    oracle_lock = threading.Lock()

    def scored(sequences):
        with oracle_lock:  # the oracle and its cache are shared by the threads
            return oracle(sequences)

    out = {arm: np.full((len(seeds), len(setting.prompts), len(nfe_points)), np.nan) for arm in setting.arms}
    batcher = LockstepBatcher(model.inference_denoiser)
    errors: list[BaseException] = []

    def one(arm: str, s: int, p: int, member) -> None:
        algorithm, params = setting.arms[arm]
        try:
            with member, torch.no_grad():
                problem = SearchProblem(
                    denoiser=member, diffusion=model.diffusion, tokenizer=model.tokenizer, oracle=scored,
                    root=model_root(model, length=setting.length, prompt=texts[setting.prompts[p]]),
                    num_steps=setting.num_steps, branch_every=setting.branch_every,
                )  # fmt: skip
                generator = torch.Generator().manual_seed(seeds[s] * 1000 + setting.prompts[p])
                result = run_search(algorithm, problem, Budget(nfe=max(nfe_points)), generator=generator,
                                    **arm_params(algorithm, params))  # fmt: skip
            nfe = np.array([point.nfe for point in result.curve])
            best = np.maximum.accumulate(np.array([point.best_reward for point in result.curve]))
            for k, point in enumerate(nfe_points):
                index = np.searchsorted(nfe, point, side="right") - 1
                out[arm][s, p, k] = best[index] if index >= 0 else np.nan
        except BaseException as error:  # noqa: BLE001 - raised in the calling thread after the join
            errors.append(error)

    threads = []
    for arm in setting.arms:
        for s in range(len(seeds)):
            for p in range(len(setting.prompts)):
                member = batcher.member()  # every member joins before any thread starts: none runs ahead alone
                threads.append(threading.Thread(target=one, args=(arm, s, p, member)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


def seed_differences(out: dict[str, np.ndarray], arm: str, baseline: str = "best_of_n", k: int = 0) -> np.ndarray:
    """Per seed: the mean over prompts of ``arm``'s best reward minus the baseline's, at the k-th NFE point."""
    return out[arm][:, :, k].mean(1) - out[baseline][:, :, k].mean(1)


def main(argv: list[str] | None = None) -> None:
    from seqtree.models.loading import load_model

    parser = argparse.ArgumentParser(prog="python -m bench alignment", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for alignment.csv")
    parser.add_argument("--seeds", type=int, default=32, help="seeds 0..S-1 (best-of-N's null: 100..100+S-1)")
    parser.add_argument("--nfe", type=int, nargs="+", default=[96, 128, 144, 160, 192], help="NFE points")
    args = parser.parse_args(argv)
    model = load_model("text-small")
    seeds = list(range(args.seeds))
    blind = ("dts_star", {**TUNED_DTS_STAR, "exploration": 1e6})
    setting = Setting(nfe=max(args.nfe), arms={**Setting().arms, "blind": blind})
    started = time.perf_counter()
    out = best_rewards(model, setting, seeds, args.nfe)
    other = Setting(nfe=max(args.nfe), arms={"best_of_n_other": ("best_of_n", {})})
    other_seeds = [100 + s for s in seeds]
    out.update(best_rewards(model, other, other_seeds, args.nfe))
    print(f"{len(seeds)} seeds, {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for arm, values in out.items():
        arm_seeds = other_seeds if arm in other.arms else seeds
        for s, p, k in np.ndindex(values.shape):
            row = {"arm": arm, "seed": arm_seeds[s], "prompt": setting.prompts[p], "nfe": args.nfe[k]}
            rows.append({**row, "best_reward": values[s, p, k]})
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "alignment.csv", index=False)
    for arm in ("dts_star", "blind", "best_of_n_other"):
        for k, point in enumerate(args.nfe):
            d = seed_differences(out, arm, k=k)
            print(f"{arm:>16} NFE {point}: difference to best-of-N {d.mean():+.4f} (sd {d.std(ddof=1):.4f}), ahead on "
                  f"{(d > 0).sum()}/{len(d)} seeds, 5th percentile {np.percentile(d, 5):+.4f}")  # fmt: skip
    print(f"written {args.out / 'alignment.csv'}")
