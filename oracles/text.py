"""Text oracles: VADER sentiment, Hugging Face text classifiers and embedding similarity.

- VADER (Hutto & Gilbert 2014, ICWSM), a rule-based sentiment model, via the ``vaderSentiment`` package;
- any Hugging Face ``text-classification`` model (``AutoModelForSequenceClassification``) by local path or hub id:
  the reward is the log-probability (or probability, or logit) of one label;
- cosine similarity to a target text under a sentence-transformers model (Reimers & Gurevych 2019) by path;
- a topic without a model: ``topic_words`` (the share of ``target`` distinct topic words a text uses) and
  ``char_ngram_similarity`` (cosine similarity of character n-gram counts to a target text, the bag-of-character-
  n-grams representation of e.g. Cavnar & Trenkle 1994 for text categorisation). Neither needs a model or a download,
  so a topic recipe runs offline, and the n-gram similarity is graded even for text that holds no whole topic word
  (a byte-level model's early completions). Both reward surface form, not meaning, and a search will stuff keywords
  or n-grams: the fluency guard and distinct-n (:mod:`seqtree.prompt_metrics`) are there to show it.

Models load lazily on the first call (construction and pickling stay cheap) on CPU in eval mode, never with
``trust_remote_code``. Empty strings get the floor with reason ``"empty text"``. ``sentence-transformers`` is
optional (``pip install 'seqtree[text]'``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Literal

import numpy as np
import torch

from seqtree.oracles.base import Oracle
from seqtree.oracles.registry import register_oracle


class _TextOracle(Oracle):
    domain = "text"

    def _check(self, sequence: str) -> str | None:
        return "empty text" if not sequence else None

    def __getstate__(self) -> dict[str, Any]:
        # Models are reloaded in the receiving process.
        return {k: v for k, v in self.__dict__.items() if k not in ("_model", "_tokenizer", "_ready")}


@register_oracle("vader_sentiment", family="text", domain="text")
class VaderSentiment(_TextOracle):
    """VADER rule-based sentiment: compound score in [-1, 1] (or the pos / neu / neg proportion)."""

    name = "vader_sentiment"

    def __init__(self, field: Literal["compound", "pos", "neu", "neg"] = "compound") -> None:
        self.field = field
        self.bounds = (-1.0, 1.0) if field == "compound" else (0.0, 1.0)
        self.optimum = 1.0
        self.objective_names = [f"vader_{field}"]
        super().__init__()

    def _setup(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._model = SentimentIntensityAnalyzer()

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        return np.array([self._model.polarity_scores(s)[self.field] for s in sequences], dtype=np.float64)


@register_oracle("hf_classifier", family="text", domain="text")
class HFClassifier(_TextOracle):
    """Hugging Face text-classification model (path or hub id): log-probability of one label."""

    name = "hf_classifier"

    def __init__(
        self,
        model: str,
        label: str | int = 1,
        output: Literal["logprob", "prob", "logit"] = "logprob",
        batch_size: int = 32,
        max_length: int = 256,
        local_files_only: bool = False,
        revision: str | None = None,
    ) -> None:
        if batch_size < 1 or max_length < 1:
            raise ValueError("batch_size and max_length must be >= 1")
        self.model_path, self.label, self.output = model, label, output
        self.batch_size, self.max_length = batch_size, max_length
        self.local_files_only, self.revision = local_files_only, revision
        self.bounds = (0.0, 1.0) if output == "prob" else None
        self.optimum = 0.0 if output == "logprob" else (1.0 if output == "prob" else None)
        self.objective_names = [f"{output}({label})"]
        super().__init__()

    def _setup(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        kw = {"local_files_only": self.local_files_only, "revision": self.revision, "trust_remote_code": False}
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, **kw)
        self._model = AutoModelForSequenceClassification.from_pretrained(self.model_path, **kw).eval()
        self._label_id = resolve_label(self.label, self._model.config.label2id, self._model.config.num_labels)

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(sequences), self.batch_size):
                enc = self._tokenizer(
                    sequences[i : i + self.batch_size], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                )
                logits = self._model(**enc).logits.double()
                if self.output == "logit":
                    out.append(logits[:, self._label_id])
                else:
                    logp = torch.log_softmax(logits, dim=-1)[:, self._label_id]
                    out.append(logp if self.output == "logprob" else logp.exp())
        return torch.cat(out).numpy()


def resolve_label(label: str | int, label2id: dict[str, int], num_labels: int) -> int:
    """A label name or index to the class index, with an error listing the model's labels."""
    if isinstance(label, str) and label in label2id:
        return int(label2id[label])
    if isinstance(label, int) or (isinstance(label, str) and label.lstrip("-").isdigit()):
        idx = int(label)
        if 0 <= idx < num_labels:
            return idx
    raise ValueError(f"label {label!r} not among the model's labels {sorted(label2id)} (or 0..{num_labels - 1})")


@register_oracle("embedding_similarity", family="text", domain="text", requires="text")
class EmbeddingSimilarity(_TextOracle):
    """Cosine similarity to a target text under a sentence-transformers model given by path."""

    name = "embedding_similarity"
    bounds = (-1.0, 1.0)
    optimum = 1.0

    def __init__(
        self, model: str, target: str, batch_size: int = 32, local_files_only: bool = False
    ) -> None:
        if not target:
            raise ValueError("target text must not be empty")
        self.model_path, self.target = model, target
        self.batch_size, self.local_files_only = batch_size, local_files_only
        super().__init__()

    def _setup(self) -> None:
        from seqtree.extras import import_extra

        st = import_extra("sentence_transformers", extra="text", what="the embedding_similarity oracle")
        self._model = st.SentenceTransformer(
            self.model_path, device="cpu", local_files_only=self.local_files_only, trust_remote_code=False
        )
        self._model.eval()
        self._target = self._embed([self.target])[0]

    def _embed(self, texts: list[str]) -> torch.Tensor:
        emb = self._model.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return emb.double().cpu()

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return (self._embed(sequences) @ self._target).numpy()


_WORD = re.compile(r"[^\W\d_]+")  # runs of letters: "ship's" holds the word ship


@register_oracle("topic_words", family="text", domain="text")
class TopicWords(_TextOracle):
    """Topic by a word list: min(1, distinct topic words in the text / target), words matched whole, any case."""

    name = "topic_words"
    bounds = (0.0, 1.0)
    optimum = 1.0

    def __init__(self, words: list[str], target: int = 3) -> None:
        lexicon = {w.strip().lower() for w in words if w.strip()}
        if not lexicon:
            raise ValueError("words must hold at least one topic word")
        bad = sorted(w for w in lexicon if not _WORD.fullmatch(w))
        if bad:
            raise ValueError(f"topic word {bad[0]!r} is not one word of letters")
        if target < 1:
            raise ValueError(f"target must be >= 1, got {target}")
        self.words, self.target = frozenset(lexicon), target
        self.objective_names = ["topic_words"]
        super().__init__()

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        hits = [len(self.words.intersection(w.lower() for w in _WORD.findall(s))) for s in sequences]
        return np.minimum(np.array(hits, dtype=np.float64) / self.target, 1.0)


@register_oracle("char_ngram_similarity", family="text", domain="text")
class CharNgramSimilarity(_TextOracle):
    """Cosine similarity of character n-gram counts (lower case, runs of whitespace as one space) to a target text."""

    name = "char_ngram_similarity"
    bounds = (0.0, 1.0)
    optimum = 1.0

    def __init__(self, target: str, n: int = 3) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._target = _char_ngrams(target, n)
        if not self._target:
            raise ValueError(f"target text must hold at least one {n}-gram of characters")
        self.target = target
        self._target_norm = math.sqrt(sum(c * c for c in self._target.values()))
        self.objective_names = [f"char_{n}gram_similarity"]
        super().__init__()

    def _evaluate(self, sequences: list[str]) -> np.ndarray:
        out = []
        for sequence in sequences:
            grams = _char_ngrams(sequence, self.n)
            dot = sum(count * self._target.get(gram, 0) for gram, count in grams.items())
            norm = math.sqrt(sum(c * c for c in grams.values()))
            out.append(dot / (norm * self._target_norm) if norm else 0.0)
        return np.array(out, dtype=np.float64)


def _char_ngrams(text: str, n: int) -> Counter:
    text = " ".join(text.lower().split())
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))
