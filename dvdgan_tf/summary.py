"""Prints the parameter counts of G, D_S and D_T for configs (trainable weights only).

python -m dvdgan_tf.summary                       # every config in configs/
python -m dvdgan_tf.summary --configs=configs/ucf101_128x16.py,configs/x.py:runlocal
python -m dvdgan_tf.summary --configs=... --blocks  # also each block's output shape
"""

from __future__ import annotations

import gc
import glob
import os

import numpy as np
from absl import app, flags

from dvdgan_tf import config_lib, layers
from dvdgan_tf.discriminators import SpatialDiscriminator, TemporalDiscriminator
from dvdgan_tf.generator import Generator

FLAGS = flags.FLAGS


def _define_flags():
    """Flags exist only when run as a program, so importing this module is safe."""
    flags.DEFINE_list(
        "configs",
        None,
        "Config files (path[:variant]); default: every file in configs/.",
    )
    flags.DEFINE_bool("blocks", False, "Also print each block's parameters.")


def num_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def build_models(model_config):
    """G, D_S, D_T for a config's model section, zero-initialised (for counting)."""
    with layers.kernel_initializer("zeros"):
        return (
            Generator.from_model_config(model_config),
            SpatialDiscriminator.from_model_config(model_config),
            TemporalDiscriminator.from_model_config(model_config),
        )


def _release(models):
    """Frees models now: Keras models are reference cycles, which the cyclic garbage
    collector reclaims only when it happens to run, and a paper-size config's three
    networks hold ~2 GiB of weights; counting every config would otherwise keep them
    all (~15 GiB)."""
    del models[:]
    gc.collect()


def parameter_counts(spec: str) -> dict[str, int]:
    models = list(build_models(config_lib.load_config(spec).model))
    counts = dict(zip(("G", "D_S", "D_T"), (num_params(m) for m in models)))
    _release(models)
    return counts


def main(argv):
    del argv
    root = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"
    )
    specs = FLAGS.configs or sorted(glob.glob(os.path.join(root, "*.py")))
    print(f"{'config':<48}{'G':>14}{'D_S':>14}{'D_T':>14}")
    for spec in specs:
        models = list(build_models(config_lib.load_config(spec).model))
        counts = [num_params(m) for m in models]
        print(f"{os.path.basename(spec):<48}" + "".join(f"{c:>14,}" for c in counts))
        if FLAGS.blocks:
            for model in models:
                for layer in model.layers:
                    print(f"    {layer.name:<20}{num_params(layer):>14,}")
        _release(models)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
