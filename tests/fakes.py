"""The tests' exact toy denoisers and oracles; one copy lives in :mod:`seqtree.testing`, where the benchmarks (an
installed package, without tests/) import them too."""

from seqtree.testing import *  # noqa: F403
from seqtree.testing import __all__  # noqa: F401
