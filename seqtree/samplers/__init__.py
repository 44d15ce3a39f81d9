"""Samplers of masked diffusion models. All share one signature:

``sampler(denoiser, diffusion, x_init, *, generator, num_steps, temperature, top_k, top_p, **options)``
returning :class:`SampleOutput` (tokens, log-probabilities of the choices made, NFE). Masked positions of
``x_init`` are sampled; every other position is fixed.
"""

from collections.abc import Callable

from seqtree.samplers.ancestral import sample_ancestral
from seqtree.samplers.base import SampleOutput
from seqtree.samplers.confidence import sample_confidence
from seqtree.samplers.first_hitting import sample_first_hitting

SAMPLERS: dict[str, Callable[..., SampleOutput]] = {
    "ancestral": sample_ancestral,
    "first_hitting": sample_first_hitting,
    "confidence": sample_confidence,
}


def get_sampler(name: str) -> Callable[..., SampleOutput]:
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


__all__ = ["SAMPLERS", "SampleOutput", "get_sampler", "sample_ancestral", "sample_confidence", "sample_first_hitting"]
