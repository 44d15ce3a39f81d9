"""The design recipe (``seqtree design recipe.yaml``): one YAML file = one experiment, validated by pydantic.

Sections and their fields are documented field by field (``description=``); the README's recipe reference is
generated from this module (``python -m seqtree.recipe``) and a test keeps the two equal. The ``oracle:`` section is
the oracle spec of :mod:`seqtree.oracles` and ``search:`` holds ``algorithm`` plus that algorithm's own parameters
(:data:`seqtree.search.ALGORITHMS`); both are validated here too, so every error names its field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seqtree.config import RecipeError, RecipeModel, apply_overrides, format_validation_error, read_yaml
from seqtree.search.registry import ALGORITHMS

# Parameters the design run sets itself from other sections; a recipe may not set them under search:.
RUN_OWNED_PARAMS = ("resume_from", "save_to")


class _Strict(RecipeModel):
    """Unknown fields are errors; a number written as one of a text field's choices is that choice."""


class ModelSection(_Strict):
    name: str = Field("protein-tiny", description="shipped checkpoint name, local folder, or Hugging Face hub id")
    trust_remote_code: bool = Field(False, description="allow a hub model's own code to run (only when named)")
    num_steps: int = Field(32, ge=1, description="reverse diffusion steps from fully masked to complete")
    branch_every: int = Field(4, ge=1, description="steps per tree edge: the search branches every this many steps")
    temperature: float = Field(1.0, ge=0.0, description="sampling temperature of the proposal")
    top_k: int | None = Field(None, ge=1, description="keep the k most likely tokens")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass")
    cache: bool = Field(True, description="MDLM no-change cache (skip the denoiser when nothing unmasked)")
    device: str = Field("auto", description="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast of the denoiser's forward pass (bf16 / fp16: mixed precision on a GPU)"
    )
    cuda_graphs: bool = Field(
        False,
        description="on a GPU, replay the denoiser's forward pass from CUDA graphs (fp32 and bf16 checked on an H200)",
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, name: str) -> str:
        import torch

        name = name.strip().lower()
        if name != "auto":
            try:
                kind = torch.device(name).type
            except RuntimeError:
                raise ValueError("not a device name; use auto, cpu, cuda, cuda:N or mps") from None
            if kind not in ("cpu", "cuda", "mps"):
                raise ValueError("seqtree runs on auto, cpu, cuda, cuda:N or mps")
        return name


class DesignSection(_Strict):
    length: int | None = Field(None, ge=1, description="free tokens to design (after the prompt)")
    prompt: str = Field("", description="fixed prefix, e.g. MKT or a text prompt")
    scaffold: str | None = Field(None, description="template with _ at free positions, e.g. MKT____GG__")
    num_designs: int = Field(16, ge=1, description="designs written, best first")
    prompts_file: Path | None = Field(
        None, description="many prompts: one per line, or JSONL with id and prompt (relative to the recipe file)"
    )
    completions_per_prompt: int | None = Field(
        None, ge=1, description="completions written per prompt of prompts_file (default num_designs)"
    )
    prompt_batch: int = Field(16, ge=1, description="prompts searched together, their denoiser calls batched")

    @model_validator(mode="after")
    def _length_or_scaffold(self) -> DesignSection:
        if self.prompts_file is not None and (self.prompt or self.scaffold is not None):
            raise ValueError("give either prompts_file or prompt / scaffold, not both")
        if self.scaffold is not None:
            if self.length is not None or self.prompt:
                raise ValueError("give either scaffold or length (with an optional prompt), not both")
            if "_" not in self.scaffold:
                raise ValueError("scaffold has no free position (_)")
        elif self.length is None:
            raise ValueError("give length (free tokens after the prompt) or a scaffold")
        return self


class SearchSection(BaseModel):
    """``algorithm`` plus that algorithm's parameters (checked against its own parameter model)."""

    model_config = ConfigDict(extra="allow")
    algorithm: str = Field("dts_star", description="one of " + ", ".join(ALGORITHMS))

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in ALGORITHMS:
            raise ValueError(f"unknown search algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
        return name

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BudgetSection(_Strict):
    nfe: int | None = Field(None, ge=1, description="max denoiser rows evaluated")
    oracle_calls: int | None = Field(None, ge=1, description="max sequences scored by the oracle")
    seconds: float | None = Field(None, gt=0, description="wall-clock limit of the search")

    @model_validator(mode="after")
    def _bounded(self) -> BudgetSection:
        if self.nfe is None and self.oracle_calls is None and self.seconds is None:
            raise ValueError("set at least one of nfe, oracle_calls, seconds")
        return self


class OutputSection(_Strict):
    dir: Path | None = Field(None, description="run directory (default runs/<name>); --out overrides")
    fasta: bool | None = Field(None, description="write designs.fasta (default: for protein, DNA and Ehrlich models)")
    save_tree: bool = Field(False, description="keep the search tree (tree algorithms) as tree.safetensors")
    replay_buffer: Path | None = Field(
        None, description="append the designs' trajectories to this replay buffer (safetensors) for fine-tuning"
    )


class FluencySection(_Strict):
    """The fluency of each completion given its prompt (:mod:`seqtree.oracles.fluency`): minus bits per byte under
    the design model's own NELBO (``self``) or a causal LM's likelihood; a metric always, a constraint with
    ``min_fluency``, a reward term with ``weight``."""

    model: str = Field(
        "self", description="self (the design model's NELBO) or a causal LM folder / hub id (GPT-2 style)"
    )
    samples: int = Field(8, ge=1, description="diffusion times per completion of the self NELBO estimate")
    min_fluency: float | None = Field(
        None, le=0.0, description="completions less fluent get the oracle floor with a reason (minus bits per byte)"
    )
    weight: float = Field(0.0, description="reward + weight * fluency")


class FinetuneSection(_Strict):
    """``seqtree finetune``: rounds of search -> replay buffer -> WDCE (TR2-D2); ignored by ``seqtree design``."""

    rounds: int = Field(2, ge=1, description="search -> buffer -> train rounds")
    steps_per_round: int = Field(50, ge=1, description="gradient steps per round")
    batch_size: int = Field(32, ge=1, description="buffer rows per gradient step (each replicated R times)")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (TR2-D2: 1e-4)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    alpha: float = Field(0.1, gt=0, description="tilt temperature: target p_pre(x) exp(r(x) / alpha)")
    replicates: int = Field(16, ge=1, description="R, masked copies of each row per step (TR2-D2: 16)")
    weight_cap: float = Field(1e5, gt=0, description="cap of the 1 / lambda loss weight")
    gradient_clip: float | None = Field(1.0, gt=0, description="gradient norm clip (TR2-D2: 1.0)")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an EMA of the weights and search with it")
    buffer_capacity: int | None = Field(1024, ge=1, description="rows kept; the lowest-weighted are evicted")
    buffer_eviction: Literal["weight", "pareto"] = Field(
        "weight", description="weight, or pareto (a Pareto archive with crowding, several objectives)"
    )
    weight_normalization: Literal["round", "buffer"] = Field(
        "round", description="self-normalise the weights per round (rounds weigh equally) or over the whole buffer"
    )
    buffer_from: Literal["search", "policy"] = Field(
        "search", description="search, or policy: plain samples of the current policy at the same budget (baseline)"
    )
    seed_buffer: Path | None = Field(None, description="scored CSV / FASTA to seed the buffer with (lab data)")
    reward_columns: list[str] | None = Field(None, description="reward columns of seed_buffer's CSV (default reward)")
    eval_samples: int = Field(
        64, ge=1, description="plain samples of the policy scored after each round (per prompt with a prompts file)"
    )
    target_reward: float | None = Field(None, description="stop before the next round once the best reward reaches it")
    accelerator: str = Field("auto", description="Lightning accelerator for training: auto (a GPU if any), cpu, gpu")
    devices: int | str = Field(1, description="Lightning devices (several GPUs: DDP through strategy)")
    strategy: str = Field("auto", description="Lightning strategy, e.g. ddp")
    num_nodes: int = Field(1, ge=1, description="machines, each running `devices` DDP processes")
    precision: Literal["32", "bf16-mixed", "16-mixed"] = Field("32", description="Lightning precision")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")


class DesignRecipe(_Strict):
    name: str = Field(description="the experiment's name (the default run directory)")
    model: ModelSection = Field(default_factory=ModelSection)
    design: DesignSection
    oracle: dict[str, Any] = Field(description="oracle spec: a registered name, a weighted sum, a pareto vector")
    search: SearchSection = Field(default_factory=SearchSection)
    budget: BudgetSection
    seed: int = Field(0, description="seed of the search's torch.Generator")
    output: OutputSection = Field(default_factory=OutputSection)
    fluency: FluencySection | None = Field(None, description="fluency of completions (metric, constraint, term)")
    finetune: FinetuneSection | None = Field(None, description="fine-tuning rounds (seqtree finetune)")

    @model_validator(mode="after")
    def _sections(self) -> DesignRecipe:
        from seqtree.oracles import OracleSpec

        _validate_nested(OracleSpec, self.oracle, "oracle")
        params = self.search.params()
        owned = sorted(set(params) & set(RUN_OWNED_PARAMS))
        if owned:
            raise ValueError(f"search.{owned[0]} is set by the run (use output.save_tree and --resume)")
        _refuse_foreign_params(self.search.algorithm, params)
        _validate_nested(ALGORITHMS[self.search.algorithm].params, params, "search")
        return self

    def search_params(self):
        return ALGORITHMS[self.search.algorithm].params(**self.search.params())

    def oracle_spec(self):
        from seqtree.oracles import OracleSpec

        return OracleSpec.model_validate(self.oracle)


def _refuse_foreign_params(algorithm: str, params: dict[str, Any]) -> None:
    """A parameter of another algorithm under search: (left behind by ``--set search.algorithm=...``) is refused
    naming the algorithms it belongs to and how to switch, rather than dropped: dropping it would change what runs."""
    own = ALGORITHMS[algorithm].params.model_fields
    for key in params:
        owners = [name for name, spec in ALGORITHMS.items() if key not in own and key in spec.params.model_fields]
        if owners:
            names = owners[0] if len(owners) == 1 else f"{', '.join(owners[:-1])} and {owners[-1]}"
            raise ValueError(
                f"search.{key} belongs to {names}, not {algorithm}; to switch algorithms replace the whole section: "
                f"--set search='{{algorithm: {algorithm}}}' (with {algorithm}'s own parameters inside the braces)"
            )


def _validate_nested(model: type[BaseModel], data: dict[str, Any], prefix: str) -> None:
    """Validate a nested section with its own model; errors become one ValueError naming ``prefix.field``."""
    try:
        model.model_validate(data)
    except ValidationError as error:
        raise ValueError(format_validation_error(error, prefix).replace(f"{prefix}: ", f"{prefix}.", 1)) from None


def load_design_recipe(path: str | Path, overrides: list[str] | None = None) -> DesignRecipe:
    """Read (with includes), apply ``--set`` overrides, validate; any problem is a one-line :class:`RecipeError`."""
    data = apply_overrides(read_yaml(path), overrides or [])
    return validate_design_recipe(_prompts_file_from(data, Path(path)), str(path))


def _prompts_file_from(data: dict[str, Any], recipe: Path) -> dict[str, Any]:
    """``design.prompts_file`` relative to the recipe file named (the resolved recipe of a run holds it absolute)."""
    design = data.get("design")
    name = design.get("prompts_file") if isinstance(design, dict) else None
    if isinstance(name, str) and name and not Path(name).expanduser().is_absolute():
        data = {**data, "design": {**design, "prompts_file": str(recipe.parent / name)}}
    return data


def validate_design_recipe(data: dict[str, Any], source: str) -> DesignRecipe:
    try:
        return DesignRecipe.model_validate(data)
    except ValidationError as error:
        message = format_validation_error(error, source)
        # A nested section's own message already names its field ("oracle.x" / "search.x"): drop the wrapper.
        message = message.replace("Value error, ", "").replace(": (top level): ", ": ").replace(".(top level): ", ": ")
        raise RecipeError(message) from None


def reference_markdown() -> str:
    """The recipe reference: every section and field with its type, default and meaning."""
    lines = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    for section_name, field in DesignRecipe.model_fields.items():
        annotation = _section_type(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, sub in annotation.model_fields.items():
                lines.append(_row(f"{section_name}.{name}", sub))
        else:
            lines.append(_row(section_name, field))
    lines.append(
        "| search.* | | | the chosen algorithm's parameters: `python -c \"from seqtree.search import ALGORITHMS; "
        "print(ALGORITHMS['dts'].params.model_fields)\"` |"
    )
    return "\n".join(lines)


def _section_type(annotation):
    """The section model of ``Section`` or ``Section | None`` (an optional section lists its fields too)."""
    from typing import get_args

    members = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return members[0] if members else annotation


def _row(name: str, field) -> str:
    annotation = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
    if field.is_required():
        default = "required"
    elif field.default_factory is not None:
        default = "see section"
    else:
        default = f"`{field.default}`"
    return f"| `{name}` | {annotation.replace('|', 'or')} | {default} | {field.description or ''} |"


if __name__ == "__main__":
    print(reference_markdown())
