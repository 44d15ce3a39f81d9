"""The training recipe (``seqtree train recipe.yaml``): a pydantic model; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from seqtree.config import RecipeModel

CHARACTER_DOMAINS = ("dna", "protein", "ehrlich")


class _Strict(RecipeModel):
    """Unknown fields are errors; a number written as one of a text field's choices is that choice."""


class TrainData(_Strict):
    train: Path = Field(description="training sequences (FASTA, .smi or .txt, one per line)")
    val: Path = Field(description="validation sequences, same formats")
    max_length: int = Field(128, ge=1, description="tokens per row; longer sequences are cropped")
    batch_size: int = Field(64, ge=1, description="rows per step and process (DDP: x processes)")
    num_workers: int = Field(0, ge=0)
    max_train_sequences: int | None = Field(None, ge=1, description="use only the first N training sequences")


class TrainModel(_Strict):
    architecture: Literal["transformer", "dilated_cnn"] = "transformer"
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1, description="transformer only")
    kernel_size: int = Field(5, ge=1, description="dilated_cnn only")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    time_conditioning: bool = Field(False, description="False: time-independent denoiser (RADD)")


class TrainDiffusion(_Strict):
    schedule: Literal["loglinear", "linear", "cosine"] = "loglinear"
    eps: float = Field(1e-3, gt=0.0, lt=1.0)


class TrainOptim(_Strict):
    max_steps: int = Field(1000, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(100, ge=0)
    gradient_clip: float | None = Field(None, gt=0.0, description="clip the gradient norm to this (None: no clipping)")
    val_every_steps: int = Field(250, ge=1)
    checkpoint_every_steps: int = Field(250, ge=1)
    seed: int = 0
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    accelerator: str = Field("auto", description="Lightning accelerator: cpu, gpu, auto, ...")
    devices: int | str = Field(
        1, description="Lightning devices per node: a count, -1 or 'auto' for all, or a list such as '0,1'"
    )
    strategy: str = Field("auto", description="Lightning strategy: auto, ddp, fsdp, ...")
    num_nodes: int = Field(1, ge=1, description="machines, each running `devices` processes")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's choice")


class TrainRecipe(_Strict):
    domain: Literal["dna", "protein", "smiles", "selfies", "text", "ehrlich"] = Field(
        description="the tokenizer: characters (dna, protein, ehrlich), atom-level SMILES, SELFIES symbols "
        "(smiles and selfies fit their vocabulary on the training data), or UTF-8 bytes (text)"
    )
    name: str = Field(description="checkpoint name, e.g. protein-tiny")
    alphabet: str | None = Field(
        None,
        description="letters of a character tokenizer (dna, protein, ehrlich), e.g. the 32 states of an Ehrlich "
        "instance; default: the domain's own alphabet",
    )
    tokenizer: Path | None = Field(
        None,
        description="a Hugging Face tokenizers JSON with <pad> and <mask> tokens (byte-level BPE trained offline, e.g. "
        "by data/text/tokenizer.py) instead of the domain's own tokenizer; the checkpoint keeps a copy",
    )
    data: TrainData
    model: TrainModel = TrainModel()
    diffusion: TrainDiffusion = TrainDiffusion()
    training: TrainOptim = TrainOptim()
    output_dir: Path = Field(Path("runs/train"), description="Lightning logs and resumable checkpoints")
    export_dir: Path | None = Field(
        None, description="where the final Hugging Face folder goes; default output_dir/model"
    )
    report_samples: int = Field(
        64,
        ge=0,
        description="samples per sampler in the model card's sample report (0: no report); the shipped cards used 512",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainRecipe:
        if self.model.architecture == "transformer" and self.model.hidden_size % self.model.num_heads:
            width, heads = self.model.hidden_size, self.model.num_heads
            raise ValueError(f"model.hidden_size {width} must be divisible by model.num_heads {heads}")
        if self.model.architecture == "dilated_cnn" and self.model.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size must be odd, got {self.model.kernel_size}")
        if self.alphabet is not None and self.tokenizer is not None:
            raise ValueError("alphabet and tokenizer both name the tokenizer; give one of them")
        if self.alphabet is not None:
            if self.domain not in CHARACTER_DOMAINS:
                raise ValueError(
                    f"alphabet is for the character domains {', '.join(CHARACTER_DOMAINS)}; the {self.domain} "
                    "domain's tokenizer is not a character alphabet"
                )
            repeated = sorted({c for c in self.alphabet if self.alphabet.count(c) > 1})
            if not self.alphabet or repeated:
                raise ValueError(f"alphabet must be non-empty with distinct letters; repeated: {''.join(repeated)!r}")
        return self

    def resolve_paths(self, base: Path) -> TrainRecipe:
        """Relative data paths are relative to the recipe's folder's project root (the current directory first)."""

        def fix(path: Path) -> Path:
            if path.is_absolute() or path.exists():
                return path
            candidate = base / path
            return candidate if candidate.exists() else path

        data = self.data.model_copy(update={"train": fix(self.data.train), "val": fix(self.data.val)})
        tokenizer = fix(self.tokenizer) if self.tokenizer is not None else None
        return self.model_copy(update={"data": data, "tokenizer": tokenizer})
