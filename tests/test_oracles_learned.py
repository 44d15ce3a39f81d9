"""Learned oracles: a few-step training run on a tiny CSV, checkpoint round trip, and the shipped checkpoints."""

from __future__ import annotations

import json
import random

import pytest
import torch

from seqtree.oracles import FLOOR, build_oracle
from seqtree.oracles.learned import CHECKPOINTS, CONFIG_FILE, WEIGHTS_FILE, LearnedOracle, load_checkpoint
from seqtree.oracles.learned_train import cli, train

AA = "ACDEFGHIKLMNPQRSTVWY"


def _write_csv(path, task: str, n: int = 80) -> None:
    rng = random.Random(0)
    rows = ["sequence,label" if task == "classification" else "sequence,value"]
    for i in range(n):
        s = "".join(rng.choice(AA) for _ in range(rng.randint(8, 20)))
        if task == "classification":
            label = i % 2
            rows.append(f"{s + 'KKKK' if label else s},{label}")
        else:
            rows.append(f"{s},{s.count('K') + 0.5 * s.count('R')}")
    path.write_text("\n".join(rows) + "\n")


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
    folder = CHECKPOINTS / name
    assert (folder / WEIGHTS_FILE).stat().st_size < 5_000_000
    assert "Held-out metrics" in (folder / "README.md").read_text()
    oracle = build_oracle(name)
    assert isinstance(oracle, LearnedOracle) and oracle.name == name
    assert oracle.metrics["test_auroc"] > 0.8 and oracle.metrics["test_n"] > 100
    seqs = ["GLWSKIKEVGKEAAKAAAKAAGKAALGAVSEAV", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"]
    assert torch.equal(oracle(seqs), oracle(seqs))


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
