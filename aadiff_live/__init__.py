"""aadiff-live: sound drives the cross-attention weight of a prompt's words (AADiff)."""

__version__ = "0.1.0"
