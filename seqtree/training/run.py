"""``seqtree train``: pretrain a denoiser from a recipe, resumably, and export a Hugging Face folder with a card.

The run directory holds Lightning's resumable checkpoints (``checkpoints/last.ckpt``) and a CSV log
(``csv/metrics.csv``); the export folder holds ``config.json``, ``model.safetensors``, the tokenizer file and a
model card (``README.md``) with the command, data, parameters, validation bits per token and bits per UTF-8 byte
beside the unigram baseline in the same units, and training time.

Several devices and nodes (``training.devices``, ``strategy``, ``num_nodes``: Lightning's DDP or FSDP): every
process runs this function; Lightning relaunches the command line for the other local ranks (or torchrun / SLURM
starts them all). Each rank trains on its shard of the data (Lightning's DistributedSampler) with its own noise
draws, so one step is ``batch_size`` x processes rows; ``max_steps`` counts optimizer steps, and validation adds
the ranks' sums. Only global rank 0 writes: Lightning's checkpoints and CSV log, and the export folder, which is
rebuilt from ``last.ckpt`` (the full weights whatever the strategy sharded).
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

import seqtree.models.loading  # noqa: F401  (registers the backbones with transformers Auto classes)
from seqtree.device import set_threads
from seqtree.diffusion import MaskedDiffusion
from seqtree.models.dilated_cnn import DilatedCNN, DilatedCNNConfig
from seqtree.models.tokenizers import (
    FITTED_DOMAINS,
    CharTokenizer,
    SubwordTokenizer,
    Tokenizer,
    tokenizer_for_domain,
)
from seqtree.models.transformer import SeqTreeTransformer, SeqTreeTransformerConfig
from seqtree.schedules import make_schedule
from seqtree.training.data import ByteCounter, SequenceDataModule, read_sequences
from seqtree.training.pretrain import MaskedDiffusionLM
from seqtree.training.ranks import rank_seed
from seqtree.training.recipe import TrainRecipe

LAST_CHECKPOINT = "last.ckpt"


@dataclass(frozen=True)
class TrainSummary:
    export_dir: Path
    val_bits_per_token: float
    unigram_bits_per_token: float
    steps: int
    seconds: float
    tokens_per_second: float
    first_train_loss: float | None  # None on ranks other than 0, which do not read the log
    last_train_loss: float | None
    processes: int = 1  # DDP / FSDP world size
    val_bits_per_byte: float | None = None  # NELBO bits over the UTF-8 bytes the validation tokens decode to
    unigram_bits_per_byte: float | None = None
    val_tokens: int | None = None  # real (non-padding) validation tokens scored
    val_bytes: int | None = None  # UTF-8 bytes those tokens decode to
    cpu_seconds: float | None = None  # CPU time of this process during fit (all its threads); on a shared machine
    # the wall-clock ``seconds`` also count time other processes held the cores


def build_backbone(recipe: TrainRecipe, tokenizer: Tokenizer) -> torch.nn.Module:
    m = recipe.model
    extra = {
        "noise_schedule": recipe.diffusion.schedule,
        "noise_eps": recipe.diffusion.eps,
        "domain": recipe.domain,
        "mask_token_id": tokenizer.mask_id,
        "pad_token_id": tokenizer.pad_id,
    }
    if m.architecture == "transformer":
        config = SeqTreeTransformerConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=m.hidden_size,
            num_layers=m.num_layers,
            num_heads=m.num_heads,
            max_positions=recipe.data.max_length,
            dropout=m.dropout,
            time_conditioning=m.time_conditioning,
            **extra,
        )
        return SeqTreeTransformer(config)
    config = DilatedCNNConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        kernel_size=m.kernel_size,
        dropout=m.dropout,
        max_positions=recipe.data.max_length,
        time_conditioning=m.time_conditioning,
        **extra,
    )
    return DilatedCNN(config)


def build_tokenizer(recipe: TrainRecipe) -> Tokenizer:
    """The recipe's ``tokenizer`` file (sub-words trained offline), the domain's tokenizer, or a character tokenizer
    over the recipe's ``alphabet`` (named after the domain, so a 32-state Ehrlich prior is still an Ehrlich
    checkpoint; DNA and protein letters stay case-insensitive when the alphabet is upper case)."""
    if recipe.tokenizer is not None:
        return SubwordTokenizer.from_file(recipe.tokenizer)
    if recipe.alphabet is not None:
        upper = recipe.alphabet == recipe.alphabet.upper() and recipe.domain in ("dna", "protein")
        return CharTokenizer(recipe.alphabet, name=recipe.domain, case_insensitive=upper)
    texts = read_sequences(recipe.data.train) if recipe.domain in FITTED_DOMAINS else None
    return tokenizer_for_domain(recipe.domain, texts)


def train_losses(csv_dir: Path) -> list[float]:
    """Training losses logged so far, across the original run and every resumed attempt, in step order."""
    import pandas as pd

    frames = [
        pd.read_csv(p) for p in sorted(csv_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    ]
    frames = [f for f in frames if "train_loss" in f]
    if not frames:
        return []
    merged = pd.concat(frames).dropna(subset=["train_loss"]).sort_values("step", kind="stable")
    return merged["train_loss"].tolist()


def train(
    recipe: TrainRecipe,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainSummary:
    """Fit, (optionally) resume from ``output_dir/checkpoints/last.ckpt``, export and write the model card (its
    sample report with ``recipe.report_samples`` samples per sampler, each batch of them told to ``log``)."""
    opt = recipe.training
    set_threads(opt.threads)
    L.seed_everything(opt.seed, workers=True, verbose=False)
    output_dir = Path(recipe.output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    last = checkpoint_dir / LAST_CHECKPOINT
    if resume and not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {last}; run without --resume first")
    if not resume and last.is_file():
        raise FileExistsError(
            f"{output_dir} already holds a run; pass --resume to continue it or choose another output_dir"
        )

    tokenizer = build_tokenizer(recipe)
    data = SequenceDataModule(
        tokenizer,
        recipe.data.train,
        recipe.data.val,
        max_length=recipe.data.max_length,
        batch_size=recipe.data.batch_size,
        num_workers=recipe.data.num_workers,
        max_train_sequences=recipe.data.max_train_sequences,
    )
    backbone = build_backbone(recipe, tokenizer)
    diffusion = MaskedDiffusion.for_tokenizer(tokenizer, make_schedule(recipe.diffusion.schedule, recipe.diffusion.eps))
    system = MaskedDiffusionLM(
        backbone,
        diffusion,
        pad_id=tokenizer.pad_id,
        lr=opt.lr,
        weight_decay=opt.weight_decay,
        warmup_steps=opt.warmup_steps,
        max_steps=opt.max_steps,
        count_bytes=ByteCounter(tokenizer),
    )
    logger = CSVLogger(str(output_dir), name="csv")  # one version_N folder per attempt
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, save_last=True, every_n_train_steps=opt.checkpoint_every_steps, save_top_k=0
    )
    callbacks = [checkpoint, _RankNoise(opt.seed)]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=20))
    trainer = L.Trainer(
        max_steps=opt.max_steps,
        accelerator=opt.accelerator,
        devices=opt.devices,
        strategy=opt.strategy,
        num_nodes=opt.num_nodes,
        precision=opt.precision,
        gradient_clip_val=opt.gradient_clip,
        logger=logger,
        callbacks=callbacks,
        val_check_interval=opt.val_every_steps,  # optimizer steps, across epochs (whatever each rank's shard)
        check_val_every_n_epoch=None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=min(10, data.steps_per_epoch()),
        num_sanity_val_steps=0,
        deterministic=False,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.fit(system, datamodule=data, ckpt_path=str(last) if resume else None, weights_only=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    trainer.save_checkpoint(str(last))  # every rank calls it (FSDP gathers); rank 0 writes
    scores = trainer.validate(system, datamodule=data, verbose=False)[0]  # the same on every rank
    val = scores["val_bpt"]
    baseline = data.baseline()
    losses = train_losses(output_dir / "csv") if trainer.is_global_zero else []
    tokens_seen = trainer.global_step * trainer.world_size * recipe.data.batch_size * recipe.data.max_length
    summary = TrainSummary(
        export_dir=Path(recipe.export_dir or output_dir / "model"),
        val_bits_per_token=float(val),
        unigram_bits_per_token=baseline.bits_per_token,
        steps=trainer.global_step,
        seconds=seconds,
        tokens_per_second=tokens_seen / max(seconds, 1e-9),
        first_train_loss=losses[0] if losses else None,
        last_train_loss=losses[-1] if losses else None,
        processes=trainer.world_size,
        val_bits_per_byte=float(scores["val_bpb"]) if "val_bpb" in scores else None,
        unigram_bits_per_byte=baseline.bits_per_byte,
        val_tokens=baseline.num_val_tokens,
        val_bytes=baseline.num_val_bytes,
        cpu_seconds=cpu_seconds,
    )
    if not trainer.is_global_zero:
        return summary
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    trained = trained_backbone(recipe, tokenizer, last)
    export(trained, tokenizer, recipe, summary, command, length_histogram(data.train_encoded, recipe.data.max_length))
    if recipe.report_samples:
        write_sample_report(
            summary.export_dir, recipe.domain, seed=opt.seed, num=recipe.report_samples, log=log,
            train=recipe.data.train,
        )  # fmt: skip
    return summary


class _RankNoise(Callback):
    """Every rank starts from the recipe's seed (the same initial weights, the same DistributedSampler order); from
    the first step each rank draws its masking noise and crops from its own seed (:func:`rank_seed`), so that DDP's
    ranks do not repeat each other's draws. A single process keeps the seeded stream as it is."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(rank_seed(self.seed, trainer.global_rank))


def trained_backbone(recipe: TrainRecipe, tokenizer: Tokenizer, checkpoint: Path) -> torch.nn.Module:
    """A fresh backbone with the trained weights of a Lightning checkpoint: the checkpoint holds the full weights
    whatever the strategy kept in memory (FSDP shards the module it trains)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    backbone = build_backbone(recipe, tokenizer)
    prefix = "backbone."
    backbone.load_state_dict({name[len(prefix) :]: value for name, value in state.items() if name.startswith(prefix)})
    return backbone


def length_histogram(encoded: list[list[int]], max_length: int) -> list[int]:
    """counts[n] = training rows of n tokens (cropped at max_length): the default length distribution to sample."""
    counts = [0] * (max_length + 1)
    for ids in encoded:
        counts[min(len(ids), max_length)] += 1
    return counts


def export(
    backbone, tokenizer: Tokenizer, recipe: TrainRecipe, summary: TrainSummary, command: str, length_counts: list[int]
) -> None:
    """Write the Hugging Face folder (weights, config with the training length histogram, tokenizer), a card."""
    directory = summary.export_dir
    directory.mkdir(parents=True, exist_ok=True)
    backbone.config.length_counts = length_counts
    backbone.save_pretrained(directory, safe_serialization=True)
    tokenizer.save(directory)
    parameters = sum(p.numel() for p in backbone.parameters())
    facts = {
        "name": recipe.name,
        "domain": recipe.domain,
        "parameters": parameters,
        "steps": summary.steps,
        "processes": summary.processes,
        "train_seconds": round(summary.seconds, 1),
        "tokens_per_second": round(summary.tokens_per_second),
        "val_bits_per_token": round(summary.val_bits_per_token, 4),
        "unigram_bits_per_token": round(summary.unigram_bits_per_token, 4),
    }
    if summary.val_bits_per_byte is not None:
        facts["val_bits_per_byte"] = round(summary.val_bits_per_byte, 4)
        facts["unigram_bits_per_byte"] = round(summary.unigram_bits_per_byte, 4)
        facts["val_tokens"] = summary.val_tokens
        facts["val_bytes"] = summary.val_bytes
    if summary.cpu_seconds is not None:
        facts["cpu_seconds"] = round(summary.cpu_seconds, 1)
        facts["cpu_hours"] = round(summary.cpu_seconds / 3600, 2)
    (directory / "training_facts.json").write_text(json.dumps(facts, indent=2))
    recipe_yaml = json.dumps(json.loads(recipe.model_dump_json()), indent=2)
    m = recipe.model
    architecture = (
        f"{m.architecture} ({m.num_layers} layers, width {m.hidden_size}, time conditioning {m.time_conditioning})"
    )
    where = f"{torch.get_num_threads()} CPU threads"
    if summary.processes > 1:
        where = f"{summary.processes} processes ({recipe.training.strategy}, {where} each)"
    timing = (
        f"{summary.seconds / 60:.1f} min on {where} "
        f"({summary.tokens_per_second:,.0f} tokens/s, padding included; the last attempt when resumed)"
    )
    if "cpu_hours" in facts:
        whose = "rank 0's" if summary.processes > 1 else "this process's"
        timing += f"; {facts['cpu_hours']:.2f} CPU hours ({whose} CPU time)"
    batch = f"{recipe.data.batch_size}" + (f" x {summary.processes} processes" if summary.processes > 1 else "")
    per_byte_rows = per_byte_note = ""
    if summary.val_bits_per_byte is not None:
        per_byte_rows = (
            f"\n| validation bits per UTF-8 byte (NELBO) | **{summary.val_bits_per_byte:.4f}** |"
            f"\n| unigram baseline per byte, same validation data | {summary.unigram_bits_per_byte:.4f} |"
        )
        per_byte_note = "\n\n" + textwrap.fill(
            "Bits per byte count exactly this: the NELBO in nats summed over the real tokens of the validation rows "
            f"(the first {recipe.data.max_length} tokens of each validation sequence; padding is never masked, never "
            "scored and never counted), divided by ln 2 and by the UTF-8 bytes those same tokens decode to "
            f"({summary.val_bytes:,} bytes in {summary.val_tokens:,} tokens, "
            f"{summary.val_bytes / max(summary.val_tokens or 1, 1):.2f} bytes per token). The newline between lines "
            "is not scored, and the number of tokens in a row is given to the model (every NELBO here is conditional "
            "on the length). The unigram baseline is the same count for the add-one-smoothed unigram distribution of "
            "the training tokens.",
            width=116,
        )
    card = f"""# {recipe.name}

A masked diffusion denoiser for **{recipe.domain}** sequences, trained by seqtree's own `seqtree train`.

| fact | value |
| --- | --- |
| architecture | {architecture} |
| parameters | {parameters:,} |
| training data | `{recipe.data.train}` (validation `{recipe.data.val}`), rows of {recipe.data.max_length} tokens |
| steps x batch | {summary.steps} x {batch} |
| noise schedule | {recipe.diffusion.schedule} (eps {recipe.diffusion.eps}) |
| validation bits per token (NELBO) | **{summary.val_bits_per_token:.4f}** |
| unigram baseline, same validation data | {summary.unigram_bits_per_token:.4f} |{per_byte_rows}
| training time | {timing} |

The NELBO is an upper bound on the model's negative log-likelihood: a NELBO below the unigram baseline means the
model beats it by at least the difference shown.{per_byte_note}

Command:

```
{command}
```

Recipe (resolved):

```json
{recipe_yaml}
```
"""
    (directory / "README.md").write_text(card)


REPORT_BATCH = 128  # rows per sampler call; the shipped cards' numbers were drawn in batches of this size
SAMPLE_SECTION = "## Samples"
# What the card reports: plain ancestral sampling, and confidence-ordered decoding at a lower temperature (one token
# per call, MaskGIT order), which trades diversity for validity.
REPORT_SAMPLERS = {
    "ancestral, 64 steps, temperature 1": ("ancestral", {"num_steps": 64}),
    "confidence order, 1 token per step, temperature 0.7": ("confidence", {"tokens_per_step": 1, "temperature": 0.7}),
}


@torch.no_grad()
def write_sample_report(
    directory: Path,
    domain: str,
    *,
    seed: int = 0,
    num: int = 64,
    log: Callable[[str], None] | None = None,
    train: Path | None = None,
) -> dict:
    """Sample the exported model (lengths from the training data) and put what a user checks first in its card:
    example designs, and for molecules (SMILES, SELFIES) the fraction RDKit parses; with the ``train`` file also
    MOSES's uniqueness, novelty and property distributions (:mod:`seqtree.training.molecules`). Re-running replaces
    the card's samples section.

    ``num`` samples per sampler are drawn in batches of :data:`REPORT_BATCH`, each one told to ``log``: the
    confidence sampler unmasks one token per denoiser call, so 512 samples of a tiny model take minutes on a CPU.
    The same ``num`` and ``seed`` give the same samples (the shipped cards: ``num=512``, seed 0)."""
    from seqtree.generate import roots_of_lengths, sample_sequences
    from seqtree.models.loading import load_model

    log = log or (lambda line: None)
    model = load_model(directory)
    report: dict = {"samples": num, "seed": seed, "samplers": {}}
    lines = ["", SAMPLE_SECTION, "", f"{num} samples per sampler (seed {seed}), lengths drawn from the training data."]
    log(f"model card: sampling {num} sequences with each of {len(REPORT_SAMPLERS)} samplers (report_samples)")
    tokenizer = model.tokenizer
    molecules = (tokenizer.oracle_domain or domain) == "smiles"
    reference = None
    vocabulary: set[str] | None = None
    if domain == "text" and train is not None:
        from seqtree.training.data import read_sequences
        from seqtree.training.text import words_of

        vocabulary = words_of(read_sequences(train))
        lines.append(f"Known words: the share of sampled words (letter runs) that occur in `{train}`.")
    if molecules and train is not None:
        from seqtree.training.data import read_sequences
        from seqtree.training.molecules import training_reference

        log(f"model card: canonical SMILES and properties of the training molecules ({train})")
        reference = training_reference(read_sequences(train), tokenizer.to_oracle, seed=seed)
        lines.append(
            f"Novelty is against the {reference.size:,} training molecules of `{train}`; the training property "
            f"distributions are of {reference.property_sample:,} of them (seeded)."
        )
    for label, (sampler, options) in REPORT_SAMPLERS.items():
        generator = torch.Generator().manual_seed(seed)
        lengths = model.sample_lengths(num, generator)
        roots = roots_of_lengths(model.tokenizer, lengths, "", model.max_length)
        started, sequences = time.perf_counter(), []
        for start in range(0, num, REPORT_BATCH):  # one batch per call: what one call of batch_size=128 would draw
            batch = roots[start : start + REPORT_BATCH]
            drawn = sample_sequences(model, batch, len(batch), sampler=sampler, generator=generator,
                                     batch_size=REPORT_BATCH, **options)  # fmt: skip
            sequences += drawn.sequences
            log(f"model card: {label}: {len(sequences)}/{num} samples ({time.perf_counter() - started:.0f} s)")
        entry: dict = {}
        lines += ["", f"**{label}**"]
        smiles = [tokenizer.to_oracle(s) for s in sequences]
        if molecules and reference is not None:
            from seqtree.training.molecules import evaluate

            measured = evaluate(smiles, reference)
            entry = measured.to_dict()
            lines += ["", *measured.markdown()]
        elif molecules:
            from rdkit import Chem, RDLogger

            RDLogger.DisableLog("rdApp.*")
            valid = [s for s in smiles if s and Chem.MolFromSmiles(s) is not None]
            entry = {"rdkit_valid_fraction": len(valid) / num, "unique_valid_fraction": len(set(valid)) / num}
            lines.append(
                f"RDKit parses **{entry['rdkit_valid_fraction']:.1%}** of them (unique valid "
                f"{entry['unique_valid_fraction']:.1%})."
            )
        if vocabulary is not None:
            from seqtree.training.text import known_word_fraction

            fraction, count = known_word_fraction(sequences, vocabulary)
            entry = {"known_word_fraction": round(fraction, 4), "words": count}
            lines += ["", f"Known words: **{fraction:.1%}** of {count:,}."]
        report["samplers"][label] = entry
        lines += ["", "```", *sequences[:6], "```"]
        if tokenizer.oracle_domain is not None:  # what the oracles would score (SELFIES: canonical SMILES)
            lines += ["", f"The same, as {tokenizer.oracle_domain.upper()}:", "", "```", *smiles[:6], "```"]
    facts_file = directory / "training_facts.json"
    facts = json.loads(facts_file.read_text())
    facts["sample_report"] = report
    facts_file.write_text(json.dumps(facts, indent=2))
    card = directory / "README.md"
    text = card.read_text()
    if SAMPLE_SECTION in text:
        text = text[: text.index(SAMPLE_SECTION)].rstrip("\n") + "\n"
    card.write_text(text + "\n".join(lines) + "\n")
    return report
