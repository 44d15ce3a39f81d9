"""Exact toy denoisers and oracles whose answers are known by enumeration (the test suite's ``tests/fakes.py`` and
the search benchmarks import them from here).

:class:`ExactJointDenoiser` holds an explicit joint distribution p over V^L (content tokens only) and returns, for
every masked position, the exact conditional p(x_0^i | unmasked tokens of x_t), computed by enumerating all V^L
sequences. With it the masked diffusion NELBO equals -log p(x) in expectation, and the first-hitting sampler draws
exactly from p: the references the real algorithms are tested against.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from seqtree.diffusion import MaskedDiffusion

__all__ = [
    "CONTENT_OFFSET",
    "MASK_ID",
    "PAD_ID",
    "EnumeratedToy",
    "ExactJointDenoiser",
    "TableOracle",
    "ancestral_distribution",
    "empirical_distribution",
    "random_joint",
    "tilted_distribution",
    "total_variation",
    "tv_null_quantile",
]

PAD_ID, MASK_ID = 0, 1
CONTENT_OFFSET = 2  # content token v has id v + 2, as in seqtree's own tokenizers


def random_joint(num_states: int, length: int, generator: torch.Generator, concentration: float = 0.3) -> Tensor:
    """A random joint distribution over num_states^length sequences, [num_states ** length], summing to 1.

    A Dirichlet-like draw (gamma variates) with small concentration makes it peaked, so sampling errors show.
    """
    gamma = torch.distributions.Gamma(torch.tensor(concentration), torch.tensor(1.0))
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    weights = gamma.sample((num_states**length,)).double()
    return weights / weights.sum()


class ExactJointDenoiser(torch.nn.Module):
    """Denoiser returning log p(x_0^i = v | visible tokens) for the enumerated joint ``probs`` [V^L].

    Vocabulary: ids 0 (pad) and 1 (mask) then V content ids. Returns log-probabilities as logits (the SUBS rule
    re-normalises, which leaves them unchanged). Counts its calls and rows.
    """

    def __init__(self, probs: Tensor, num_states: int, length: int) -> None:
        super().__init__()
        if probs.numel() != num_states**length:
            raise ValueError("probs must have num_states ** length entries")
        self.num_states, self.length = num_states, length
        self.register_buffer("probs", probs.double())
        grid = torch.tensor(list(itertools.product(range(num_states), repeat=length)), dtype=torch.long)
        self.register_buffer("sequences", grid)  # [S, L] content indices, same order as probs
        self.calls = 0
        self.rows = 0

    @property
    def vocab_size(self) -> int:
        return self.num_states + CONTENT_OFFSET

    def forward(self, tokens: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        self.rows += tokens.shape[0]
        visible = tokens != MASK_ID  # [B, L]
        content = tokens - CONTENT_OFFSET
        agree = (self.sequences.unsqueeze(0) == content.unsqueeze(1)) | ~visible.unsqueeze(1)  # [B, S, L]
        weight = self.probs.unsqueeze(0) * agree.all(-1)  # [B, S]
        one_hot = torch.nn.functional.one_hot(self.sequences, self.num_states).double()  # [S, L, V]
        marginals = torch.einsum("bs,slv->blv", weight, one_hot)
        marginals = marginals / marginals.sum(-1, keepdim=True).clamp_min(1e-300)
        logits = torch.full((*tokens.shape, self.vocab_size), float("-inf"), dtype=torch.float64)
        logits[..., CONTENT_OFFSET:] = marginals.clamp_min(1e-300).log()
        return logits.float()

    def index_of(self, tokens: Tensor) -> Tensor:
        """Index into ``probs`` of each row of content tokens [B, L] (ids with offset)."""
        content = tokens - CONTENT_OFFSET
        powers = self.num_states ** torch.arange(self.length - 1, -1, -1)
        return (content * powers).sum(-1)

    def diffusion(self, **kwargs) -> MaskedDiffusion:
        return MaskedDiffusion(mask_id=MASK_ID, vocab_size=self.vocab_size, forbidden_ids=[PAD_ID], **kwargs)


def empirical_distribution(indices: Tensor, num_outcomes: int, weights: Tensor | None = None) -> Tensor:
    """Histogram of outcome indices (optionally weighted), normalised to sum to 1, float64."""
    counts = torch.zeros(num_outcomes, dtype=torch.float64)
    counts.index_add_(
        0, indices, torch.ones_like(indices, dtype=torch.float64) if weights is None else weights.double()
    )
    return counts / counts.sum()


def total_variation(p: Tensor, q: Tensor) -> float:
    return 0.5 * float((p.double() - q.double()).abs().sum())


def tv_null_quantile(probs: Tensor, num_samples: int, quantile: float, repeats: int, seed: int = 0) -> float:
    """The ``quantile`` of TV(empirical, p) when ``num_samples`` draws come from p itself: the bound an exact
    sampler meets with that probability, found by simulating exact multinomial draws."""
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(repeats):
        draws = torch.multinomial(probs.float(), num_samples, replacement=True, generator=generator)
        values.append(total_variation(empirical_distribution(draws, probs.numel()), probs))
    return float(torch.tensor(values).quantile(quantile))


# ------------------------------------------------------------------ toy oracles and exact references for search
class TableOracle:
    """Oracle scoring a string of ``length`` characters from ``alphabet`` by a known table [A^L] or [A^L, K]
    (rows in the order of :class:`ExactJointDenoiser`'s enumeration). Other strings get ``floor``. Counts calls."""

    def __init__(self, table: Tensor, alphabet: str, length: int, floor: float = -10.0) -> None:
        if table.shape[0] != len(alphabet) ** length:
            raise ValueError("table must have len(alphabet) ** length rows")
        self.table = table.double()
        self.alphabet, self.length, self.floor = alphabet, length, floor
        self.num_objectives = 1 if table.dim() == 1 else int(table.shape[1])
        self.calls = 0
        self.sequences = 0

    def index(self, sequence: str) -> int | None:
        if len(sequence) != self.length or any(c not in self.alphabet for c in sequence):
            return None
        out = 0
        for char in sequence:
            out = out * len(self.alphabet) + self.alphabet.index(char)
        return out

    def __call__(self, sequences: list[str]) -> Tensor:
        self.calls += 1
        self.sequences += len(sequences)
        rows = []
        for sequence in sequences:
            i = self.index(sequence)
            if i is None:
                rows.append(torch.full(self.table.shape[1:], self.floor, dtype=torch.float64))
            else:
                rows.append(self.table[i])
        return torch.stack(rows)


def ancestral_distribution(denoiser: ExactJointDenoiser, diffusion: MaskedDiffusion, num_steps: int) -> Tensor:
    """Exact law [V^L] of ancestral sampling (MDLM Eq. 7, ``num_steps`` uniform steps from t = 1 to 0) with this
    denoiser, by dynamic programming over partially masked states. Positions unmasked in the same step are drawn
    independently from their conditionals, so this differs from ``denoiser.probs`` when steps are coarse."""
    num_states, length = denoiser.num_states, denoiser.length
    states: dict[tuple[int, ...], float] = {(-1,) * length: 1.0}
    grid = torch.linspace(1.0, 0.0, num_steps + 1)
    for k in range(num_steps):
        t, s = grid[k], grid[k + 1]
        alpha_t, alpha_s = diffusion.schedule.alpha(t), diffusion.schedule.alpha(s)
        p = 1.0 if float(s) <= 0 else float(((alpha_s - alpha_t) / (1.0 - alpha_t)).clamp(0.0, 1.0))
        new: dict[tuple[int, ...], float] = {}
        open_states = [st for st in states if -1 in st]
        for st in states:
            if -1 not in st:
                new[st] = new.get(st, 0.0) + states[st]
        if open_states:
            tokens = torch.tensor([[v + CONTENT_OFFSET if v >= 0 else MASK_ID for v in st] for st in open_states])
            marginals = diffusion.denoise(denoiser, tokens, t.expand(len(open_states))).double().exp()
            for st, marg in zip(open_states, marginals[..., CONTENT_OFFSET:].tolist()):
                masked = [i for i, v in enumerate(st) if v < 0]
                for chosen in itertools.product((False, True), repeat=len(masked)):
                    count = sum(chosen)
                    weight = states[st] * p**count * (1.0 - p) ** (len(masked) - count)
                    if weight == 0.0:
                        continue
                    reveal = [i for i, c in zip(masked, chosen) if c]
                    for values in itertools.product(range(num_states), repeat=count):
                        prob = weight
                        nxt = list(st)
                        for i, v in zip(reveal, values):
                            prob *= marg[i][v]
                            nxt[i] = v
                        key = tuple(nxt)
                        new[key] = new.get(key, 0.0) + prob
        states = new
    out = torch.zeros(num_states**length, dtype=torch.float64)
    powers = [num_states ** (length - 1 - i) for i in range(length)]
    for st, prob in states.items():
        out[sum(v * w for v, w in zip(st, powers))] += prob
    return out / out.sum()


def tilted_distribution(base: Tensor, rewards: Tensor, alpha: float) -> Tensor:
    """pi*(x) ~ base(x) exp(r(x) / alpha), float64 [S]."""
    logits = base.double().clamp_min(1e-300).log() + rewards.double() / alpha
    return torch.softmax(logits, 0)


class EnumeratedToy:
    """The search tests' toy: an exact denoiser of a random joint over ``num_states ** length`` DNA sequences
    (``random_joint`` drawn from ``torch.Generator().manual_seed(seed)``; ``generator`` continues that stream for
    the subclass's rewards), the exact law of its ancestral sampler (``base``) and a problem builder."""

    def __init__(self, num_states: int = 4, length: int = 5, num_steps: int = 6, branch_every: int = 2) -> None:
        from seqtree.models.tokenizers import dna_tokenizer

        self.generator = torch.Generator().manual_seed(0)
        self.num_steps, self.branch_every, self.length = num_steps, branch_every, length
        self.probs = random_joint(num_states, length, self.generator)
        self.denoiser = ExactJointDenoiser(self.probs, num_states, length)
        self.diffusion = self.denoiser.diffusion()
        self.base = ancestral_distribution(self.denoiser, self.diffusion, num_steps)
        self.tokenizer = dna_tokenizer()

    def problem(self, oracle, root: Tensor | None = None, **kwargs):
        """A SearchProblem over the toy with ``oracle``; ``root`` defaults to all positions masked."""
        from seqtree.search import SearchProblem

        root = torch.full((self.length,), MASK_ID) if root is None else root
        return SearchProblem(self.denoiser, self.diffusion, self.tokenizer, oracle, root,
                             num_steps=self.num_steps, branch_every=self.branch_every, **kwargs)  # fmt: skip
