"""Learned oracles: a few-step training run on a tiny CSV, checkpoint round trip, and the shipped checkpoints.

The oracles are checked against a forward pass written out by hand in float64 from the checkpoint files alone
(config.json and the raw safetensors tensors, not :class:`SeqCNN`): letters to ids 1..20 (0 is padding), truncation to
``max_len``, embedding, 'same' convolutions with exact GELU, max- and mean-pooling over the sequence, the linear head,
then the output transform (log-sigmoid / sigmoid / logit, or de-standardisation for a regressor).

Tolerance: the oracle runs in float32 (eps = 2^-23 ~ 1.2e-7). Its output chains three sums, a convolution (<= 64
channels x 9 taps = 576 terms), the mean over <= 500 positions and the head (<= 256 terms); rounding errors add like
a random walk, about (sqrt(576) + sqrt(500) + sqrt(256)) eps ~ 64 eps relative to the head's absolute terms
S = |b| + sum_j |w_j z_j|. So |oracle - by hand| <= 64 eps S (5e-4 at the largest S ~ 70 here; measured errors
are <= 4e-6, at most 1/75 of the bound).
A wrong preprocessing (ids from 0, no truncation, no de-standardisation, a flipped sign) moves the output by 0.05 or
more, far outside it.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqtree.oracles import FLOOR, build_oracle
from seqtree.oracles.learned import CHECKPOINTS, CONFIG_FILE, WEIGHTS_FILE, LearnedOracle, load_checkpoint
from seqtree.oracles.learned_train import cli, train

AA = "ACDEFGHIKLMNPQRSTVWY"
EPS32 = torch.finfo(torch.float32).eps


def _write_csv(path, task: str, n: int = 80) -> None:
    """A toy CSV; regression rows carry a ``split`` column (80 / 10 / 10 by row) so the training split is known."""
    rng = random.Random(0)
    rows = ["sequence,label" if task == "classification" else "sequence,value,split"]
    for i in range(n):
        s = "".join(rng.choice(AA) for _ in range(rng.randint(8, 20)))
        if task == "classification":
            label = i % 2
            rows.append(f"{s + 'KKKK' if label else s},{label}")
        else:  # mean ~ 13 and standard deviation ~ 3, far from the standardised 0 and 1
            split = "test" if i % 10 == 9 else "val" if i % 10 == 8 else "train"
            rows.append(f"{s},{10 + 3 * (s.count('K') + 0.5 * s.count('R'))},{split}")
    path.write_text("\n".join(rows) + "\n")


def _forward_by_hand(folder: Path, sequence: str) -> tuple[float, float]:
    """The network's raw output for one sequence (no padding), float64, from the checkpoint files alone, and the
    scale S = |b| + sum_j |w_j z_j| of the head's terms (the tolerance's unit, see the module docstring)."""
    model = json.loads((folder / CONFIG_FILE).read_text())["model"]
    weights = {k: v.double() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
    ids = torch.tensor([model["alphabet"].index(c) + 1 for c in sequence[: model["max_len"]]])
    h, taps = weights["embed.weight"][ids], model["kernel_size"]  # [L, E]
    for layer in range(model["num_layers"]):  # convs.{0, 2, ...}: Conv1d then GELU
        w, b = weights[f"convs.{2 * layer}.weight"], weights[f"convs.{2 * layer}.bias"]  # [C, C_in, K], [C]
        left = (taps - 1) // 2
        padded = torch.cat([h.new_zeros(left, h.shape[1]), h, h.new_zeros(taps - 1 - left, h.shape[1])])
        h = b + sum(padded[j : j + len(ids)] @ w[:, :, j].T for j in range(taps))
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
    terms = weights["head.weight"][0] * torch.cat([h.max(0).values, h.mean(0)])
    bias = weights["head.bias"][0]
    return float(terms.sum() + bias), float(terms.abs().sum() + bias.abs())


def _max_len(folder: Path) -> int:
    return int(json.loads((folder / CONFIG_FILE).read_text())["model"]["max_len"])


def _sequences(max_len: int) -> list[str]:
    """Random protein sequences from 1 letter to 3 x ``max_len`` (the longest are truncated)."""
    rng = random.Random(1)
    return ["".join(rng.choice(AA) for _ in range(n)) for n in (1, 5, 12, 40, max_len - 1, max_len + 1, 3 * max_len)]


def test_tiny_training_run_and_oracle(tmp_path) -> None:
    csv, out = tmp_path / "toy.csv", tmp_path / "toy_oracle"
    _write_csv(csv, "classification")
    meta = train(csv, out, epochs=2, max_steps=4, batch_size=16, channels=8, embed_dim=8, max_len=32,
                 progress=False, data_note="toy")
    assert (out / WEIGHTS_FILE).is_file() and (out / "README.md").read_text().startswith("# toy_oracle")
    assert {"val_auroc", "val_accuracy", "test_auroc"} <= set(meta["metrics"])
    oracle = build_oracle("learned", path=str(out))
    out_ = oracle.score(["ACDKKKK", "ACD", "acd", ""])
    assert out_.valid.tolist() == [True, True, False, False]
    assert (out_.values[:2] <= 0).all() and out_.values[2].item() == FLOOR
    prob = build_oracle("learned", path=str(out), output="prob")(["ACDKKKK", "ACD"])
    assert torch.allclose(prob, out_.values[:2].exp())
    assert oracle.metrics == meta["metrics"]
    # reproducible: the same command gives the same weights
    train(csv, tmp_path / "again", epochs=2, max_steps=4, batch_size=16, channels=8, embed_dim=8, max_len=32,
          progress=False)
    a, _ = load_checkpoint(out)
    b, _ = load_checkpoint(tmp_path / "again")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_regression_via_cli(tmp_path) -> None:
    csv, out = tmp_path / "reg.csv", tmp_path / "reg_oracle"
    _write_csv(csv, "regression")
    assert cli(["train", "--csv", str(csv), "--out", str(out), "--task", "regression", "--epochs", "1",
                "--max-steps", "3", "--channels", "8", "--embed-dim", "8", "--max-len", "32"]) == 0
    meta = json.loads((out / CONFIG_FILE).read_text())
    assert meta["task"] == "regression" and "val_rmse_standardised" in meta["metrics"]
    oracle = build_oracle("learned", path=str(out))
    assert oracle.bounds is None and oracle(["KKKK", "AAAA"]).shape == (2,)
    # the target scaling is the training split's (recomputed from the CSV), and the oracle de-standardises with it:
    # value = network output x std + mean, to the float32 tolerance 64 eps S scaled by std (module docstring)
    lines = [row.split(",") for row in csv.read_text().split()[1:]]
    train_values = [float(value) for _, value, split in lines if split == "train"]
    mean, std = statistics.fmean(train_values), statistics.pstdev(train_values)
    assert math.isclose(meta["target_mean"], mean, rel_tol=1e-12)
    assert math.isclose(meta["target_std"], std, rel_tol=1e-12)
    assert abs(mean) > 5 and abs(std - 1) > 1  # a missing de-standardisation cannot pass unnoticed
    for sequence in _sequences(32):
        raw, scale = _forward_by_hand(out, sequence)
        assert abs(float(oracle([sequence])[0]) - (raw * std + mean)) <= 64 * EPS32 * scale * std
    # a minimise objective keeps its natural values; only its reward view is negated
    config = json.loads((out / CONFIG_FILE).read_text())
    (out / CONFIG_FILE).write_text(json.dumps({**config, "direction": "minimize"}))
    minimise = build_oracle("learned", path=str(out))
    sequences = _sequences(32)[:4]
    natural = torch.tensor([float(oracle([s])[0]) for s in sequences], dtype=torch.float64)
    assert minimise.direction == "minimize"
    assert torch.equal(torch.cat([minimise([s]) for s in sequences]), natural)
    assert torch.equal(torch.cat([minimise.as_reward()([s]) for s in sequences]), -natural)


def test_training_rejects_bad_csv(tmp_path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("sequence,label\nACDX,1\nACD,0\n")
    with pytest.raises(ValueError, match="outside"):
        train(csv, tmp_path / "x", epochs=1, progress=False)
    csv.write_text("seq,label\nACD,1\n")
    with pytest.raises(ValueError, match="missing column"):
        train(csv, tmp_path / "x", epochs=1, progress=False)


@pytest.mark.parametrize("name", ["amp_classifier", "go_atp_binding"])
def test_shipped_checkpoints(name: str) -> None:
    """The folder is small, its card's metric table is the one in config.json, and each output of the oracle (one
    sequence per call, so no padding) is the forward pass by hand with its transform, to 64 eps S."""
    folder = CHECKPOINTS / name
    assert (folder / WEIGHTS_FILE).stat().st_size < 5_000_000
    oracle = build_oracle(name)
    assert isinstance(oracle, LearnedOracle) and oracle.name == name and oracle.direction == "maximize"
    card = (folder / "README.md").read_text()
    assert "Held-out metrics" in card and oracle.metrics["test_auroc"] > 0.8 and oracle.metrics["test_n"] > 100
    for key, value in oracle.metrics.items():
        assert (f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |") in card
    outputs = {out: build_oracle(name, output=out) for out in ("logit", "logprob", "prob")}
    for sequence in _sequences(_max_len(folder)):
        logit, scale = _forward_by_hand(folder, sequence)
        expected = {"logit": logit, "logprob": -math.log1p(math.exp(-logit)), "prob": 1.0 / (1.0 + math.exp(-logit))}
        for out, value in expected.items():
            assert abs(float(outputs[out]([sequence])[0]) - value) <= 64 * EPS32 * scale, (out, len(sequence))


@pytest.mark.parametrize("name", ["amp_classifier", "go_atp_binding"])
def test_a_score_does_not_depend_on_the_rest_of_the_batch(name: str) -> None:
    """Scored together (sorted, padded to the longest of each batch) the sequences get the scores they get alone,
    to the float32 tolerance 64 eps S; an oracle is a function of the sequence (the search engine memoises it)."""
    folder = CHECKPOINTS / name
    sequences = _sequences(_max_len(folder))
    oracle = build_oracle(name, output="logit")
    together = oracle(sequences)
    for sequence, value in zip(sequences, together.tolist()):
        logit, scale = _forward_by_hand(folder, sequence)
        assert abs(value - logit) <= 64 * EPS32 * scale, len(sequence)


def test_amp_classifier_ranks_known_peptides() -> None:
    prob = build_oracle("amp_classifier", output="prob")
    # magainin 2 and melittin (AMPs) versus the N-terminus of human serum albumin and of ubiquitin
    amps = ["GIGKFLHSAKKFGKAFVGEIMNS", "GIGAVLKVLTTGLPALISWIKRKRQQ"]
    non = ["DAHKSEVAHRFKDLGEENFKALVLIAFAQYLQQCPF", "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPP"]
    p = prob(amps + non).tolist()
    assert min(p[:2]) > max(p[2:])


def test_go_atp_binding_walker_a() -> None:
    # Adenylate kinase (E. coli, P69441, binds ATP through its Walker A P-loop) versus human serum albumin.
    adk = ("MRIILLGAPGAGKGTQAQFIMEKYGIPQISTGDMLRAAVKSGSELGKQAKDIMDAGKLVTDELVIALVKERIAQEDCRNGFLLDGFPRTIPQA"
           "DAMKEAGINVDYVLEFDVPDELIVDRIVGRRVHAPSGRVYHVKFNPPKVEGKDDVTGEELTTRKDDQEETVRKRLVEYHQMTAPLIGYYSKEA"
           "EAGNTKYAKVDGTKPVAEVRADLEKILG")
    hsa = ("DAHKSEVAHRFKDLGEENFKALVLIAFAQYLQQCPFEDHVKLVNEVTEFAKTCVADESAENCDKSLHTLFGDKLCTVATLRETYGEMADCCA"
           "KQEPERNECFLQHKDDNPNLPRLVRPEVDVMCTAFHDNEETFLKKYLYEIARRHPYFYAPELLFFAKRYKAAFTECCQAADKAACLLPKLDEL")
    p = build_oracle("go_atp_binding", output="prob")([adk, hsa]).tolist()
    assert p[0] > 0.5 > p[1]
