"""The models users bring (issue 14), one tiny randomly initialised model per family, built and saved by the test:
MDLM and LLaDA stand-ins loaded through transformers' remote-code path, a DNABERT-2-style BPE DNA model, and RoBERTa,
DistilBERT and ModernBERT masked LMs with sub-word tokenisers. Each is checked the same way (finite logits on fully
masked rows, rows of design length plus the frame, the frame and prompt never changed, one NFE per row, designs
decoded without specials, a design run through the command line), plus what only that family has."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from inprocess import seqtree_inprocess
from test_framing import RowRecorder

from seqtree.device import make_generator
from seqtree.generate import model_root
from seqtree.models.loading import load_model
from seqtree.search import Budget, SearchProblem, run_search

REMOTE_CODE = Path(__file__).parent / "remote_code"
ENGLISH = [
    "the cat sat on the mat and the dog sat on the rug",
    "a good day is a day with sun and rain and good friends",
    "she said that the cats were happy and the dogs were sad",
    "and the lord said let there be light and there was light",
    "running jumping walking talking singing dancing",
] * 4


def _byte_bpe(specials: list[str], vocab_size: int = 320):
    """A byte-level BPE (GPT-2's, RoBERTa's and ModernBERT's kind: pieces carry their leading space as ``Ġ``)
    trained on a few English sentences, with ``specials`` first (ids 0, 1, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(ENGLISH, trainer)
    return backend


def _remote_code_model(directory: Path, family: str, config: dict, auto_class: str) -> None:
    """Copy a stand-in's code into ``directory``, write its config with ``auto_map``, build the model through
    transformers' remote-code path and save it there (weights, config and code), as a hub repository holds them."""
    import transformers

    for source in (REMOTE_CODE / family).glob("*.py"):
        shutil.copy(source, directory / source.name)
    (directory / "config.json").write_text(json.dumps(config))
    loaded_config = transformers.AutoConfig.from_pretrained(directory, trust_remote_code=True)
    torch.manual_seed(0)
    model = getattr(transformers, auto_class).from_config(loaded_config, trust_remote_code=True)
    model.save_pretrained(directory)


@pytest.fixture(scope="module")
def mdlm_dir(tmp_path_factory):
    """MDLM's published format: GPT-2's kind of tokenizer (no mask token; <|endoftext|> is BOS, EOS and UNK), a
    config whose vocab_size is the tokenizer's + 1 (the appended mask), a sigma-conditioned DiT loaded with
    AutoModelForMaskedLM and remote code. time_conditioning is on, so the noise level the adapter passes matters."""
    from transformers import GPT2TokenizerFast

    directory = tmp_path_factory.mktemp("mdlm")
    tokenizer = GPT2TokenizerFast(tokenizer_object=_byte_bpe(["<|endoftext|>"]))
    tokenizer.save_pretrained(directory)
    config = {
        "model_type": "mdlm", "architectures": ["MDLM"],
        "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig", "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
        "vocab_size": len(tokenizer) + 1, "model_length": 64, "hidden_dim": 32, "cond_dim": 16, "n_blocks": 2,
        "n_heads": 2, "dropout": 0.0, "time_conditioning": True,
    }  # fmt: skip
    _remote_code_model(directory, "mdlm", config, "AutoModelForMaskedLM")
    return directory


LLADA_PADDING = 40  # embedding rows beyond the tokenizer, as LLaDA's 126,464-row table exceeds its tokenizer


@pytest.fixture(scope="module")
def llada_dir(tmp_path_factory):
    """LLaDA's format: a tokenizer that puts <|startoftext|> before a sequence and names no mask token; the mask is
    the dedicated id of <|mdm_mask|>, named by config.mask_token_id (126336 in LLaDA-8B); an embedding table wider
    than the tokenizer; AutoModel with remote code, no time input."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("llada")
    backend = _byte_bpe(["<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"])
    backend.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A", special_tokens=[("<|startoftext|>", 0)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|startoftext|>", eos_token="<|endoftext|>"
    )
    tokenizer.save_pretrained(directory)
    size = len(tokenizer) + LLADA_PADDING
    config = {
        "model_type": "llada", "architectures": ["LLaDAModelLM"],
        "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM",
                     "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
        "d_model": 32, "n_heads": 2, "n_layers": 2, "mlp_hidden_size": 64, "vocab_size": size, "embedding_size": size,
        "max_sequence_length": 64, "mask_token_id": tokenizer.convert_tokens_to_ids("<|mdm_mask|>"),
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
    }  # fmt: skip
    _remote_code_model(directory, "llada", config, "AutoModel")
    return directory


@pytest.fixture(scope="module")
def dnabert2_dir(tmp_path_factory):
    """DNABERT-2's kind: a BertForMaskedLM over a BPE vocabulary of ACGT pieces, [CLS] ... [SEP] framing."""
    from tokenizers import Tokenizer, models, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("dnabert2")
    rng = random.Random(0)
    genome = ["".join(rng.choice("ACGT") for _ in range(300)) for _ in range(40)]
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator(genome, trainers.BpeTrainer(
        vocab_size=48, special_tokens=specials, initial_alphabet=list("ACGT"), show_progress=False
    ))  # fmt: skip
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


ROBERTA_POSITIONS = 66  # RoBERTa numbers positions from pad id + 1 = 2: 64 tokens fit, as 512 of RoBERTa's 514


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
    """RoBERTa: byte-level BPE (``Ġ`` pieces), <s> ... </s> framing, pad id 1, positions offset by it."""
    from tokenizers import processors
    from transformers import RobertaConfig, RobertaForMaskedLM, RobertaTokenizerFast

    directory = tmp_path_factory.mktemp("roberta")
    backend = _byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = RobertaTokenizerFast(tokenizer_object=backend)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=ROBERTA_POSITIONS, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory):
    """DistilBERT: WordPiece (``##`` continuation pieces), [CLS] ... [SEP] framing, no token type ids."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizer

    directory = tmp_path_factory.mktemp("distilbert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "the", "cat", "sat", "on",
             "mat", "dog", "##s", "##ing", "##ed", ".", ","]  # fmt: skip
    (directory / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = DistilBertTokenizer(str(directory / "vocab.txt"))
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64
    )
    torch.manual_seed(0)
    DistilBertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def modernbert_dir(tmp_path_factory):
    """ModernBERT: byte-level BPE with BERT's special tokens, [CLS] ... [SEP] framing, 8,192-position config."""
    from tokenizers import processors
    from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("modernbert")
    backend = _byte_bpe(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]",
    )  # fmt: skip
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=8192, pad_token_id=3, cls_token_id=1, sep_token_id=2, bos_token_id=1, eos_token_id=2,
        global_attn_every_n_layers=1,
    )  # fmt: skip
    torch.manual_seed(0)
    ModernBertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@dataclass(frozen=True)
class Family:
    """One family's test: its fixture, the tokens that frame a design, a prompt, and the recipe its CLI run uses."""

    fixture: str
    prefix: tuple[str, ...]
    suffix: tuple[str, ...]
    prompt: str
    recipe: str
    ordinary: str  # text whose pieces must all be design tokens
    remote: bool = False


TEXT = "recipes/text.yaml"
BYTE_PIECES = "zebra quiz jumps"  # letters a tiny byte-level BPE keeps as single pieces ("z", "q", "x", ...)
FAMILIES = {
    "mdlm": Family("mdlm_dir", ("<|endoftext|>",), ("<|endoftext|>",), "the cat", TEXT, BYTE_PIECES, remote=True),
    "llada": Family("llada_dir", ("<|startoftext|>",), (), "the cat", TEXT, BYTE_PIECES, remote=True),
    "dnabert2": Family("dnabert2_dir", ("[CLS]",), ("[SEP]",), "ACGTAC", "recipes/dna.yaml", "ACGTTGCA"),
    "roberta": Family("roberta_dir", ("<s>",), ("</s>",), "the cat", TEXT, BYTE_PIECES),
    "distilbert": Family("distilbert_dir", ("[CLS]",), ("[SEP]",), "the cat", TEXT, "z q x the cats"),
    "modernbert": Family("modernbert_dir", ("[CLS]",), ("[SEP]",), "the cat", TEXT, BYTE_PIECES),
}


def _load(family: Family, request):
    return load_model(request.getfixturevalue(family.fixture), trust_remote_code=family.remote)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_is_framed_finite_counted_once_per_row_and_decoded_without_specials(name, request):
    family = FAMILIES[name]
    model = _load(family, request)
    tokenizer, hf = model.tokenizer, model.tokenizer.hf
    assert tuple(hf.convert_ids_to_tokens(list(model.framing.prefix))) == family.prefix
    assert tuple(hf.convert_ids_to_tokens(list(model.framing.suffix))) == family.suffix
    prompt = tokenizer.encode(family.prompt)
    root = model_root(model, prompt=family.prompt, length=6)
    fixed = len(family.prefix) + len(prompt)
    assert len(root) == fixed + 6 + len(family.suffix)  # design + prompt + frame, not the model's maximum length
    assert (root[fixed : fixed + 6] == tokenizer.mask_id).all()
    # ordinary pieces are design tokens: single letters too (a byte-level vocabulary holds all 20 amino-acid letters
    # as single pieces, and was once taken for a protein vocabulary with every other letter barred)
    ordinary = tokenizer.encode(family.ordinary)
    assert ordinary and not model.diffusion.forbidden[ordinary].any()

    masked = model_root(model, length=10)
    with torch.no_grad():
        logits = model.denoiser(masked.expand(3, -1), torch.tensor([1.0, 0.5, 0.1]))
    assert logits.shape[:2] == (3, len(masked)) and logits.shape[2] >= model.diffusion.vocab_size
    assert torch.isfinite(logits).all()  # fully masked rows

    recorder, scored = RowRecorder(model.denoiser), []

    def oracle(sequences: list[str]) -> torch.Tensor:
        scored.extend(sequences)
        return torch.zeros(len(sequences))

    problem = SearchProblem(recorder, model.diffusion, tokenizer, oracle, root, num_steps=6, branch_every=2)
    result = run_search("dts_star", problem, Budget(nfe=60), generator=make_generator(0), leaves_per_iteration=2)
    rows = torch.cat(recorder.rows)
    assert rows.shape[1] == len(root) and result.nfe == rows.shape[0]  # one NFE per row the model saw
    unchanged = torch.ones(len(root), dtype=torch.bool)
    unchanged[fixed : fixed + 6] = False  # the frame and the prompt
    assert (rows[:, unchanged] == root[unchanged]).all()
    assert (result.designs.tokens[:, unchanged] == root[unchanged]).all()
    tokens = result.designs.tokens
    assert (tokens != tokenizer.mask_id).all() and not model.diffusion.forbidden[tokens[:, fixed : fixed + 6]].any()
    specials = [t for t in hf.all_special_tokens if t]
    for row, sequence in zip(tokens.tolist(), result.designs.sequences):
        assert sequence == tokenizer.decode(row[len(family.prefix) : len(row) - len(family.suffix)])
        assert not any(special in sequence for special in specials), sequence
        assert sequence.replace(" ", "").startswith(family.prompt.replace(" ", ""))
    assert scored and not any(special in sequence for sequence in scored for special in specials)
    if name == "dnabert2":  # the oracle reads bases, joined without spaces
        assert all(set(sequence) <= set("ACGT") for sequence in scored)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_design_run_through_the_cli(name, request, tmp_path):
    family = FAMILIES[name]
    folder = request.getfixturevalue(family.fixture)
    out = tmp_path / "run"
    extra = ["--set", "model.trust_remote_code=true"] if family.remote else []
    result = seqtree_inprocess(
        "design", family.recipe, "--set", f"model.name={folder}", "--set", "design.length=6",
        "--set", f"design.prompt={family.prompt}", "--set", "budget.nfe=60", "--set", "budget.seconds=null",
        "--set", "search={algorithm: best_of_n}", "--out", str(out), *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv", keep_default_na=False)
    assert len(designs) > 0
    for sequence in designs["sequence"]:
        assert sequence.replace(" ", "").startswith(family.prompt.replace(" ", ""))
        assert not any(special in sequence for special in ("<|", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"))


def test_mdlm_is_told_its_own_noise_level_and_its_mask_is_the_appended_id(mdlm_dir):
    """MDLM's sigma(t) = -log(1 - (1 - eps) t), eps = 1e-3 (kuleshov-group/mdlm noise_schedule.LogLinearNoise),
    reaches the network as ``timesteps``; passing t itself (the wrong variant) differs from it by 0.04 at t = 0.25
    and 5.9 at t = 1, far beyond the float32 tolerance used."""
    model = load_model(mdlm_dir, trust_remote_code=True)
    hf = model.tokenizer.hf
    assert model.tokenizer.mask_id == len(hf) == model.denoiser.config.vocab_size - 1  # MDLM's mask_index
    assert model.diffusion.vocab_size == len(hf) + 1 and model.diffusion.forbidden[model.tokenizer.mask_id]
    seen = []
    handle = model.denoiser.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["timesteps"].clone()), with_kwargs=True
    )
    root = model_root(model, length=5).expand(3, -1)
    t = torch.tensor([0.25, 1.0, 1.0])
    with torch.no_grad():
        logits = model.denoiser(root, t)
    handle.remove()
    expected = -torch.log1p(-(1 - 1e-3) * t)
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=1e-5)
    assert (seen[0] - t).abs().min() > 0.01  # the wrong variant, t passed as sigma, is told apart
    # same rows: equal noise levels give equal logits, different ones different logits (the model used sigma)
    assert torch.equal(logits[1], logits[2]) and (logits[0] - logits[1]).abs().max() > 1e-5


def test_llada_takes_its_mask_id_from_the_config_and_never_samples_beyond_its_tokenizer(llada_dir):
    model = load_model(llada_dir, trust_remote_code=True)
    hf, config = model.tokenizer.hf, json.loads((llada_dir / "config.json").read_text())
    assert hf.mask_token_id is None and model.tokenizer.mask_id == config["mask_token_id"] < len(hf)
    assert model.diffusion.vocab_size == config["vocab_size"] == len(hf) + LLADA_PADDING
    assert model.diffusion.forbidden[len(hf) :].all() and not model.diffusion.forbidden[3 : len(hf) - 1].all()
    assert model.max_length == config["max_sequence_length"]


def test_dna_bpe_designs_are_stated_in_tokens_and_reported_in_bases(dnabert2_dir, tmp_path):
    model = load_model(dnabert2_dir)
    assert model.tokenizer.length_unit == "bases" and model.tokenizer.decode(model.tokenizer.encode("ACGTTGCA")) == (
        "ACGTTGCA"
    )  # joined without the spaces the tokenizer's own decode would put between pieces
    out = tmp_path / "run"
    result = seqtree_inprocess(
        "design", "recipes/dna.yaml", "--set", f"model.name={dnabert2_dir}", "--set", "design.length=8",
        "--set", "budget.nfe=60", "--set", "budget.seconds=null", "--set", "search={algorithm: best_of_n}",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    designs = pd.read_csv(out / "designs.csv")
    assert (designs["bases"] == designs["sequence"].str.len()).all()
    longest = max(len(t) for t in model.tokenizer.hf.get_vocab() if set(t) <= set("ACGT"))
    assert all(set(s) <= set("ACGT") and 8 <= len(s) <= 8 * longest for s in designs["sequence"])
    assert (designs["bases"] > 8).any()  # pieces of several bases: the length in bases is not the token count


def test_sub_words_join_as_their_tokenizer_writes_them(distilbert_dir, roberta_dir):
    wordpiece = load_model(distilbert_dir).tokenizer
    cat, plural = wordpiece.hf.convert_tokens_to_ids(["cat", "##s"])
    assert wordpiece.decode([wordpiece.hf.cls_token_id, cat, plural, wordpiece.hf.sep_token_id]) == "cats"
    byte_level = load_model(roberta_dir).tokenizer
    ids = byte_level.encode("the cats sat")
    assert any(piece.startswith("Ġ") for piece in byte_level.hf.convert_ids_to_tokens(ids))
    assert byte_level.decode([byte_level.hf.bos_token_id, *ids, byte_level.hf.eos_token_id]) == "the cats sat"


def test_roberta_rows_stop_at_its_offset_positions(roberta_dir):
    """RoBERTa's 66 position embeddings hold 64 tokens (positions start at pad id + 1 = 2). Counting 66 (the wrong
    variant) would let a 65-token row reach the model and index past its position table."""
    model = load_model(roberta_dir)
    assert model.max_length == ROBERTA_POSITIONS - 2
    root = model_root(model, length=62)  # 64 tokens with <s> and </s>
    with torch.no_grad():
        assert torch.isfinite(model.denoiser(root[None], torch.ones(1))).all()
    with pytest.raises(ValueError, match="needs 65 tokens .* at most 64"):
        model_root(model, length=63)
    with pytest.raises((IndexError, RuntimeError), match="out of"):  # what the limit prevents
        model.denoiser(torch.cat([root, root[-1:]])[None], torch.ones(1))


INSPECTED = {
    "mdlm": ("MDLMFamily", "<|endoftext|> <design> <|endoftext|>", "<mask>", "timesteps = sigma = -log alpha(t)"),
    "llada": ("LLaDAFamily", "<|startoftext|> <design> -", "<|mdm_mask|>", "none (LLaDA"),
    "dnabert2": ("HFFamily", "[CLS] <design> [SEP]", "[MASK]", "none (a time-independent"),
    "roberta": ("OffsetPositionsFamily", "<s> <design> </s>", "<mask>", "none (a time-independent"),
    "distilbert": ("HFFamily", "[CLS] <design> [SEP]", "[MASK]", "none (a time-independent"),
    "modernbert": ("HFFamily", "[CLS] <design> [SEP]", "[MASK]", "none (a time-independent"),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_models_inspect_shows_each_family(name, request):
    family = FAMILIES[name]
    hook, frame, mask, time_input = INSPECTED[name]
    folder = request.getfixturevalue(family.fixture)
    shown = seqtree_inprocess("models", "inspect", str(folder), "--length", "3",
                              *(["--trust-remote-code"] if family.remote else []))  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split("  ", 1) for line in shown.stdout.splitlines() if "  " in line)
    lines = {key.strip(): value.strip() for key, value in lines.items()}
    assert f"(hook: {hook})" in lines["family"]
    assert lines["frame"] == frame
    assert lines["mask id"].endswith(f"({mask})")
    assert lines["time conditioning"].startswith(time_input)
    assert f"{mask}x3" in lines["root of a 3-token design"]


def _one_line_refusal(*args: str) -> str:
    result = seqtree_inprocess(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_errors_name_the_problem_in_one_line(llada_dir, tiny_bert_dir, roberta_dir, tmp_path):
    # remote code loaded with AutoModel (LLaDA) without trust_remote_code
    assert "trust_remote_code" in _one_line_refusal("models", "inspect", str(llada_dir))
    # remote code of no family seqtree knows how to call (AutoModel only, another model_type: Dream's shape)
    unknown = tmp_path / "unknown-remote"
    shutil.copytree(llada_dir, unknown)
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "model_type": "dream"}))
    refused = _one_line_refusal("models", "inspect", str(unknown), "--trust-remote-code")
    assert "'dream'" in refused and "not AutoModelForMaskedLM" in refused
    # a model without a mask token: a BERT whose tokenizer names none, and a config that names none either
    no_mask = tmp_path / "no-mask"
    shutil.copytree(tiny_bert_dir, no_mask)
    tokenizer_config = json.loads((no_mask / "tokenizer_config.json").read_text())
    tokenizer_config["mask_token"] = None
    (no_mask / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    assert "has no mask token" in _one_line_refusal("models", "inspect", str(no_mask))
    # a design longer than the model's maximum length
    assert "at most 64" in _one_line_refusal("models", "inspect", str(roberta_dir), "--length", "63")
    # a prompt the tokenizer cannot encode: "7" is not in the tiny BERT's word pieces
    refused = _one_line_refusal(
        "design", "recipes/text.yaml", "--set", f"model.name={tiny_bert_dir}", "--set", "design.prompt=the 7 cats",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert "design.prompt" in refused and "'7' at position 4 is unknown" in refused
    # a model folder without a tokenizer (an MDLM checkpoint as published: GPT-2's tokenizer is not in it)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", bare / "config.json")
    assert "tokenizer has only special tokens" in _one_line_refusal("models", "inspect", str(bare))
