"""Language completion alignment across many prompts (issue 15): prompts files, batched lockstep searches equal to
single-prompt runs, resume per prompt, the fluency guard and its models, the alignment metrics, and the text rewards
with tiny local models."""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch
from inprocess import seqtree_inprocess

from seqtree.config import RecipeError
from seqtree.design import StopFlag, run_design
from seqtree.lockstep import LockstepBatcher
from seqtree.oracles import FLOOR, build_oracle, build_oracle_from_spec
from seqtree.prompt_file import read_prompts
from seqtree.prompt_metrics import distinct_n, mean_curve
from seqtree.prompts import run_prompts
from seqtree.recipe import load_design_recipe

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["And God said,", "The LORD is my shepherd;", "Blessed are the meek:"]
STEPS = 8


def _recipe(
    tmp_path: Path, search: str, *, nfe: int = 160, extra: str = "", prompts: list[str] = PROMPTS, design: str = ""
):
    """A text-tiny recipe over ``prompts`` (written to a prompts file next to it); ``design``: more design fields."""
    (tmp_path / "p.txt").write_text("# test prompts\n" + "\n".join(prompts) + "\n")
    (tmp_path / "r.yaml").write_text(
        "name: t\n"
        f"model: {{name: text-tiny, num_steps: {STEPS}, branch_every: 2}}\n"
        f"design: {{prompts_file: p.txt, length: 24, completions_per_prompt: 4{design}}}\n"
        "oracle: {name: vader_sentiment}\n"
        f"search: {search}\n"
        f"budget: {{nfe: {nfe}}}\n"
        f"seed: 3\n{extra}"
    )
    return load_design_recipe(tmp_path / "r.yaml")


def _designs(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"prompt_id": str})


# ------------------------------------------------------------------------------------- batching = single runs
def test_text_tiny_forward_is_batch_invariant_on_cpu():
    """The assumption behind equal results (seqtree.lockstep): a row's logits do not depend on its batch, bitwise."""
    from seqtree.models.loading import load_model

    model = load_model("text-tiny")
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, 258, (24, 128), generator=generator)
    tokens[torch.rand(tokens.shape, generator=generator) < 0.5] = 1
    t = torch.rand(24, generator=generator)
    with torch.no_grad():
        whole = model.denoiser(tokens, t)
        for start, size in ((0, 1), (3, 7), (11, 13)):
            assert torch.equal(model.denoiser(tokens[start : start + size], t[start : start + size]),
                               whole[start : start + size])  # fmt: skip


def test_lockstep_batcher_merges_the_calls_of_its_members_and_hands_each_its_rows():
    calls = []

    def denoiser(tokens, t):
        calls.append(tokens.shape[0])
        return tokens.float().unsqueeze(-1) * 2 + t.view(-1, 1, 1)

    batcher = LockstepBatcher(denoiser)
    members = [batcher.member() for _ in range(3)]
    out = {}

    def search(i):
        with members[i] as member:
            for step in range(4 + i):  # members finish at different times
                x = torch.full((i + 1, 5), 10 * i + step)
                out[(i, step)] = torch.equal(member(x, torch.full((i + 1,), 0.5)), x.float().unsqueeze(-1) * 2 + 0.5)

    threads = [threading.Thread(target=search, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(out.values()) and len(out) == 4 + 5 + 6
    # 4 steps with all three (6 rows), one with two (5 rows), one with the last (3 rows)
    assert calls == [6, 6, 6, 6, 5, 3] and batcher.count.calls == 6 and batcher.count.rows == 32


def test_lockstep_batcher_raises_a_failed_forward_in_every_search_of_the_call():
    def denoiser(tokens, t):
        raise RuntimeError("out of memory")

    batcher = LockstepBatcher(denoiser)
    members, seen = [batcher.member() for _ in range(2)], []

    def search(member):
        with member:
            try:
                member(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1))
            except RuntimeError as error:
                seen.append(str(error))

    threads = [threading.Thread(target=search, args=(m,)) for m in members]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert seen == ["out of memory", "out of memory"]


def _singles(recipe, prompts: list[str], tmp_path: Path) -> list[pd.DataFrame]:
    """Each prompt alone: design.prompt, seed + its index, as plain seqtree design runs write it."""
    tables = []
    for index, prompt in enumerate(prompts):
        design = recipe.design.model_copy(update={"prompts_file": None, "prompt": prompt, "num_designs": 4,
                                                  "completions_per_prompt": None})  # fmt: skip
        single = recipe.model_copy(update={"design": design, "seed": recipe.seed + index})
        tables.append(pd.read_csv(run_design(single, out=tmp_path / f"single-{index}").run_dir / "designs.csv",
                                  keep_default_na=False))  # fmt: skip
    return tables


@pytest.mark.parametrize(
    "search",
    ["{algorithm: best_of_n, num_samples: 16, batch_size: 16}", "{algorithm: dts_star, leaves_per_iteration: 2}"],
)
def test_multi_prompt_run_batches_prompts_and_equals_single_prompt_runs(tmp_path, search):
    recipe = _recipe(tmp_path, search)
    run = run_prompts(recipe, out=tmp_path / "multi")
    summary = run.summary
    singles = _singles(recipe, PROMPTS, tmp_path)
    merged = _designs(tmp_path / "multi" / "designs.csv")
    for index, (prompt, alone) in enumerate(zip(PROMPTS, singles)):
        mine = merged[merged["prompt_id"] == str(index)]
        assert list(mine["prompt"]) == [prompt] * len(mine)
        assert list(mine["sequence"]) == list(alone["sequence"]) and list(mine["reward"]) == list(alone["reward"])
        alone_summary = json.loads((tmp_path / f"single-{index}" / "summary.json").read_text())
        mine_summary = json.loads((tmp_path / "multi" / "prompts" / str(index) / "summary.json").read_text())
        assert mine_summary["nfe"] == alone_summary["nfe"] and mine_summary["seed"] == alone_summary["seed"]
    # NFE counts rows per prompt as the single runs do; the forward calls actually made are far fewer
    assert summary["nfe"] == sum(json.loads((tmp_path / f"single-{i}" / "summary.json").read_text())["nfe"]
                                 for i in range(3))  # fmt: skip
    assert summary["forward"]["rows"] == summary["nfe"]
    assert summary["forward"]["calls"] < summary["denoiser_calls"]
    if "best_of_n" in search:  # one batch of STEPS reverse steps per prompt (fewer calls where the cache skips one)
        assert summary["forward"]["calls"] < len(PROMPTS) * STEPS
    assert summary["prompts_done"] == ["0", "1", "2"] and not summary["interrupted"]


def test_completions_keep_the_prompt_tokens_and_hold_no_special_tokens(tmp_path):
    recipe = _recipe(tmp_path, "{algorithm: best_of_n, num_samples: 8, batch_size: 8}")
    run = run_prompts(recipe, out=tmp_path / "run")
    from seqtree.models.loading import load_model

    model = load_model("text-tiny")
    for index, prompt in enumerate(PROMPTS):
        result = run.result[str(index)]
        root = torch.tensor(model.tokenizer.encode(prompt))
        assert torch.equal(result.designs.tokens[:, : len(root)], root.expand(len(result.designs.tokens), -1))
        assert not (result.designs.tokens == model.tokenizer.mask_id).any()
    designs = _designs(tmp_path / "run" / "designs.csv")
    for row in designs.itertuples():
        assert row.sequence == row.prompt + row.completion  # byte-level decoding is a concatenation
        assert "\x00" not in row.completion and "\x01" not in row.completion  # pad and mask ids decode to nothing


def test_bert_completions_hold_no_special_tokens(tmp_path, tiny_bert_dir):
    recipe = _recipe(
        tmp_path, "{algorithm: best_of_n, num_samples: 4, batch_size: 4}", prompts=["the cat sat", "a dog"]
    )
    recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"name": str(tiny_bert_dir)})})
    run = run_prompts(recipe, out=tmp_path / "bert")
    designs = _designs(tmp_path / "bert" / "designs.csv")
    assert len(designs) and run.summary["forward"]["calls"] > 0
    for completion in designs["completion"]:
        assert not any(token in completion for token in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"))


# ---------------------------------------------------------------------------------------------- prompts files
@pytest.mark.parametrize(
    ("content", "name", "needle"),
    [
        ("", "p.txt", "no prompts"),
        ("# only a comment\n\n", "p.txt", "no prompts"),
        (
            '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
            "p.jsonl",
            "line 2: id 'a' already used on line 1",
        ),
        ('{"prompt": "x"}\nnot json\n', "p.jsonl", "line 2: not a JSON object"),
        ('{"id": "a/b", "prompt": "x"}\n', "p.jsonl", "line 1: id 'a/b'"),
        ('{"id": "a", "text": "x"}\n', "p.jsonl", "line 1: unknown key 'text'"),
        ('{"id": "a"}\n', "p.jsonl", "line 1: no prompt"),
        ('{"id": 1, "prompt": 5}\n', "p.jsonl", "line 1: prompt of type int"),
        ('["x"]\n', "p.jsonl", "line 1: expected an object"),
    ],
)
def test_bad_prompts_files_are_one_line_naming_the_field_and_line(tmp_path, content, name, needle):
    (tmp_path / name).write_text(content)
    with pytest.raises(RecipeError, match="^design.prompts_file: ") as error:
        read_prompts(tmp_path / name)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_prompts_files_read_text_and_jsonl_exactly(tmp_path):
    (tmp_path / "p.txt").write_text("# c\nAnd God said, \n\n  indented\n")
    assert [(p.id, p.text, p.index, p.line) for p in read_prompts(tmp_path / "p.txt")] == [
        ("0", "And God said, ", 0, 2), ("1", "  indented", 1, 4)]  # fmt: skip
    (tmp_path / "p.jsonl").write_text(
        '{"id": "gen-1", "prompt": "In the"}\n\n{"prompt": "#x"}\n{"id": 7, "prompt": ""}\n'
    )
    assert [(p.id, p.text, p.index) for p in read_prompts(tmp_path / "p.jsonl")] == [
        ("gen-1", "In the", 0), ("1", "#x", 1), ("7", "", 2)]  # fmt: skip


def test_prompts_file_is_relative_to_the_recipe_and_a_prompt_too_long_names_its_line(tmp_path):
    recipe = _recipe(tmp_path, "{algorithm: best_of_n}", prompts=["fine", "x" * 120, "fine too"])
    assert recipe.design.prompts_file == tmp_path / "p.txt"
    result = seqtree_inprocess("validate", str(tmp_path / "r.yaml"))
    assert result.returncode == 2 and "design.prompts_file:" in result.stderr and "line 3:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    both = seqtree_inprocess("validate", str(tmp_path / "r.yaml"), "--set", "design.prompt=x")
    assert both.returncode == 2 and "prompts_file or prompt" in both.stderr


# ------------------------------------------------------------------------------------------- resume per prompt
class _CountingStop(StopFlag):
    """A stop flag that asks to stop after ``limit`` looks at it (Ctrl-C at a known point)."""

    def __init__(self, limit: float = math.inf) -> None:
        super().__init__()
        self.limit, self.looks = limit, 0

    @property
    def requested(self) -> bool:  # type: ignore[override]
        self.looks += 1
        return self.looks > self.limit

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def test_interrupted_run_resumes_only_the_prompts_not_done_to_the_uninterrupted_result(tmp_path):
    """One prompt at a time (prompt_batch 1) so that the stop lands at a known point: inside prompt 1's DTS* search.
    The resumed run continues prompt 1's saved tree, runs prompt 2, leaves prompt 0 alone, and ends with the designs
    of an uninterrupted run that searched all three prompts in lockstep."""
    search = "{algorithm: dts_star, leaves_per_iteration: 2}"
    whole = run_prompts(_recipe(tmp_path, search), out=tmp_path / "whole").summary
    recipe = _recipe(tmp_path, search, design=", prompt_batch: 1")
    counter, at_first = _CountingStop(), []
    run_prompts(recipe, out=tmp_path / "count", stop=counter,
                log=lambda line: at_first.append(counter.looks) if line.startswith("prompt 0:") else None)  # fmt: skip
    stop = _CountingStop(at_first[0] + 6)
    cut = run_prompts(recipe, out=tmp_path / "cut", stop=stop).summary
    assert cut["interrupted"] and cut["prompts_done"] == ["0"] and cut["prompts_interrupted"] == ["1"]
    assert (
        cut["prompts_missing"] == ["2"] and (tmp_path / "cut" / "prompts" / "1" / "search_state.safetensors").is_file()
    )
    first = (tmp_path / "cut" / "prompts" / "0" / "designs.csv").read_text()
    lines: list[str] = []
    resumed = run_prompts(load_design_recipe(tmp_path / "r.yaml"), out=tmp_path / "cut", resume=True, log=lines.append)
    assert [line.split(":")[0] for line in lines if line.startswith("prompt ")] == ["prompt 1", "prompt 2"]
    assert (tmp_path / "cut" / "prompts" / "0" / "designs.csv").read_text() == first
    assert not resumed.summary["interrupted"] and resumed.summary["nfe"] == whole["nfe"]
    a, b = _designs(tmp_path / "whole" / "designs.csv"), _designs(tmp_path / "cut" / "designs.csv")
    assert list(a["sequence"]) == list(b["sequence"]) and list(a["reward"]) == list(b["reward"])


# ------------------------------------------------------------------------------------------------ fluency guard
def test_fluency_constraint_floors_with_a_reason_and_the_term_adds_to_the_reward(tmp_path):
    search, every = "{algorithm: best_of_n, num_samples: 16, batch_size: 16}", ", completions_per_prompt: 16"
    run_prompts(_recipe(tmp_path, search, extra="fluency: {samples: 4}\n", design=every), out=tmp_path / "plain")
    table = _designs(tmp_path / "plain" / "designs.csv")
    threshold = float(table["fluency"].median())  # half the completions fall below it
    (tmp_path / "guard").mkdir()
    guard = f"fluency: {{samples: 4, min_fluency: {threshold}}}\n"
    guarded = _recipe(tmp_path / "guard", search, extra=guard, design=every)
    run_prompts(guarded, out=tmp_path / "guarded")
    rows = _designs(tmp_path / "guarded" / "designs.csv")
    below = rows["fluency"] < threshold
    assert below.any() and (~below).any()
    assert (rows.loc[below, "reward"] == FLOOR).all() and (rows.loc[~below, "reward"] > FLOOR).all()
    vader = build_oracle("vader_sentiment")
    assert list(rows.loc[~below, "reward"]) == vader(list(rows.loc[~below, "sequence"])).tolist()
    reasons = json.loads((tmp_path / "guarded" / "prompts" / "0" / "summary.json").read_text())["invalid"]["reasons"]
    assert reasons == {f"fluency below min_fluency {threshold:g}": int((below & (rows["prompt_id"] == "0")).sum())}
    (tmp_path / "term").mkdir()
    term = _recipe(tmp_path / "term", search, extra="fluency: {samples: 4, weight: 0.5}\n", design=every)
    summary = run_prompts(term, out=tmp_path / "term-run").summary
    rows = _designs(tmp_path / "term-run" / "designs.csv")
    expected = vader(list(rows["sequence"])).numpy() + 0.5 * rows["fluency"].to_numpy()
    assert rows["reward"].to_numpy() == pytest.approx(expected, abs=1e-12)
    # the fluency of every scored sequence was computed (4 rows each), and counted
    assert summary["fluency"]["rows"] == 4 * summary["oracle_calls"] and summary["fluency"]["calls"] >= 1


def _toy_model():
    from seqtree.models.framing import Framing
    from seqtree.models.loading import LoadedModel
    from seqtree.testing import EnumeratedToy

    toy = EnumeratedToy(num_states=4, length=5)
    model = LoadedModel(toy.denoiser, toy.tokenizer, toy.diffusion, "toy", 5, "dna", framing=Framing("toy"))
    return toy, model


def test_self_fluency_is_the_nelbo_of_the_completion_given_the_prompt():
    """With the exact denoiser the NELBO's expectation is -log p(completion | prompt) (seqtree.testing); the estimate
    over 4,096 times lands within 4 standard errors of it, and the joint NELBO (the prompt masked too, the wrong
    variant) lands further away than that, by -log2 p(prompt) / 3 = 1.58 bits per byte: the toy's least likely
    two-letter prompt, TA (probability 0.038), and its most likely completion, CAG (0.173)."""
    from seqtree.oracles.fluency import FluencyCount, SelfNelboFluency

    toy, model = _toy_model()
    prompt, completion = "TA", "CAG"
    x = torch.tensor(toy.tokenizer.encode(prompt + completion))
    probs = toy.denoiser.probs
    index = int(toy.denoiser.index_of(x.unsqueeze(0)))
    same_prompt = (toy.denoiser.sequences[:, :2] == x[:2] - 2).all(-1)
    exact = -math.log(float(probs[index] / probs[same_prompt].sum())) / math.log(2) / len(completion)
    scorer = SelfNelboFluency(model, samples=4096)
    count = FluencyCount()
    estimate = float(scorer.bits_per_byte(prompt, [completion], count)[0])
    assert count.rows == 4096 and count.calls == 8  # 512 rows per forward call
    # the standard error of the mean of the 4,096 per-time terms (stratified times make it smaller still)
    generator = torch.Generator().manual_seed(0)
    t = toy.diffusion.sample_times(4096, generator)
    rows = x.expand(4096, -1)
    x_t = toy.diffusion.forward_mask(
        rows, t, generator, torch.tensor([False, False, True, True, True]).expand(4096, -1)
    )
    terms = toy.diffusion.schedule.nelbo_weight(t) * -(toy.diffusion.denoise(toy.denoiser, x_t, t).gather(
        -1, rows.unsqueeze(-1)).squeeze(-1).masked_fill(x_t != 1, 0.0)).sum(-1)  # fmt: skip
    assert float(terms.mean()) / math.log(2) / 3 == pytest.approx(estimate, rel=1e-6)  # the same estimator
    se = float(terms.std()) / math.sqrt(4096) / math.log(2) / 3
    assert abs(estimate - exact) < 4 * se
    joint = toy.diffusion.nelbo(toy.denoiser, rows, generator=torch.Generator().manual_seed(0))
    assert abs(float(joint.nats.mean()) / math.log(2) / 3 - exact) > 4 * se


def test_self_fluency_of_a_completion_does_not_depend_on_its_batch():
    from seqtree.oracles.fluency import FluencyCount, SelfNelboFluency

    _, model = _toy_model()
    scorer = SelfNelboFluency(model, samples=8)
    alone = scorer.bits_per_byte("AC", ["GTA"], FluencyCount())
    together = scorer.bits_per_byte("AC", ["TTT", "GTA", "CAG"], FluencyCount())
    assert float(together[1]) == pytest.approx(float(alone[0]), rel=1e-6)
    assert scorer.check("AC", "") == "empty completion" and "fluency:" in scorer.check("AC", "GTAA")


def _tiny_gpt2(folder: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    backend.train_from_iterator(["And God said, Let there be light.", "The LORD is my shepherd."] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_causal_lm_fluency_is_the_log_likelihood_of_the_completion_after_the_prompt(tmp_path):
    """Against Hugging Face's own loss with the BOS and prompt positions left out of the labels; scoring the prompt
    tokens too (the wrong variant) gives another number."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seqtree.oracles.fluency import CausalLMFluency, FluencyCount

    path = _tiny_gpt2(tmp_path / "gpt2")
    scorer = CausalLMFluency(str(path))
    prompt, completions = "And God said,", [" Let there be light.", " The LORD", " Let there be"]
    count = FluencyCount()
    bits = scorer.bits_per_byte(prompt, completions, count)
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    context = [tokenizer.bos_token_id, *tokenizer(prompt)["input_ids"]]
    lengths = {len(tokenizer(c)["input_ids"]) for c in completions}
    assert count.rows == 3 and count.calls == len(lengths) < 3  # one call per length, no padding
    for completion, value in zip(completions, bits):
        ids = tokenizer(completion)["input_ids"]
        tokens = torch.tensor([context + ids])
        labels = tokens.clone()
        labels[0, : len(context)] = -100
        with torch.no_grad():
            nats = float(model(input_ids=tokens, labels=labels).loss) * len(ids)
            everything = float(model(input_ids=tokens, labels=tokens).loss) * (len(context) + len(ids) - 1)
        size = len(completion.encode())
        assert value == pytest.approx(nats / math.log(2) / size, rel=1e-5)
        assert abs(value - everything / math.log(2) / size) > 0.1
    assert scorer.check(prompt, "") == "empty completion" and "exceed" in scorer.check(prompt, " light" * 80)


def test_a_causal_lm_fluency_model_runs_by_path_and_a_bad_path_is_refused(tmp_path):
    path = _tiny_gpt2(tmp_path / "gpt2")
    recipe = _recipe(tmp_path, "{algorithm: best_of_n, num_samples: 8, batch_size: 8}",
                     extra=f"fluency: {{model: {path}}}\n", prompts=PROMPTS[:2])  # fmt: skip
    summary = run_prompts(recipe, out=tmp_path / "run").summary
    assert summary["fluency"]["model"] == str(path) and summary["fluency"]["rows"] == 8
    assert math.isfinite(summary["metrics"]["fluency_mean"]) and summary["metrics"]["fluency_mean"] < 0
    bad = seqtree_inprocess("validate", str(tmp_path / "r.yaml"), "--set", f"fluency.model={tmp_path / 'nothing'}")
    assert bad.returncode == 2 and bad.stderr.startswith("error: fluency.model:")


# ------------------------------------------------------------------------------------------------------ metrics
def test_distinct_n_counts_distinct_word_ngrams_over_all_ngrams_within_each_completion():
    texts = ["the cat sat", "the cat ran", "a"]
    assert distinct_n(texts, 1) == pytest.approx(5 / 7)  # the, cat, sat, the, cat, ran, a: 5 distinct
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (the cat) twice, (cat sat), (cat ran)
    assert distinct_n(texts, 3) == pytest.approx(2 / 2)  # n-grams never cross completions: (sat the) is not one
    assert math.isnan(distinct_n(["a", "b"], 2)) and distinct_n(["  x\ty\n"], 2) == 1.0


def test_mean_curve_averages_each_prompts_best_so_far_over_the_prompts_that_have_one():
    a = pd.DataFrame({"nfe": [10, 30], "oracle_calls": [1, 3], "best_reward": [0.2, 0.6], "mean_reward": [0.2, 0.4]})
    b = pd.DataFrame({"nfe": [20], "oracle_calls": [2], "best_reward": [1.0], "mean_reward": [1.0]})
    curve = mean_curve({"a": a, "b": b}, points=4).set_index("nfe")
    assert list(curve.index) == [0, 10, 20, 30]
    assert math.isnan(curve.loc[0, "best_reward"]) and curve.loc[0, "prompts"] == 0
    assert curve.loc[10, "best_reward"] == pytest.approx(0.2) and curve.loc[10, "prompts"] == 1
    assert curve.loc[20, "best_reward"] == pytest.approx(0.6) and curve.loc[30, "best_reward"] == pytest.approx(0.8)
    assert curve.loc[30, "oracle_calls"] == pytest.approx(2.5) and curve.loc[20, "mean_reward"] == pytest.approx(0.6)


# -------------------------------------------------------------------------------------------- the command line
def test_cli_design_with_a_prompts_file_writes_per_prompt_and_merged_outputs(tmp_path):
    _recipe(tmp_path, "{algorithm: best_of_n, num_samples: 8, batch_size: 8}")
    out = tmp_path / "cli"
    result = seqtree_inprocess("design", str(tmp_path / "r.yaml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "best reward" in result.stdout and "3 of 3 to search" in result.stderr
    for name in ("recipe.yaml", "prompts.jsonl", "designs.csv", "designs.jsonl", "prompts.csv", "curve.csv",
                 "curves.csv", "curve.png", "summary.json"):  # fmt: skip
        assert (out / name).is_file(), name
    designs = _designs(out / "designs.csv")
    assert list(designs.columns[:6]) == ["prompt_id", "prompt", "rank", "completion", "reward", "fluency"]
    assert designs.groupby("prompt_id")["reward"].apply(lambda r: r.is_monotonic_decreasing).all()
    table = pd.read_csv(out / "prompts.csv", dtype={"prompt_id": str})
    assert list(table["prompt"]) == PROMPTS and list(table["status"]) == ["done"] * 3
    for column in ("reward_mean", "reward_best", "fluency_mean", "distinct_1", "distinct_2", "distinct_3"):
        assert table[column].notna().all(), column
    assert list(table["seed"]) == [3, 4, 5]
    curve = pd.read_csv(out / "curve.csv")
    assert curve["prompts"].iloc[-1] == 3 and curve["nfe"].is_monotonic_increasing
    again = seqtree_inprocess("design", "--resume", str(out))  # nothing left to do
    assert again.returncode == 0 and "0 of 3 to search" in again.stderr


def test_a_run_whose_searches_all_fail_is_one_line_and_leaves_no_run_folder(tmp_path, monkeypatch):
    (tmp_path / "wrong_shape.py").write_text("def score(sequences):\n    return [1.0]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _recipe(tmp_path, "{algorithm: best_of_n, num_samples: 8, batch_size: 8}")
    oracle = "oracle={name: custom, params: {function: 'wrong_shape:score'}}"
    result = seqtree_inprocess("design", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--set", oracle)
    assert result.returncode == 2 and "error: prompt 0 (line 2): oracle 'score' returned 1 value" in result.stderr
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ text rewards
def test_topic_words_counts_distinct_topic_words_up_to_the_target():
    oracle = build_oracle("topic_words", words=["sea", "Waters", "ship"], target=2)
    values = oracle(["The SEA and the waters.", "sea, sea, sea", "seas of ships", "the ship's sea", "x"]).tolist()
    assert values == [1.0, 0.5, 0.0, 1.0, 0.0]  # whole words only (not "seas"), of letters only ("ship's": ship)
    with pytest.raises(ValueError, match="one word"):
        build_oracle("topic_words", words=["two words"])


def test_char_ngram_similarity_is_the_cosine_of_character_ngram_counts():
    oracle = build_oracle("char_ngram_similarity", target="abcd", n=2)  # ab, bc, cd
    values = oracle(["abab", "ABCD", "a  b", "xyz", "a"]).tolist()
    # abab: ab x2, ba -> 2 / (sqrt(5) sqrt(3)); whitespace runs are one space ("a b": "a ", " b"); too short: 0
    assert values == pytest.approx([2 / math.sqrt(15), 1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="at least one 3-gram"):
        build_oracle("char_ngram_similarity", target="ab")


def test_weighted_sum_of_text_rewards_is_the_weighted_sum_of_its_terms(tmp_path):
    from seqtree.oracles.testing import build_tiny_text_classifier

    path = str(build_tiny_text_classifier(tmp_path / "clf"))
    texts = ["What a wonderful day!", "This is terrible and sad.", "the sea"]
    spec = {"sum": [{"name": "vader_sentiment", "weight": 2.0},
                    {"name": "hf_classifier", "params": {"model": path, "label": "POSITIVE"}, "weight": 0.5},
                    {"name": "topic_words", "params": {"words": ["sea"], "target": 1}, "weight": -1.0}]}  # fmt: skip
    got = build_oracle_from_spec(spec)(texts)
    vader = build_oracle("vader_sentiment")(texts)
    logp = build_oracle("hf_classifier", model=path, label="POSITIVE")(texts)
    topic = build_oracle("topic_words", words=["sea"], target=1)(texts)
    assert torch.allclose(got, 2.0 * vader + 0.5 * logp - topic, atol=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="the text extra is not installed")
def test_embedding_similarity_is_the_cosine_to_the_target_under_a_tiny_local_model(tmp_path):
    from sentence_transformers import SentenceTransformer

    from seqtree.oracles.testing import build_tiny_sentence_transformer

    path = str(build_tiny_sentence_transformer(tmp_path / "st"))
    oracle = build_oracle("embedding_similarity", model=path, target="a happy day")
    texts = ["a happy day", "the sea", "z"]
    values = oracle(texts)
    assert values[0] == pytest.approx(1.0, abs=1e-6)  # the target itself
    model = SentenceTransformer(path, device="cpu")
    embeddings = torch.nn.functional.normalize(torch.as_tensor(model.encode(texts + ["a happy day"])).double(), dim=-1)
    assert torch.allclose(values, embeddings[:3] @ embeddings[3], atol=1e-5)
    assert oracle.score([""]).reasons == ["empty text"]
