"""The ``seqtree`` command line.

Exit codes: 0 success, 2 bad input (a recipe, a file, an argument, a missing optional extra: one line naming what is
wrong), 1 failure, 130 interrupted (one line saying what was kept).
"""

from __future__ import annotations

import sys

try:
    import shlex
    from pathlib import Path
    from typing import Annotated

    import typer
    from typer.core import TyperGroup

    from seqtree.config import RecipeError
    from seqtree.extras import MissingExtra
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads: one line, not a traceback
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

BAD_INPUT = 2
FAILURE = 1
INTERRUPTED = 130
_ON_INTERRUPT = "seqtree.on_interrupt"  # ctx.meta key: what a Ctrl-C the command did not catch itself means


class _Commands(TyperGroup):
    """What every command ends with when it does not catch it itself: a missing optional extra is one line naming
    the extra and exit 2; a Ctrl-C is one line (what it left behind) and exit 130, never a traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except MissingExtra as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(BAD_INPUT) from None
        except KeyboardInterrupt as error:
            typer.echo(str(error) or ctx.meta.get(_ON_INTERRUPT, "interrupted"), err=True)
            raise typer.Exit(INTERRUPTED) from None


def _interrupt_before_start(ctx: typer.Context, command: str, resume: Path | None) -> None:
    """A run command's Ctrl-C before its stop flag is in place (imports, reading the recipe) wrote nothing."""
    if resume is not None:
        message = f"interrupted before the run continued: {resume} is as it was; run seqtree {command} --resume again"
    else:
        message = ("interrupted before the run started: nothing was written, so there is nothing to resume; run "
                   f"seqtree {command} again without --resume")  # fmt: skip
    ctx.meta[_ON_INTERRUPT] = message


app = typer.Typer(
    cls=_Commands,
    help="Design sequences with masked diffusion models steered by tree search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Shipped checkpoints and their model cards.", no_args_is_help=True)
app.add_typer(models_app, name="models")
oracles_app = typer.Typer(help="Registered oracles (reward functions) and their parameters.", no_args_is_help=True)
app.add_typer(oracles_app, name="oracles")
ehrlich_app = typer.Typer(help="Ehrlich test functions of any size: a prior's data and recipes.", no_args_is_help=True)
app.add_typer(ehrlich_app, name="ehrlich")


def _fail(message: str, code: int = BAD_INPUT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _is_interactive() -> bool:
    return sys.stderr.isatty()


def _is_rank_zero() -> bool:
    """False in the other processes of a DDP run (Lightning's launcher, torchrun, SLURM)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


DeviceOption = Annotated[
    str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps (sets model.device; default: the recipe's)")
]
PrecisionOption = Annotated[
    str | None, typer.Option(help="fp32, bf16 or fp16 autocast of the denoiser (sets model.precision)")
]
ThreadsOption = Annotated[
    int | None, typer.Option(min=1, help="torch CPU threads (default: torch's choice); a fleet's seeds each use this")
]


def _device_overrides(set_: list[str] | None, device: str | None, precision: str | None) -> list[str]:
    """``--set`` overrides with ``--device`` / ``--precision`` folded in as model.device / model.precision."""
    extra = [f"model.{key}={value}" for key, value in (("device", device), ("precision", precision)) if value]
    return [*(set_ or []), *extra]


@app.command(
    epilog="Example: seqtree train recipes/train/protein-tiny.yaml --set training.max_steps=200",
)
def train(
    recipe: Annotated[Path, typer.Argument(help="training recipe YAML")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: key.sub=value")] = None,
    resume: Annotated[bool, typer.Option(help="continue from output_dir/checkpoints/last.ckpt")] = False,
    progress: Annotated[bool | None, typer.Option(help="progress bar (default: only on a terminal)")] = None,
    report_samples: Annotated[
        int | None, typer.Option(min=0, help="samples per sampler in the model card (sets report_samples; 0: none)")
    ] = None,
) -> None:
    """Pretrain a denoiser with the masked diffusion NELBO and export a Hugging Face folder with a model card."""
    from seqtree.config import load_recipe
    from seqtree.models.tokenizers import TokenizationError
    from seqtree.training.recipe import TrainRecipe
    from seqtree.training.run import train as run_training

    try:
        report = [] if report_samples is None else [f"report_samples={report_samples}"]
        parsed = load_recipe(TrainRecipe, recipe, [*(set_ or []), *report])
        summary = run_training(
            parsed,
            resume=resume,
            progress=_is_interactive() if progress is None else progress,
            command="seqtree train " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
            log=lambda line: typer.echo(line, err=True),
        )
    except (RecipeError, FileNotFoundError, FileExistsError, TokenizationError, ValueError) as error:
        _fail(str(error))
    if not _is_rank_zero():  # DDP: every process returns the summary; one prints it
        return
    typer.echo(
        f"exported {summary.export_dir}: val {summary.val_bits_per_token:.4f} bits/token "
        f"(unigram baseline {summary.unigram_bits_per_token:.4f}), {summary.steps} steps in {summary.seconds:.0f} s"
    )


@app.command(
    epilog="Example: seqtree sample protein-tiny --num 8 --length 60 --sampler first_hitting --seed 1",
)
def sample(
    model: Annotated[str, typer.Argument(help="shipped checkpoint name, local folder or hub id")],
    num: Annotated[int, typer.Option(min=1, help="number of sequences")] = 8,
    length: Annotated[
        int | None, typer.Option(min=1, help="free tokens to generate (default: drawn from the training lengths)")
    ] = None,
    prompt: Annotated[str, typer.Option(help="fixed prefix")] = "",
    scaffold: Annotated[str | None, typer.Option(help="template with _ at free positions")] = None,
    sampler: Annotated[str, typer.Option(help="ancestral, first_hitting or confidence")] = "ancestral",
    steps: Annotated[int, typer.Option(min=1, help="reverse steps (ancestral, confidence)")] = 64,
    temperature: Annotated[float, typer.Option(min=0.0)] = 1.0,
    top_k: Annotated[int | None, typer.Option(min=1)] = None,
    top_p: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16 autocast of the denoiser")] = "fp32",
    trust_remote_code: Annotated[bool, typer.Option(help="allow a model's own code to run (MDLM, LLaDA)")] = False,
    threads: ThreadsOption = None,
) -> None:
    """Sample sequences from a model, one per line (FASTA-style header with the model log-probability)."""
    from seqtree.device import DeviceError, check_precision, host_generator, make_generator, resolve_device, set_threads
    from seqtree.generate import model_root, model_roots, sample_sequences
    from seqtree.models.loading import load_model
    from seqtree.models.tokenizers import TokenizationError
    from seqtree.samplers import SAMPLERS

    if sampler not in SAMPLERS:
        _fail(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    set_threads(threads)
    try:
        where = resolve_device(device)
    except DeviceError as error:
        _fail(f"--device: {error}")
    try:
        check_precision(precision, where)
    except DeviceError as error:
        _fail(f"--precision: {error}")
    generator = make_generator(seed, where)
    try:
        loaded = load_model(model, device=where, precision=precision, trust_remote_code=trust_remote_code)
        if scaffold is not None:
            root = model_root(loaded, scaffold=scaffold)
        elif length is not None:
            root = model_root(loaded, prompt=prompt, length=length)
        else:  # lengths from the training data, less the prompt and the model's frame
            used = len(loaded.tokenizer.encode(prompt)) + loaded.framing.size
            lengths = [max(1, n - used) for n in loaded.sample_lengths(num, host_generator(generator))]
            root = model_roots(loaded, lengths, prompt)
    except (FileNotFoundError, TokenizationError, ValueError) as error:
        _fail(str(error))
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    if sampler != "first_hitting":
        options["num_steps"] = steps
    result = sample_sequences(loaded, root, num, sampler=sampler, generator=generator, batch_size=batch_size, **options)
    scored_as = loaded.tokenizer.oracle_domain  # SELFIES: the header shows the canonical SMILES oracles would score
    for index, (sequence, log_prob) in enumerate(zip(result.sequences, result.output.log_prob_model.tolist())):
        decoded = f" {scored_as}={loaded.tokenizer.to_oracle(sequence)}" if scored_as else ""
        typer.echo(f">sample{index} log_prob={log_prob:.3f}{decoded}")
        typer.echo(sequence)
    typer.echo(f"# {num} samples, {result.output.nfe} NFE", err=True)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  seqtree design recipes/protein.yaml\n\n"
        "  seqtree design recipes/protein.yaml --set search.algorithm=dts --set budget.nfe=4000 --out runs/p2\n\n"
        "  seqtree design --resume runs/protein\n\n"
        "  seqtree design recipes/protein.yaml --seeds 0-7 --workers 4 --out runs/protein-fleet"
    ),
)
def design(
    ctx: typer.Context,
    recipe: Annotated[Path | None, typer.Argument(help="design recipe YAML (omit with --resume)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default: output.dir or runs/<name>)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: key.sub=value")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run in this directory")] = None,
    progress: Annotated[bool | None, typer.Option(help="progress bar (default: only on a terminal)")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seeds: Annotated[str | None, typer.Option(help="a fleet: run once per seed (0-7, 0,3,5 or 0-3,8)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="seeds at once: 1 here, more on Ray or processes")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to run the seeds on (default: local)")] = None,
    threads: ThreadsOption = None,
) -> None:
    """Search for high-reward sequences as a recipe says; write designs, curve, plots and a summary. With --seeds,
    one run per seed under RUN_DIR/seed-<s>/ plus merged designs, curve and summary."""
    _interrupt_before_start(ctx, "design", resume)
    from seqtree.design import StopFlag, run_design, stop_on_signals
    from seqtree.device import set_threads
    from seqtree.fleet import is_fleet_dir, parse_seeds, run_fleet
    from seqtree.models.tokenizers import TokenizationError

    set_ = _device_overrides(set_, device, precision)
    fleet = seeds is not None or (resume is not None and is_fleet_dir(resume))
    if not fleet and (workers is not None or ray_address is not None):
        _fail("--workers and --ray-address run a fleet of seeds: give --seeds too")
    set_threads(threads)
    try:
        parsed, out = _recipe_or_resume(recipe, resume, set_, out)
        with stop_on_signals(StopFlag()) as flag:
            common = {"out": out, "resume": resume is not None, "stop": flag,
                      "progress": _is_interactive() if progress is None else progress,
                      "log": lambda line: typer.echo(line, err=True)}  # fmt: skip
            if fleet:
                run = run_fleet(parsed, seeds=None if seeds is None else parse_seeds(seeds), workers=workers,
                                ray_address=ray_address, **common)  # fmt: skip
            else:
                run = run_design(parsed, **common)
    except (RecipeError, FileNotFoundError, FileExistsError, TokenizationError, ValueError) as error:
        _fail(str(error))
    summary = run.summary
    typer.echo(
        f"{run.run_dir}: best reward {summary['best_reward']:.4g}, {summary['nfe']} NFE, "
        f"{summary['oracle_calls']} oracle calls, {summary['seconds']:.1f} s ({summary['stop_reason']})"
    )
    if summary["num_designs"] == 0:
        typer.echo(
            "warning: no design was completed within the budget; raise budget.nfe / budget.oracle_calls "
            "or make one pass of the algorithm smaller (e.g. search.num_particles)",
            err=True,
        )
    if summary["interrupted"]:
        typer.echo(f"interrupted: partial results written; continue with seqtree design --resume {run.run_dir}")
        raise typer.Exit(130)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  seqtree finetune recipes/dna.yaml\n\n"
        "  seqtree finetune recipes/protein.yaml --set finetune.rounds=4 --set finetune.buffer_from=policy\n\n"
        "  seqtree finetune --resume runs/dna-motifs-finetune"
    ),
)
def finetune(
    ctx: typer.Context,
    recipe: Annotated[Path | None, typer.Argument(help="design recipe YAML with a finetune: section")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default output.dir or runs/<name>-finetune)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: key.sub=value")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the fine-tuning run in this directory")] = None,
    progress: Annotated[bool | None, typer.Option(help="progress bars (default: only on a terminal)")] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (sets finetune.threads)")] = None,
) -> None:
    """Fine-tune the recipe's model on what search finds (TR2-D2): search -> replay buffer -> WDCE, round after
    round; writes per-round designs and checkpoints, metrics.csv, finetune.png and a summary."""
    _interrupt_before_start(ctx, "finetune", resume)
    from seqtree.buffer import BufferError
    from seqtree.design import StopFlag, stop_on_signals
    from seqtree.finetune import run_finetune
    from seqtree.models.tokenizers import TokenizationError

    set_ = _device_overrides(set_, device, precision) + ([f"finetune.threads={threads}"] if threads else [])
    try:
        parsed, out = _recipe_or_resume(recipe, resume, set_, out)
        if resume is None and out is None and parsed.output.dir is None:
            out = Path("runs") / f"{parsed.name}-finetune"
        with stop_on_signals(StopFlag()) as flag:
            run = run_finetune(
                parsed, out=out, resume=resume is not None,
                progress=_is_interactive() if progress is None else progress, stop=flag,
                log=lambda line: typer.echo(line, err=True),
            )  # fmt: skip
    except (RecipeError, BufferError, FileNotFoundError, FileExistsError, TokenizationError, ValueError) as error:
        _fail(str(error))
    summary = run.summary
    if not _is_rank_zero():  # DDP: every process returns rank 0's summary; one prints it
        raise typer.Exit(130 if summary["interrupted"] else 0)
    typer.echo(
        f"{run.run_dir}: {summary['rounds_done']} of {summary['rounds']} rounds, best reward "
        f"{summary['best_reward']:.4g}, samples mean {summary['final_eval_reward_mean']:.4g}, {summary['nfe']} NFE, "
        f"{summary['oracle_calls']} oracle calls, {summary['seconds']:.1f} s; model: {summary['model_dir']}"
    )
    if summary["interrupted"]:
        typer.echo(f"interrupted: committed rounds kept; continue with seqtree finetune --resume {run.run_dir}")
        raise typer.Exit(130)


def _recipe_or_resume(recipe: Path | None, resume: Path | None, set_: list[str] | None, out: Path | None):
    """(recipe, run directory) from a recipe file (with --set) or from a run directory to resume."""
    from seqtree.design import load_run_recipe
    from seqtree.recipe import load_design_recipe, validate_design_recipe

    if resume is not None:
        if recipe is not None:
            _fail("give either a recipe or --resume RUN_DIR, not both")
        parsed = load_run_recipe(resume)
        if set_:
            from seqtree.config import apply_overrides

            parsed = validate_design_recipe(apply_overrides(parsed.model_dump(mode="json"), set_), str(resume))
        return parsed, resume
    if recipe is None:
        _fail("give a recipe, e.g. seqtree design recipes/protein.yaml")
    return load_design_recipe(recipe, set_ or []), out


@app.command(epilog="Example: seqtree validate recipes/dna.yaml --set budget.nfe=100")
def validate(
    recipe: Annotated[Path, typer.Argument(help="design recipe YAML")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: key.sub=value")] = None,
) -> None:
    """Check a design recipe as seqtree design does before it searches (fields, device, model, oracle and its
    alphabet, prompt / scaffold / length against the model, replay buffer), without searching or writing anything."""
    from seqtree.design import check_design_recipe
    from seqtree.recipe import load_design_recipe

    try:
        parsed = load_design_recipe(recipe, set_ or [])
        notes = check_design_recipe(parsed)
    except (RecipeError, FileNotFoundError, ValueError) as error:
        _fail(str(error))
    typer.echo(
        f"{recipe}: valid ({parsed.search.algorithm}, oracle {notes['oracle']}, model {notes['model']}, "
        f"device {notes['device']})"
    )


@oracles_app.command("list")
def oracles_list(
    name: Annotated[str | None, typer.Argument(help="show one oracle's parameters")] = None,
) -> None:
    """Registered oracles: name, family, description and parameters."""
    from seqtree.oracles import available_oracles

    infos = available_oracles()
    if name is not None:
        infos = [i for i in infos if i.name == name]
        if not infos:
            _fail(f"no oracle named {name!r}; see seqtree oracles list")
    for info in infos:
        needs = f" (needs {info.requires})" if info.requires else ""
        typer.echo(f"{info.name:<22} [{info.family}, {info.domain}] {info.description}{needs}")
        for param in info.parameters:
            default = "required" if param.required else f"default {param.default!r}"
            typer.echo(f"    {param.name}: {param.type} ({default})")


@app.command(
    # --help goes on to the benchmarks' own parser (its commands and their options)
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    epilog="Examples: seqtree bench search --out runs/bench --quick; seqtree bench sampling --out runs/bench",
)
def bench(ctx: typer.Context) -> None:
    """Benchmarks (search, sampling, recipes, oracles, device, ehrlich): seqtree bench COMMAND --help for each."""
    from seqtree.bench.__main__ import main as bench_main

    bench_main(list(ctx.args), prog="seqtree bench")


@ehrlich_app.command(
    "prepare",
    epilog=(
        "Example: seqtree ehrlich prepare v=32,L=64,c=2,k=4,seed=1 --out runs/ehrlich/v32-l64, then "
        "seqtree train runs/ehrlich/v32-l64/train.yaml and seqtree finetune runs/ehrlich/v32-l64/design.yaml"
    ),
)
def ehrlich_prepare(
    instance: Annotated[str, typer.Argument(help="ehrlich-l32, ehrlich-v32-l64-c2-k4-s1 or v=32,L=64,c=2,k=4,seed=1")],
    out: Annotated[Path | None, typer.Option(help="folder for data and recipes (default runs/ehrlich/<name>)")] = None,
    train: Annotated[int | None, typer.Option(help="training sequences (default 20000 to L=64, else 8000)")] = None,
    val: Annotated[int | None, typer.Option(help="validation sequences (default 1000 to L=64, else 500)")] = None,
    data_seed: Annotated[int | None, typer.Option(help="seed of the draws (default 1000 + instance seed)")] = None,
    steps: Annotated[int | None, typer.Option(help="the prior's training steps (default: the shipped 2000)")] = None,
) -> None:
    """Draw a prior's training data from an Ehrlich instance's own Markov process (its feasible set) and write the
    prior's training recipe (a character tokenizer over the instance's letters) and a design recipe with a finetune:
    section (recipes/ehrlich.yaml's settings) that searches the instance with that prior."""
    from seqtree.oracles.ehrlich_instances import parse_instance
    from seqtree.oracles.ehrlich_prior import prepare_instance

    try:
        parsed = parse_instance(instance)
        folder = out if out is not None else Path("runs") / "ehrlich" / parsed.name
        info = prepare_instance(parsed, folder, n_train=train, n_val=val, data_seed=data_seed, max_steps=steps)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error))
    except MissingExtra:
        raise  # one line and exit 2, as for every command (_Commands)
    except ImportError as error:
        _fail(str(error), FAILURE)
    folder = folder.resolve()
    typer.echo(
        f"{parsed.name}: {info['train']['sequences']} train and {info['val']['sequences']} val sequences in {folder} "
        f"(alphabet {info['alphabet']}, mean reward {info['mean_reward']:.3f}, best {info['max_reward']:.3f})\n"
        f"next: seqtree train {folder / 'train.yaml'}\n"
        f"then: seqtree design {folder / 'design.yaml'}   or   seqtree finetune {folder / 'design.yaml'}"
    )


@models_app.command(
    "inspect", epilog="Example: seqtree models inspect path/to/esm2-folder --length 60 --trust-remote-code"
)
def models_inspect(
    model: Annotated[str, typer.Argument(help="shipped checkpoint name, local folder or hub id")],
    length: Annotated[int, typer.Option(min=1, help="design length for the example row")] = 8,
    trust_remote_code: Annotated[bool, typer.Option(help="allow a hub model's own code to run")] = False,
) -> None:
    """What seqtree understood of a model before any compute is spent: family, frame, mask and special ids,
    vocabulary, maximum length, time conditioning, and one example root row."""
    from seqtree.generate import model_root
    from seqtree.models.loading import load_model
    from seqtree.models.tokenizers import TokenizationError

    try:
        loaded = load_model(model, trust_remote_code=trust_remote_code, device="cpu")
        root = model_root(loaded, length=length)
    except (FileNotFoundError, TokenizationError, ValueError) as error:
        _fail(str(error))
    tokenizer, framing = loaded.tokenizer, loaded.framing
    names = getattr(tokenizer, "token_names", None) or (lambda ids: [str(i) for i in ids])
    config = getattr(loaded.denoiser, "config", None)
    hook = getattr(loaded.denoiser, "family", None)  # a Hugging Face model's family hook (seqtree.models.hf_adapter)
    if hook is not None:
        family, time_input = f"{framing.family} (hook: {type(hook).__name__})", hook.time_input(config.to_dict())
    else:
        timed = bool(getattr(config, "time_conditioning", False))
        family, time_input = framing.family, "yes" if timed else "no (time-independent denoiser)"
    parameters = sum(p.numel() for p in loaded.denoiser.parameters())
    facts = [
        ("model", f"{model} ({type(loaded.denoiser).__name__}, {parameters:,} parameters)"),
        ("family", family),
        ("frame", f"{' '.join(names(framing.prefix)) or '-'} <design> {' '.join(names(framing.suffix)) or '-'}"),
        ("rows", "padded to the model's length, as in training" if framing.pad_rows else "design length + frame"),
        ("mask id", f"{tokenizer.mask_id} ({' '.join(names([tokenizer.mask_id]))})"),
        ("pad id", f"{tokenizer.pad_id}"),
        ("special ids (never sampled, never decoded)", " ".join(map(str, sorted(tokenizer.special_ids)))),
        ("not design tokens (never sampled)", " ".join(names(framing.forbidden)) or "-"),
        ("vocabulary", f"{tokenizer.vocab_size} tokens (diffusion over {loaded.diffusion.vocab_size})"),
        ("maximum length", str(loaded.max_length)),
        ("time conditioning", time_input),
        (f"root of a {length}-token design", _runs(root.tolist(), names)),
    ]
    width = max(len(key) for key, _ in facts)
    for key, value in facts:
        typer.echo(f"{key:<{width}}  {value}")


def _runs(ids: list[int], names) -> str:
    """Token ids as name x count runs, e.g. ``<cls> <mask>x60 <eos>`` (a root row at a glance)."""
    import itertools

    runs = [(key, len(list(group))) for key, group in itertools.groupby(ids)]
    return " ".join(f"{names([key])[0]}" + (f"x{count}" if count > 1 else "") for key, count in runs)


@models_app.command("list")
def models_list(
    card: Annotated[str | None, typer.Option(help="print the full model card of this checkpoint")] = None,
) -> None:
    """List the checkpoints shipped with seqtree (name, domain, size, validation bits per token)."""
    import json

    from seqtree.models.loading import read_model_card, shipped_checkpoints

    nan = float("nan")
    shipped = shipped_checkpoints()
    if card is not None:
        if card not in shipped:
            _fail(f"no shipped checkpoint {card!r}; shipped: {', '.join(shipped) or 'none'}")
        typer.echo(read_model_card(shipped[card]))
        return
    width = max([len("name"), *map(len, shipped)])
    typer.echo(f"{'name':<{width}} {'domain':<8} {'params':>10} {'val bits/token':>15} {'unigram':>8}  path")
    for name, path in shipped.items():
        facts_file = path / "training_facts.json"
        facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
        typer.echo(
            f"{name:<{width}} {facts.get('domain', '?'):<8} {facts.get('parameters', 0):>10,} "
            f"{facts.get('val_bits_per_token', nan):>15.4f} {facts.get('unigram_bits_per_token', nan):>8.4f}"
            f"  {path}"
        )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # outside a command (parsing the arguments)
        typer.echo("interrupted", err=True)
        raise SystemExit(INTERRUPTED) from None


if __name__ == "__main__":
    main()
