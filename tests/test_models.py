"""Denoiser backbones: save / load round trips, time conditioning, and the Hugging Face masked-LM adapter."""

import pytest
import torch

from seqtree.generate import initial_tokens, sample_sequences
from seqtree.models.dilated_cnn import DilatedCNN, DilatedCNNConfig
from seqtree.models.hf_adapter import HFMaskedLMDenoiser
from seqtree.models.loading import load_model
from seqtree.models.tokenizers import dna_tokenizer, protein_tokenizer
from seqtree.models.transformer import SeqTreeTransformer, SeqTreeTransformerConfig


def _backbones():
    yield SeqTreeTransformer(
        SeqTreeTransformerConfig(vocab_size=22, hidden_size=32, num_layers=2, num_heads=2, max_positions=16)
    )
    yield SeqTreeTransformer(
        SeqTreeTransformerConfig(
            vocab_size=22, hidden_size=32, num_layers=2, num_heads=2, max_positions=16, time_conditioning=True
        )
    )
    yield DilatedCNN(DilatedCNNConfig(vocab_size=22, hidden_size=32, num_layers=3))
    yield DilatedCNN(DilatedCNNConfig(vocab_size=22, hidden_size=32, num_layers=3, time_conditioning=True))


@pytest.mark.parametrize("backbone", list(_backbones()), ids=["transformer", "transformer-t", "cnn", "cnn-t"])
def test_save_pretrained_round_trip(backbone, tmp_path):
    torch.manual_seed(0)
    for p in backbone.parameters():  # non-zero everywhere, so adaLN-Zero gates do not hide differences
        torch.nn.init.normal_(p, std=0.1)
    tokens = torch.randint(0, 22, (3, 16))
    t = torch.tensor([0.1, 0.5, 0.9])
    backbone.eval()
    expected = backbone(tokens, t)
    assert expected.shape == (3, 16, 22)
    backbone.save_pretrained(tmp_path)
    protein_tokenizer().save(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_model(tmp_path)
    torch.testing.assert_close(loaded.denoiser(tokens, t), expected)
    time_dependent = backbone.config.time_conditioning
    changed = not torch.allclose(backbone(tokens, t), backbone(tokens, t.flip(0)))
    assert changed == time_dependent


def test_transformer_rejects_overlong_input_and_missing_time():
    model = SeqTreeTransformer(
        SeqTreeTransformerConfig(
            vocab_size=6, hidden_size=16, num_layers=1, num_heads=2, max_positions=8, time_conditioning=True
        )
    )
    with pytest.raises(ValueError, match="exceeds the model's max_positions 8"):
        model(torch.zeros(1, 9, dtype=torch.long), torch.zeros(1))
    with pytest.raises(ValueError, match="time-conditioned"):
        model(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.parametrize("fixture", ["tiny_esm_dir", "tiny_bert_dir"])
def test_hugging_face_masked_lm_as_denoiser(fixture, request):
    directory = request.getfixturevalue(fixture)
    model = load_model(directory)
    assert isinstance(model.denoiser, HFMaskedLMDenoiser)
    tokenizer = model.tokenizer
    prompt = "MKT" if fixture == "tiny_esm_dir" else "the cat"
    root = initial_tokens(tokenizer, prompt=prompt, length=6)
    samples = sample_sequences(model, root, 5, sampler="first_hitting", generator=torch.Generator().manual_seed(0))
    assert samples.output.nfe == 5 * 6
    prompt_ids = tokenizer.encode(prompt)
    assert torch.all(samples.output.tokens[:, : len(prompt_ids)] == torch.tensor(prompt_ids))
    sampled = samples.output.tokens[:, len(prompt_ids) :]
    assert not any(int(i) in tokenizer.special_ids for i in sampled.flatten())
    for sequence in samples.sequences:
        assert sequence.startswith(prompt)
    # the logits cover the tokenizer's vocabulary (the SUBS rule drops extra columns of a padded embedding table)
    assert model.denoiser(root.unsqueeze(0), torch.ones(1)).shape[-1] >= tokenizer.vocab_size


# Float32 reordering bound for a tiny model's logits (|logit| < 1): each is a float32 sum over a 32-wide hidden state
# after 2 layers whose attention sums run over <= 10 keys, so a batch of another width (another kernel path) may move
# it by about (32 + 10) * 2 * eps ~ 1e-5 (measured: 0). Padding seen by attention moves the real positions' logits by
# 1.0e-3 to 1.8e-3 (BERT) and 0.05 to 0.12 (ESM) over 15 random initialisations, 100 times more or over.
PADDING_ATOL = 1e-5


@pytest.mark.parametrize("fixture", ["tiny_esm_dir", "tiny_bert_dir"])
def test_hf_adapter_hides_padding_from_attention(fixture, request):
    """The adapter's promise: ``pad_id`` positions are hidden from attention. A row right-padded to share a batch
    with a longer row gets, at its real positions, the logits it gets alone, and the longer row is unchanged too.
    The same adapter without a pad id (no attention mask) lets the pads change them: that wrong variant is
    rejected by the same tolerance."""
    model = load_model(request.getfixturevalue(fixture))
    tokenizer, denoiser = model.tokenizer, model.denoiser
    prompt = tokenizer.encode("MKT" if fixture == "tiny_esm_dir" else "the cat")
    short, longer = prompt + [tokenizer.mask_id] * 2, prompt[:1] + [tokenizer.mask_id] * 7 + prompt[1:]
    batch = torch.tensor([short + [tokenizer.pad_id] * (len(longer) - len(short)), longer])
    with torch.no_grad():
        together = denoiser(batch, torch.ones(2))
        alone = [denoiser(torch.tensor([row]), torch.ones(1))[0] for row in (short, longer)]
        unhidden = HFMaskedLMDenoiser(denoiser.model, pad_id=None)(batch)[0, : len(short)]
    torch.testing.assert_close(together[0, : len(short)], alone[0], atol=PADDING_ATOL, rtol=0)
    torch.testing.assert_close(together[1], alone[1], atol=PADDING_ATOL, rtol=0)
    assert (unhidden - alone[0]).abs().max() > 10 * PADDING_ATOL


def test_hf_adapter_matches_wrapped_model(tiny_bert_dir):
    from transformers import AutoModelForMaskedLM

    wrapped = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    adapter = HFMaskedLMDenoiser(wrapped, pad_id=0).eval()
    tokens = torch.tensor([[2, 5, 4, 7, 3]])
    torch.testing.assert_close(adapter(tokens, torch.zeros(1)), wrapped(input_ids=tokens).logits)


def test_a_tokenizer_without_a_pad_token_does_not_hide_masked_positions(tiny_bert_dir, tmp_path):
    """Without a pad token the tokenizer pads with its mask id; the adapter must not then hide [MASK] from attention
    (it did: logits 2.6e-3 off the wrapped model's on a row without any padding)."""
    import shutil

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = tmp_path / "bert-no-pad"
    shutil.copytree(tiny_bert_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    model = load_model(folder)
    assert model.tokenizer.pad_id == model.tokenizer.mask_id  # the fallback this test is about
    mask = model.tokenizer.mask_id
    tokens = torch.tensor([[2, mask, 5, mask, 3]])
    wrapped = AutoModelForMaskedLM.from_pretrained(folder).eval()
    torch.testing.assert_close(model.denoiser(tokens, torch.ones(1)), wrapped(input_ids=tokens).logits,
                               atol=PADDING_ATOL, rtol=0)  # fmt: skip


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model folder at './nowhere/at/all'"):
        load_model("./nowhere/at/all")


def test_initial_tokens_prompt_scaffold_and_padding():
    tokenizer = dna_tokenizer()
    root = initial_tokens(tokenizer, prompt="AC", length=3, row_length=7)
    assert root.tolist() == [2, 3, 1, 1, 1, 0, 0]
    assert initial_tokens(tokenizer, scaffold="A__T").tolist() == [2, 1, 1, 5]
    with pytest.raises(ValueError, match="takes at most 4"):
        initial_tokens(tokenizer, length=5, row_length=4)
