"""Wall time of every shipped design recipe and its split between denoiser, oracle and search engine.

``python -m bench recipes --out DIR`` runs each ``recipes/*.yaml`` as shipped (full budget) into DIR/<recipe> and
writes ``recipes.csv``: wall seconds, NFE, oracle calls, best reward, and the shares of the search time spent in the
denoiser forward, in the oracle and in the engine (everything else: tree bookkeeping, sampling, decoding).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def run(out: Path, recipes: list[Path]) -> pd.DataFrame:
    from seqtree.design import run_design
    from seqtree.recipe import load_design_recipe

    rows = []
    for path in recipes:
        recipe = load_design_recipe(path)
        run = run_design(recipe, out=out / path.stem)
        s = run.summary
        split = s["time_split"]
        total = max(sum(split.values()), 1e-9)
        rows.append({
            "recipe": path.name, "algorithm": s["algorithm"], "seconds": s["seconds"], "nfe": s["nfe"],
            "oracle_calls": s["oracle_calls"], "best_reward": s["best_reward"], "stop": s["stop_reason"],
            "denoiser_share": split["denoiser_seconds"] / total, "oracle_share": split["oracle_seconds"] / total,
            "engine_share": split["engine_seconds"] / total,
        })  # fmt: skip
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "recipes.csv", index=False)
    print(table.to_string(index=False, float_format="%.3g"))
    return table
