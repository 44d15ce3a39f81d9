"""Benchmarks of seqtree: ``python -m bench search --out DIR``."""
