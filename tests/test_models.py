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
    # the adapter hides padding from attention
    padded = torch.tensor([prompt_ids + [tokenizer.mask_id, tokenizer.pad_id]])
    logits = model.denoiser(padded, torch.ones(1))
    assert logits.shape[-1] >= tokenizer.vocab_size


def test_hf_adapter_matches_wrapped_model(tiny_bert_dir):
    from transformers import AutoModelForMaskedLM

    wrapped = AutoModelForMaskedLM.from_pretrained(tiny_bert_dir).eval()
    adapter = HFMaskedLMDenoiser(wrapped, pad_id=0).eval()
    tokens = torch.tensor([[2, 5, 4, 7, 3]])
    torch.testing.assert_close(adapter(tokens, torch.zeros(1)), wrapped(input_ids=tokens).logits)


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
