"""seqtree."""
