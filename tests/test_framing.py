"""Model families' frames (issue 14): ESM-2 and BERT designs in the frame their models were trained on, rows as long
as the design plus the frame, and NaN logits caught with the model and step named instead of inside sampling."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import ESM_VOCAB
from inprocess import seqtree_inprocess

from seqtree.device import make_generator
from seqtree.diffusion import DenoiserOutputError
from seqtree.generate import model_root, sample_sequences
from seqtree.models.loading import load_model
from seqtree.search import Budget, SearchProblem, run_search

AMINO_ACIDS = set("ACDEFGHIKLMNPQRSTVWY")  # ESM-2's vocabulary also has X B U Z O, "." "-" and <null_1>


@pytest.fixture(scope="module")
def esm2_dir(tmp_path_factory):
    """A tiny randomly initialised EsmForMaskedLM with ESM-2's own flags: token dropout, rotary positions, 1026
    positions, <cls>/<eos> framing in its tokenizer."""
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    directory = tmp_path_factory.mktemp("esm2-like")
    (directory / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    tokenizer = EsmTokenizer(str(directory / "vocab.txt"))
    config = EsmConfig(
        vocab_size=len(ESM_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=1026, pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id,
        position_embedding_type="rotary", token_dropout=True, emb_layer_norm_before=False,
    )  # fmt: skip
    torch.manual_seed(0)
    EsmForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class RowRecorder(torch.nn.Module):
    """Passes calls through and keeps every row the denoiser receives."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner, self.rows = inner, []

    @property
    def config(self):
        return self.inner.config

    def forward(self, tokens, t=None):
        self.rows.append(tokens.clone())
        return self.inner(tokens, t)


def test_esm2_designs_are_framed_sized_to_the_design_and_finite(esm2_dir):
    model = load_model(esm2_dir)
    hf = model.tokenizer.hf
    assert model.framing.prefix == (hf.cls_token_id,) and model.framing.suffix == (hf.eos_token_id,)
    not_designed = {hf.convert_tokens_to_ids(t) for t in ["<null_1>", ".", "-", "X", "B", "U", "Z", "O"]}
    assert not_designed <= set(model.framing.forbidden) and model.diffusion.forbidden[list(not_designed)].all()
    root = model_root(model, length=20)
    assert len(root) == 22  # not the model's 1026 positions
    assert root[0] == hf.cls_token_id and root[-1] == hf.eos_token_id and (root[1:-1] == hf.mask_token_id).all()
    with torch.no_grad():
        framed = model.denoiser(root.unsqueeze(0), None)
        bare = model.denoiser(root[1:-1].unsqueeze(0), None)  # the unframed, fully masked row of before
    assert torch.isfinite(framed).all()
    assert torch.isnan(bare).all()  # token dropout divides by 1 - (masked fraction = 1): why the frame matters


def test_search_keeps_the_frame_counts_each_row_once_and_decodes_without_specials(esm2_dir):
    model = load_model(esm2_dir)
    recorder = RowRecorder(model.denoiser)
    root = model_root(model, length=12)
    problem = SearchProblem(recorder, model.diffusion, model.tokenizer, lambda s: torch.zeros(len(s)), root,
                            num_steps=8, branch_every=2)  # fmt: skip
    result = run_search("dts_star", problem, Budget(nfe=120), generator=make_generator(0), leaves_per_iteration=2)
    rows = torch.cat(recorder.rows)
    assert rows.shape[1] == 14 and result.nfe == rows.shape[0]  # one NFE per row the model saw
    assert (rows[:, 0] == root[0]).all() and (rows[:, -1] == root[-1]).all()  # the frame never changes
    assert (result.designs.tokens[:, 0] == root[0]).all() and (result.designs.tokens[:, -1] == root[-1]).all()
    assert all(len(s) == 12 and set(s) <= AMINO_ACIDS for s in result.designs.sequences)


def test_bert_frames_a_prompt_and_never_changes_it(tiny_bert_dir):
    model = load_model(tiny_bert_dir)
    hf = model.tokenizer.hf
    assert model.framing.prefix == (hf.cls_token_id,) and model.framing.suffix == (hf.sep_token_id,)
    root = model_root(model, prompt="the cat", length=4)
    prompt = model.tokenizer.encode("the cat")
    assert root.tolist() == [hf.cls_token_id, *prompt, *[hf.mask_token_id] * 4, hf.sep_token_id]
    samples = sample_sequences(model, root, 4, num_steps=4, generator=make_generator(1))
    assert (samples.output.tokens[:, : len(prompt) + 1] == root[: len(prompt) + 1]).all()
    assert all(s.startswith("the cat") and "[SEP]" not in s and "[CLS]" not in s for s in samples.sequences)


def design_sequences(recipe: str, model_dir, length: int, nfe: int, out) -> list[str]:
    """``seqtree design RECIPE`` with the model folder, a design length and an NFE budget; the designed sequences."""
    result = seqtree_inprocess(
        "design", recipe, "--set", f"model.name={model_dir}", "--set", f"design.length={length}",
        "--set", f"budget.nfe={nfe}", "--set", "budget.seconds=null", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return list(pd.read_csv(out / "designs.csv")["sequence"])


def test_a_design_run_through_the_cli_on_an_esm2_folder(esm2_dir, tmp_path):
    designs = design_sequences("recipes/protein.yaml", esm2_dir, 12, 150, tmp_path / "run")
    assert designs and all(len(s) == 12 and set(s) <= AMINO_ACIDS for s in designs)


def test_models_inspect_shows_the_frame_and_a_too_long_design_names_the_limit(esm2_dir):
    shown = seqtree_inprocess("models", "inspect", str(esm2_dir), "--length", "3")
    assert shown.returncode == 0, shown.stderr
    assert "esm" in shown.stdout and "<cls> <design> <eos>" in shown.stdout
    assert "<cls> <mask>x3 <eos>" in shown.stdout
    too_long = seqtree_inprocess("models", "inspect", str(esm2_dir), "--length", "1025")
    assert too_long.returncode == 2 and "1027 tokens" in too_long.stderr and "at most 1026" in too_long.stderr


class NaNDenoiser(torch.nn.Module):
    def forward(self, tokens, t=None):
        return torch.full((*tokens.shape, 6), float("nan"))


def test_nan_logits_are_refused_naming_the_model_and_the_step():
    from seqtree.diffusion import MaskedDiffusion
    from seqtree.models.tokenizers import dna_tokenizer

    tokenizer = dna_tokenizer()
    diffusion = MaskedDiffusion.for_tokenizer(tokenizer)
    root = torch.full((6,), tokenizer.mask_id)
    problem = SearchProblem(NaNDenoiser(), diffusion, tokenizer, lambda s: torch.zeros(len(s)), root, num_steps=4)
    expected = r"'NaNDenoiser' returned NaN .* 1 of 1 rows at reverse step\(s\) \[0\]"
    with pytest.raises(DenoiserOutputError, match=expected):
        run_search("best_of_n", problem, Budget(nfe=40), generator=make_generator(0), num_samples=4)
    from seqtree.samplers import get_sampler

    with pytest.raises(DenoiserOutputError, match="returned NaN"):
        get_sampler("ancestral")(NaNDenoiser(), diffusion, root.unsqueeze(0), num_steps=4)


@pytest.fixture(scope="module")
def nucleotide_transformer_dir(tmp_path_factory):
    """A tiny EsmForMaskedLM with a Nucleotide-Transformer-style tokenizer: every 6-mer of ACGT, then single bases
    and N, <cls> framing."""
    import itertools

    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer

    directory = tmp_path_factory.mktemp("nt-like")
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=6)]
    (directory / "vocab.txt").write_text("\n".join(["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", *kmers, *"ACGTN"]))
    tokenizer = EsmTokenizer(str(directory / "vocab.txt"), unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                             cls_token="<cls>", eos_token="<eos>")  # fmt: skip
    config = EsmConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, mask_token_id=tokenizer.mask_token_id,
        position_embedding_type="rotary", token_dropout=False,
    )  # fmt: skip
    torch.manual_seed(0)
    EsmForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_a_kmer_dna_model_designs_tokens_and_reports_bases(nucleotide_transformer_dir, tmp_path):
    model = load_model(nucleotide_transformer_dir)
    hf = model.tokenizer.hf
    with_n = [i for token, i in hf.get_vocab().items() if "N" in token and not token.startswith("<")]
    assert with_n and set(with_n) <= set(model.framing.forbidden)  # the unknown base is never designed
    sequences = design_sequences("recipes/dna.yaml", nucleotide_transformer_dir, 4, 100, tmp_path / "run")
    # 4 tokens, each a 6-mer or a single base: the oracle saw bases, joined without spaces
    assert len(sequences) and all(4 <= len(s) <= 24 and set(s) <= set("ACGT") for s in sequences)


def test_a_model_with_its_own_code_needs_trust_remote_code_named(tmp_path):
    folder = tmp_path / "remote"
    folder.mkdir()
    config = {"model_type": "toy", "auto_map": {"AutoModelForMaskedLM": "modeling_toy.ToyForMaskedLM"}}
    (folder / "config.json").write_text(__import__("json").dumps(config))
    for args in (
        ["sample", str(folder), "--num", "1", "--length", "3"],
        ["design", "recipes/protein.yaml", "--set", f"model.name={folder}", "--out", str(tmp_path / "r")],
    ):
        result = seqtree_inprocess(*args)
        assert result.returncode == 2 and "trust_remote_code" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # a refused recipe leaves no run folder behind
