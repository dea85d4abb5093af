"""dvdgan_tf: DVD-GAN (Clark, Donahue, Simonyan 2019, arXiv 1907.06571v2) in TF2/Keras 3."""

__version__ = "0.1.0"
