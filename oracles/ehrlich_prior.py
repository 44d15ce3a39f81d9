"""A prior for any Ehrlich instance: its training data, its training recipe and a design recipe that searches it.

An Ehrlich function's feasible set is the support of its own discrete Markov process (DMP; Stanton et al. 2024,
sec. 3), so the benchmark's prior is a denoiser pretrained on draws of that process (what holo draws for
``Ehrlich.initial_solution``): it knows what is feasible and nothing about the motifs. :func:`prepare_instance`
writes, for any :class:`~seqtree.oracles.ehrlich_instances.EhrlichInstance`, everything a user needs to go from
the parameters to a search, with the shipped instances' settings (``recipes/train/ehrlich-l*-tiny.yaml`` and
``recipes/ehrlich.yaml``) so a new instance is treated as the benchmark ones are::

    seqtree ehrlich prepare v=32,L=64,c=2,k=4,seed=1 --out runs/ehrlich/v32-l64
    seqtree train runs/ehrlich/v32-l64/train.yaml        # the prior (a character tokenizer over the v letters)
    seqtree finetune runs/ehrlich/v32-l64/design.yaml    # or seqtree design ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from seqtree.oracles.ehrlich import BENCHMARK_INSTANCES
from seqtree.oracles.ehrlich_instances import EhrlichInstance

SOURCE_ROOT = Path(__file__).resolve().parents[1]
TRAIN_TEMPLATES = {32: "recipes/train/ehrlich-l32-tiny.yaml", 128: "recipes/train/ehrlich-l128-tiny.yaml"}
DESIGN_TEMPLATE = "recipes/ehrlich.yaml"
INSTANCE_FILE = "instance.json"


def default_sizes(instance: EhrlichInstance) -> tuple[int, int]:
    """Training and validation sequences: the shipped sizes (20000 / 1000 up to L=64, 8000 / 500 beyond, about
    0.6-1 M tokens either way; each sequence holds L - 1 transitions of the DMP)."""
    return (20000, 1000) if instance.dim <= 64 else (8000, 500)


def default_data_seed(instance: EhrlichInstance) -> int:
    """The seed of the data draws: 1000 + the benchmark instance's index for the shipped ones (so their files are
    rebuilt byte for byte), 1000 + the instance's seed otherwise; never the function's own seed."""
    names = list(BENCHMARK_INSTANCES)
    return 1000 + (names.index(instance.name) if instance.is_benchmark else instance.seed)


def write_lines(path: Path, lines: list[str]) -> None:
    from seqtree.rundir import write_atomic

    write_atomic(path, "".join(f"{line}\n" for line in lines))


def draw_prior_data(
    instance: EhrlichInstance, out: Path, *, n_train: int, n_val: int, data_seed: int
) -> dict[str, Any]:
    """Write ``out/train.txt`` and ``out/val.txt``: ``n_train + n_val`` i.i.d. draws of the instance's DMP from its
    stationary distribution (``torch.Generator().manual_seed(data_seed)``), the first ``n_val`` for validation,
    one sequence of state letters per line; returns what was written and the data's reward statistics."""
    if n_train < 1 or n_val < 1:
        raise ValueError(f"need at least one training and one validation sequence, got {n_train} and {n_val}")
    oracle = instance.oracle()
    sequences = oracle.sample_feasible(n_train + n_val, generator=torch.Generator().manual_seed(data_seed))
    rewards = oracle(sequences).tolist()
    write_lines(out / "val.txt", sequences[:n_val])
    write_lines(out / "train.txt", sequences[n_val:])
    return {
        "instance": instance.name,
        "ehrlich": instance.params,
        "alphabet": instance.alphabet,
        "data_seed": data_seed,
        "train": {"path": str(out / "train.txt"), "sequences": n_train},
        "val": {"path": str(out / "val.txt"), "sequences": n_val},
        "feasible_fraction": sum(r > -1.0 for r in rewards) / len(rewards),
        "mean_reward": sum(rewards) / len(rewards),
        "max_reward": max(rewards),
        "optimal_solution": oracle.optimal_solution(),
    }


def _template(relative: str) -> dict[str, Any]:
    path = SOURCE_ROOT / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the shipped recipe this command copies its settings from is missing; run it from a seqtree "
            "source checkout (pip install -e .)"
        )
    return yaml.safe_load(path.read_text())


def training_recipe(
    instance: EhrlichInstance, data_dir: Path, *, max_steps: int | None = None, threads: int | None = 1
) -> dict[str, Any]:
    """The training recipe of the instance's prior: the shipped Ehrlich prior's (dilated CNN; the L=32 recipe up to
    L=64, the L=128 one beyond) on ``data_dir``'s files, with the instance's alphabet as the character tokenizer
    and the model exported to ``data_dir/model``."""
    recipe = _template(TRAIN_TEMPLATES[32 if instance.dim <= 64 else 128])
    name = f"{instance.name}-prior"
    recipe.update(name=name, alphabet=instance.alphabet, output_dir=str(data_dir / "train"),
                  export_dir=str(data_dir / "model"))  # fmt: skip
    recipe["data"].update(train=str(data_dir / "train.txt"), val=str(data_dir / "val.txt"), max_length=instance.dim)
    if max_steps is not None:
        training = recipe["training"]
        training["max_steps"] = max_steps
        for key in ("warmup_steps", "val_every_steps", "checkpoint_every_steps"):
            training[key] = max(1, min(training[key], max_steps // 4 if key == "warmup_steps" else max_steps))
    recipe["training"]["threads"] = threads
    return recipe


def design_recipe(instance: EhrlichInstance, model: str | Path) -> dict[str, Any]:
    """``recipes/ehrlich.yaml`` (DTS*, its budget and its ``finetune:`` section) for this instance: the prior at
    ``model``, the instance's length and oracle, the benchmark's decoding schedule (min(L, 64) steps, 8 branch
    points per trajectory, as ``seqtree bench ehrlich``)."""
    recipe = _template(DESIGN_TEMPLATE)
    num_steps = min(instance.dim, 64)
    recipe["name"] = instance.name
    recipe["model"].update(name=str(model), num_steps=num_steps, branch_every=max(1, num_steps // 8))
    recipe["design"]["length"] = instance.dim
    recipe["oracle"] = {"name": "ehrlich", "params": {**instance.params, "alphabet": instance.alphabet}}
    return recipe


def write_yaml(path: Path, data: dict[str, Any], header: str) -> None:
    from seqtree.rundir import write_atomic

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    write_atomic(path, "".join(f"# {line}\n" for line in header.splitlines()) + body)


def prepare_instance(
    instance: EhrlichInstance,
    out: Path,
    *,
    n_train: int | None = None,
    n_val: int | None = None,
    data_seed: int | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Write into ``out``: the prior's data (:func:`draw_prior_data`), ``instance.json`` (parameters, alphabet,
    data statistics, a known optimum), ``train.yaml`` (:func:`training_recipe`) and ``design.yaml``
    (:func:`design_recipe` on the model ``train.yaml`` exports). Paths inside the recipes are absolute, so they run
    from any directory. Every file is written atomically; rerunning gives the same files."""
    out = Path(out).resolve()
    default_train, default_val = default_sizes(instance)
    info = draw_prior_data(
        instance, out, n_train=n_train or default_train, n_val=n_val or default_val,
        data_seed=default_data_seed(instance) if data_seed is None else data_seed,
    )  # fmt: skip
    from seqtree.rundir import write_json

    write_json(out / INSTANCE_FILE, info)
    train = training_recipe(instance, out, max_steps=max_steps)
    write_yaml(out / "train.yaml", train, f"The prior of {instance.name}: seqtree train {out / 'train.yaml'}")
    design = design_recipe(instance, train["export_dir"])
    write_yaml(
        out / "design.yaml", design,
        f"Search {instance.name} with its prior (train it first with train.yaml):\n"
        f"seqtree design {out / 'design.yaml'}   or   seqtree finetune {out / 'design.yaml'}",
    )  # fmt: skip
    return info
