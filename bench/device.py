"""Device benchmark: how close every search algorithm comes to the raw forward rate of its denoiser (issue 13).

``python -m bench device --model transformer-85m --device cuda --out DIR`` (also ``seqtree bench device ...``)
writes ``device_forward.csv`` (raw denoiser rows/s in each precision at each batch size: timed forward passes on
partially masked rows, nothing else) and ``device_search.csv`` (NFE/s of every algorithm at the same model,
precision and length, with the ratio to the raw rate at the batch the algorithm evaluates), and prints both.

``--model`` is a checkpoint (shipped name, folder, hub id) or a randomly initialised seqtree transformer for
throughput alone: ``transformer-85m`` (hidden 768, 12 layers, 12 heads: about 85M parameters, protein vocabulary)
or ``random:HIDDENxLAYERS`` (heads = hidden / 64). Timings synchronise the device around each timed region, so
they are wall times of finished work; each configuration runs once untimed first (kernel selection, caches, the
capture of CUDA graphs). With ``--cuda-graphs`` the denoiser is replayed from CUDA graphs in both the raw and the
search timings, as designs with ``model.cuda_graphs: true`` run it.

``--host-syncs`` also counts, on any device (a CPU included), what sets those ratios on a GPU: per denoiser call,
the waits of the host for the device and the operations the host issues while the device idles after one
(:mod:`bench.host_syncs`, the engine on its device path), written to ``device_host_syncs.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from seqtree.device import check_precision, make_generator, resolve_device
from seqtree.generate import initial_tokens
from seqtree.models.loading import LoadedModel, load_model
from seqtree.search import ALGORITHMS, Budget, SearchProblem, run_search

PRESETS = {"transformer-85m": (768, 12)}
# Each algorithm at the sizes the targets name (batch 256; 64 leaves per iteration for tree searches) and the
# rows one of its denoiser calls holds at full width, whose raw forward rate is its reference.
SEARCH_SETTINGS: dict[str, tuple[dict, int]] = {
    "best_of_n": ({"batch_size": 256}, 256),  # num_samples: whole batches (see search_rate)
    "smc": ({"num_particles": 256}, 256),
    "svdd": ({"num_particles": 64, "num_candidates": 4}, 256),
    "beam": ({"beam_width": 64, "branching": 4}, 256),
    "remask": ({"initial_samples": 256, "elite_size": 64, "children": 256}, 256),
    "dts": ({"leaves_per_iteration": 64}, 64),
    "dts_star": ({"leaves_per_iteration": 64}, 64),
    "mcts": ({"leaves_per_iteration": 64, "num_children": 4}, 256),
}


def build_model(spec: str, length: int, device: torch.device) -> LoadedModel:
    """A checkpoint, or a random seqtree transformer with protein-tiny's tokenizer and diffusion (throughput only)."""
    random_shape = PRESETS.get(spec)
    if random_shape is None and spec.startswith("random:"):
        hidden, layers = (int(v) for v in spec.removeprefix("random:").split("x"))
        random_shape = (hidden, layers)
    if random_shape is None:
        return load_model(spec, device=device)
    from seqtree.models.transformer import SeqTreeTransformer, SeqTreeTransformerConfig

    base = load_model("protein-tiny")
    hidden, layers = random_shape
    config = SeqTreeTransformerConfig(
        vocab_size=base.denoiser.config.vocab_size, hidden_size=hidden, num_layers=layers,
        num_heads=max(1, hidden // 64), max_positions=length, mask_token_id=base.diffusion.mask_id,
    )  # fmt: skip
    torch.manual_seed(0)
    denoiser = SeqTreeTransformer(config).to(device).eval()
    return dataclasses.replace(base, denoiser=denoiser, source=spec, max_length=length)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_rate(model: LoadedModel, precision: str, batch: int, length: int, seconds: float) -> float:
    """Raw rows/s of the denoiser at ``batch`` rows of ``length`` tokens, half of them masked."""
    device = model.device
    denoiser = dataclasses.replace(model, precision=precision).inference_denoiser  # as searches call it
    generator = make_generator(0, device)
    vocab = model.tokenizer.vocab_size
    tokens = torch.randint(2, vocab, (batch, length), generator=generator, device=device)
    tokens = tokens.masked_fill(
        torch.rand(batch, length, generator=generator, device=device) < 0.5, model.diffusion.mask_id
    )
    t = torch.full((batch,), 0.5, device=device)
    with torch.no_grad():
        denoiser(tokens, t)
        _sync(device)
        calls, started = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - started < seconds:
            denoiser(tokens, t)
            calls += 1
            if calls % 4 == 0:
                _sync(device)
        _sync(device)
    return calls * batch / (time.perf_counter() - started)


def residue_fraction(sequences: list[str]) -> torch.Tensor:
    """A cheap oracle (fraction of A, L, E, K): the benchmark measures the engine, not the reward."""
    return torch.tensor([sum(map(s.count, "ALEK")) / max(len(s), 1) for s in sequences], dtype=torch.float64)


def _search_setup(model: LoadedModel, precision: str, algorithm: str, length: int, nfe: int):
    """(problem, parameters, NFE budget) of ``algorithm`` at the benchmark's settings."""
    params, batch = SEARCH_SETTINGS[algorithm]
    params = dict(params)
    if algorithm == "best_of_n":  # whole batches: a last partial batch would time a small, latency-bound call
        params["num_samples"] = batch * max(1, -(-nfe // (batch * 32)))
        nfe = params["num_samples"] * 32
    low = dataclasses.replace(model, precision=precision)
    root = initial_tokens(model.tokenizer, length=length, row_length=length).to(model.device)
    problem = SearchProblem(low.inference_denoiser, model.diffusion, model.tokenizer, residue_fraction, root,
                            num_steps=32, branch_every=4)  # fmt: skip
    return problem, params, nfe


def search_rate(model: LoadedModel, precision: str, algorithm: str, length: int, nfe: int) -> dict:
    """NFE/s of one run of ``algorithm`` with ``nfe`` budget, after an untimed run at half of it (which also pays
    most of CUDA graphs' one-time capture of each row bucket: a steady-state rate)."""
    problem, params, nfe = _search_setup(model, precision, algorithm, length, nfe)
    batch = SEARCH_SETTINGS[algorithm][1]
    with torch.no_grad():
        warm = dict(params, num_samples=batch) if algorithm == "best_of_n" else params
        warm_nfe = max(nfe // 2, 64)
        run_search(algorithm, problem, Budget(nfe=warm_nfe), generator=make_generator(0, model.device),
                   **warm)  # fmt: skip
        _sync(model.device)
        started = time.perf_counter()
        result = run_search(algorithm, problem, Budget(nfe=nfe), generator=make_generator(1, model.device), **params)
        _sync(model.device)
    seconds = time.perf_counter() - started
    return {
        "algorithm": algorithm, "precision": precision, "batch": batch, "nfe": result.nfe,
        "oracle_calls": result.oracle_calls, "seconds": round(seconds, 3), "nfe_per_s": result.nfe / seconds,
        "mean_rows_per_call": result.nfe / max(int(result.extras.get("denoiser_calls", 0)), 1),
        "denoiser_share": float(result.extras.get("denoiser_seconds", 0.0)) / seconds,
    }  # fmt: skip


def host_syncs(model: LoadedModel, precision: str, algorithm: str, length: int, nfe: int) -> dict:
    """One run of ``algorithm`` under :class:`bench.host_syncs.HostSyncCounter`, the engine on its device path
    (forced on a CPU): waits for the device and idle-window operations per denoiser call, and the busiest sites."""
    from unittest import mock

    import seqtree.search.engine as engine_module
    from bench.host_syncs import HostSyncCounter

    problem, params, nfe = _search_setup(model, precision, algorithm, length, nfe)
    probe = HostSyncCounter(model.denoiser)
    probe.mark(problem.root)
    with torch.no_grad(), mock.patch.object(engine_module, "runs_ahead", lambda device: True), probe:
        result = run_search(algorithm, problem, Budget(nfe=nfe), generator=make_generator(1, model.device), **params)
    calls = max(int(result.extras.get("denoiser_calls", 0)), 1)
    top = ", ".join(f"{site} {kind} {n / calls:.2f}" for (site, kind), n in probe.sites.most_common(3))
    return {
        "algorithm": algorithm, "precision": precision, "denoiser_calls": calls,
        "mean_rows_per_call": result.nfe / calls, "waits_per_call": probe.total / calls,
        "idle_ops_per_call": probe.idle_ops / max(probe.calls, 1), "top_waits": top,
    }  # fmt: skip


def profile_search(model: LoadedModel, precision: str, algorithm: str, length: int, nfe: int, out: Path) -> Path:
    """One run of ``algorithm`` under ``torch.profiler``: the top operators by device and by host time, to find
    where the engine leaves the accelerator idle."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if model.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        search_rate(model, precision, algorithm, length, nfe)
    sort = "self_cuda_time_total" if model.device.type == "cuda" else "self_cpu_time_total"
    path = out / f"profile_{algorithm}_{precision}.txt"
    out.mkdir(parents=True, exist_ok=True)
    tables = [prof.key_averages().table(sort_by=key, row_limit=25) for key in dict.fromkeys([sort, "cpu_time_total"])]
    path.write_text("\n\n".join(tables))
    return path


def run(
    out: Path,
    *,
    model_spec: str,
    device_name: str,
    length: int,
    batches: list[int],
    precisions: list[str],
    algorithms: list[str],
    seconds: float,
    profile: bool = False,
    cuda_graphs: bool = False,
    count_syncs: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    device = resolve_device(device_name)
    for precision in precisions:
        check_precision(precision, device)
    model = dataclasses.replace(build_model(model_spec, length, device), cuda_graphs=cuda_graphs)
    parameters = sum(p.numel() for p in model.denoiser.parameters())
    name = f"{model_spec} ({parameters / 1e6:.1f}M parameters, L={length}) on {device}"
    if device.type == "cuda":
        name += f" [{torch.cuda.get_device_name(device)}, {'CUDA graphs' if cuda_graphs else 'eager'}]"
    print(name, flush=True)
    forward_rows = []
    for precision in precisions:
        for batch in batches:
            rate = forward_rate(model, precision, batch, length, seconds)
            forward_rows.append({"precision": precision, "batch": batch, "rows_per_s": rate})
            print(f"forward {precision} batch {batch}: {rate:,.0f} rows/s", flush=True)
    forward = pd.DataFrame(forward_rows)
    raw = {(r["precision"], r["batch"]): r["rows_per_s"] for r in forward_rows}
    search_rows = []
    for precision in precisions:
        for algorithm in algorithms:
            _, batch = SEARCH_SETTINGS[algorithm]
            reference = raw.get((precision, batch)) or forward_rate(model, precision, batch, length, seconds)
            row = search_rate(model, precision, algorithm, length, nfe=max(int(reference * seconds), 2 * batch * 32))
            row["raw_rows_per_s"] = reference
            row["ratio"] = row["nfe_per_s"] / reference
            search_rows.append(row)
            print(
                f"{algorithm:<10} {precision}: {row['nfe_per_s']:,.0f} NFE/s = {row['ratio']:.0%} of raw forward at "
                f"batch {batch} ({row['mean_rows_per_call']:.0f} rows per call on average; denoiser "
                f"{row['denoiser_share']:.0%} of the wall time)",
                flush=True,
            )
    search = pd.DataFrame(search_rows)
    if count_syncs:
        rows = []
        for precision in precisions:
            for algorithm in algorithms:
                row = host_syncs(model, precision, algorithm, length, nfe=2 * SEARCH_SETTINGS[algorithm][1] * 32)
                rows.append(row)
                print(
                    f"{algorithm:<10} {precision}: {row['waits_per_call']:.2f} waits and "
                    f"{row['idle_ops_per_call']:.0f} idle-window operations per denoiser call "
                    f"({row['mean_rows_per_call']:.0f} rows per call; most waits: {row['top_waits']})",
                    flush=True,
                )
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).assign(model=name).to_csv(out / "device_host_syncs.csv", index=False)
    if profile:
        for precision in precisions:
            for algorithm in algorithms:
                nfe = int(raw[(precision, batches[0])] * min(seconds, 1.0))
                print(f"profile: {profile_search(model, precision, algorithm, length, nfe, out)}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    forward.assign(model=name).to_csv(out / "device_forward.csv", index=False)
    search.assign(model=name).to_csv(out / "device_search.csv", index=False)
    return forward, search


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench device", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/device"))
    parser.add_argument("--model", default="transformer-85m", help="checkpoint, transformer-85m or random:HxL")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--length", type=int, default=256, help="tokens per row")
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--algorithms", nargs="+", default=list(SEARCH_SETTINGS), choices=sorted(ALGORITHMS))
    parser.add_argument("--seconds", type=float, default=5.0, help="target seconds per timed configuration")
    parser.add_argument("--profile", action="store_true", help="also write torch.profiler tables per algorithm")
    parser.add_argument("--cuda-graphs", action="store_true", help="replay the denoiser from CUDA graphs")
    parser.add_argument("--host-syncs", action="store_true",
                        help="also count waits for the device and idle-window host operations per denoiser call")
    args = parser.parse_args(argv)
    run(args.out, model_spec=args.model, device_name=args.device, length=args.length, batches=args.batches,
        precisions=args.precisions, algorithms=args.algorithms, seconds=args.seconds, profile=args.profile,
        cuda_graphs=args.cuda_graphs, count_syncs=args.host_syncs)  # fmt: skip


if __name__ == "__main__":
    main()
