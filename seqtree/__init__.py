"""seqtree: design sequences with masked discrete diffusion models steered by tree search.

The public entry points; everything else is reachable through its submodule.
"""

from seqtree.diffusion import Denoiser, MaskedDiffusion
from seqtree.samplers import SAMPLERS, SampleOutput, get_sampler
from seqtree.schedules import make_schedule

__version__ = "0.1.0"

__all__ = ["SAMPLERS", "Denoiser", "MaskedDiffusion", "SampleOutput", "__version__", "get_sampler", "make_schedule"]
