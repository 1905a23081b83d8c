"""Constitutional AI (Bai et al. 2022, arXiv:2212.08073) end to end, for any model and any constitution."""

__version__ = "0.1.0"
