"""Learned oracles: a small 1-D CNN regressor or classifier over one-hot letters, trained on a CSV.

The network is a character CNN in the manner of DeepGOPlus (Kulmanov & Hoehndorf 2020, Bioinformatics 36:422):
embedding, ``num_layers`` convolutions, then max- and mean-pooling over the (unpadded) positions and a linear
head. Classifiers return the log-probability of the positive label (or probability / logit); regressors return
the predicted value in the units of the training target.

A checkpoint is a folder: ``config.json`` (architecture, task, target scaling, held-out metrics, data notes),
``model.safetensors`` and a model card ``README.md``. Two are shipped under ``checkpoints/`` and registered by
name: ``amp_classifier`` (antimicrobial peptides, modlAMP's APD3-vs-UniProt set) and ``go_atp_binding``
(GO:0005524 ATP binding, metastudent-data UniProt/GOA 2014-01). Train your own with::

    python -m seqtree.oracles.learned train --csv data.csv --out my_oracle --task classification

The CSV has a ``sequence`` column, a ``label`` (0/1) or ``value`` column, and optionally ``split`` (train / val /
test; otherwise a seeded random split). Sequences longer than ``max_len`` are truncated to their first
``max_len`` letters; letters outside the alphabet get the floor.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seqtree.oracles.base import Oracle, check_alphabet
from seqtree.oracles.registry import register_oracle

PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class SeqCNNConfig:
    """Architecture of :class:`SeqCNN`; token 0 is padding, letters are 1..len(alphabet)."""

    alphabet: str = PROTEIN_ALPHABET
    max_len: int = 512
    embed_dim: int = 32
    channels: int = 64
    kernel_size: int = 9
    num_layers: int = 2
    dropout: float = 0.1


class SeqCNN(nn.Module):
    """Tokens Long[B, L] -> one output per sequence Float[B] (a logit or a standardised value)."""

    def __init__(self, config: SeqCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(len(config.alphabet) + 1, config.embed_dim, padding_idx=0)
        layers: list[nn.Module] = []
        width = config.embed_dim
        for _ in range(config.num_layers):
            layers += [nn.Conv1d(width, config.channels, config.kernel_size, padding="same"), nn.GELU()]
            width = config.channels
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.channels, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Padding is zeroed after every layer, not only the last: a convolution near a sequence's end reads the
        padded positions, and a layer's bias and GELU make them non-zero, so a score would depend on how long the
        other sequences of its batch are (issue 12 found amp_classifier's scores moving by up to 2.8 logits)."""
        mask = (tokens != 0).unsqueeze(1)  # [B, 1, L]
        h = self.embed(tokens).transpose(1, 2)  # [B, E, L]; the padding embedding is 0
        for conv, activation in zip(self.convs[::2], self.convs[1::2]):
            h = activation(conv(h)).masked_fill(~mask, 0.0)  # [B, C, L]
        mean = h.sum(-1) / mask.sum(-1).clamp(min=1)  # [B, C]
        top = h.masked_fill(~mask, float("-inf")).amax(-1)  # [B, C]
        return self.head(self.dropout(torch.cat([top, mean], dim=-1))).squeeze(-1)  # [B]


def encode_batch(sequences: list[str], alphabet: str, max_len: int) -> torch.Tensor:
    """Letters to ids 1..V, right-padded with 0 to the longest (truncated) sequence: Long[B, L]."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = torch.zeros(len(sequences), width, dtype=torch.long)
    for r, s in enumerate(sequences):
        ids = [index[c] for c in s[:max_len]]
        out[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def save_checkpoint(folder: Path, model: SeqCNN, meta: dict[str, Any], card: str) -> None:
    """Write config.json (architecture + ``meta``), model.safetensors and README.md into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps({"model": asdict(model.config), **meta}, indent=2) + "\n")
    (folder / CARD_FILE).write_text(card)


def load_checkpoint(folder: str | Path) -> tuple[SeqCNN, dict[str, Any]]:
    """The model (eval mode) and the metadata of a checkpoint folder."""
    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"no learned-oracle checkpoint at {folder} (missing {CONFIG_FILE})")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    model = SeqCNN(SeqCNNConfig(**meta.pop("model")))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return model.eval(), meta


@register_oracle("learned", family="learned", domain="protein")
class LearnedOracle(Oracle):
    """A trained SeqCNN checkpoint folder: log-probability of the positive class, or a regressed value."""

    name = "learned"

    def __init__(
        self,
        path: str,
        output: Literal["logprob", "prob", "logit"] = "logprob",
        batch_size: int = 256,
        name: str | None = None,
    ) -> None:
        folder = Path(path)
        if not folder.is_absolute() and not folder.exists() and (CHECKPOINTS / folder).exists():
            folder = CHECKPOINTS / folder
        self.path, self.output, self.batch_size = folder, output, batch_size
        self.meta = json.loads((folder / CONFIG_FILE).read_text()) if (folder / CONFIG_FILE).is_file() else None
        if self.meta is None:
            raise FileNotFoundError(f"no learned-oracle checkpoint at {folder} (missing {CONFIG_FILE})")
        self.task: Task = self.meta["task"]
        self.alphabet: str = self.meta["model"]["alphabet"]
        self.name = name or self.meta.get("name", folder.name)
        self.direction = self.meta.get("direction", "maximize")
        if self.task == "classification":
            self.bounds = {"prob": (0.0, 1.0), "logprob": None, "logit": None}[output]
            self.optimum = {"prob": 1.0, "logprob": 0.0, "logit": None}[output]
        super().__init__()

    @property
    def card(self) -> str:
        """The model card (README.md) of the checkpoint."""
        return (self.path / CARD_FILE).read_text()

    @property
    def metrics(self) -> dict[str, float]:
        """Held-out metrics recorded at training time."""
        return dict(self.meta.get("metrics", {})) if self.meta else {}

    def _setup(self) -> None:
        self._model, _ = load_checkpoint(self.path)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_model", "_ready")}

    def _check(self, sequence: str) -> str | None:
        return check_alphabet(sequence, self.alphabet, "this learned oracle's alphabet")

    def _evaluate(self, sequences: list[str]) -> torch.Tensor:
        cfg = self._model.config
        outs = []
        with torch.inference_mode():
            # Sort by length so each mini-batch pads little; results are put back in input order.
            order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
            for k in range(0, len(order), self.batch_size):
                idx = order[k : k + self.batch_size]
                y = self._model(encode_batch([sequences[i] for i in idx], cfg.alphabet, cfg.max_len)).double()
                outs.append((idx, y))
        values = torch.empty(len(sequences), dtype=torch.float64)
        for idx, y in outs:
            values[idx] = self._transform(y)
        return values

    def _transform(self, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return y * float(self.meta["target_std"]) + float(self.meta["target_mean"])  # type: ignore[index]
        if self.output == "logit":
            return y
        logp = torch.nn.functional.logsigmoid(y)
        return logp if self.output == "logprob" else logp.exp()


@register_oracle("amp_classifier", family="learned", domain="protein")
def amp_classifier(output: Literal["logprob", "prob", "logit"] = "logprob") -> LearnedOracle:
    """Shipped antimicrobial-peptide classifier (CNN on modlAMP's APD3 AMPs vs UniProt peptides)."""
    return LearnedOracle(str(CHECKPOINTS / "amp_classifier"), output=output, name="amp_classifier")


@register_oracle("go_atp_binding", family="learned", domain="protein")
def go_atp_binding(output: Literal["logprob", "prob", "logit"] = "logprob") -> LearnedOracle:
    """Shipped protein function classifier for GO:0005524 ATP binding (CNN on UniProt/GOA 2014-01)."""
    return LearnedOracle(str(CHECKPOINTS / "go_atp_binding"), output=output, name="go_atp_binding")


def main(argv: list[str] | None = None) -> int:
    """``python -m seqtree.oracles.learned train ...``: see ``--help``."""
    from seqtree.oracles.learned_train import cli

    return cli(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
