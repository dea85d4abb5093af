"""dvdgan_tf: DVD-GAN (Clark, Donahue, Simonyan 2019, arXiv 1907.06571v2) in TF2/Keras 3."""

import os as _os
import platform as _platform
import sys as _sys

__version__ = "0.1.0"

# oneDNN's CPU kernels (convolutions, matmuls, BatchNorm) on every x86-64 CPU.
# TensorFlow turns them on by itself only where it finds AVX-512 VNNI / BF16 or AMX;
# elsewhere (an AVX2-only CPU) it runs Eigen's kernels, with which the default CPU
# config's train step took ~1.4x as long and the built-in classifier's ~4x
# (BENCHMARKS.md, "oneDNN on an AVX2-only CPU"). TensorFlow reads the variable when
# it is first imported, so this has to come first; a TF_ENABLE_ONEDNN_OPTS of the
# user's own wins (0 turns oneDNN off). `runtime.onednn_enabled()` tells what TF did.
ONEDNN_DEFAULTED = (
    _platform.machine().lower() in ("x86_64", "amd64")
    and "TF_ENABLE_ONEDNN_OPTS" not in _os.environ
    and "tensorflow" not in _sys.modules
)
if ONEDNN_DEFAULTED:
    _os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
