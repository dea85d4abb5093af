"""Trains DVD-GAN: `python -m dvdgan_tf.train --config=configs/<file>.py[:variant] --workdir=DIR`.

Rerunning the same command resumes from the latest checkpoint in DIR. Examples:

  # CPU, the built-in dataset (the README's main job):
  python -m dvdgan_tf.train --config=configs/synthetic_actions_cpu.py --workdir=workdirs/cpu
  # Smoke test in seconds:
  python -m dvdgan_tf.train --config=configs/synthetic_actions_cpu.py:runlocal --workdir=/tmp/s
  # Several GPUs on one host / several hosts (TF_CONFIG set on each) / a TPU:
  python -m dvdgan_tf.train --config=configs/ucf101_128x16.py --workdir=gs://b/r --strategy=mirrored
  python -m dvdgan_tf.train --config=... --workdir=gs://b/r --strategy=multi_worker
  python -m dvdgan_tf.train --config=... --workdir=gs://b/r --strategy=tpu --tpu=my-tpu
  # Override any config field:
  python -m dvdgan_tf.train --config=... --workdir=... --config.train.batch_size=8
"""

from __future__ import annotations

from absl import app, flags, logging
from ml_collections import config_flags

from dvdgan_tf import config_lib, runtime, training

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file path, optionally with a variant: configs/x.py or configs/x.py:runlocal. "
    "Fields can be overridden: --config.train.batch_size=8.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Directory for checkpoints, samples, TensorBoard logs; reruns resume.",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "default",
    list(runtime.STRATEGIES),
    "tf.distribute strategy: default (one device, whatever TF picks), one_device, "
    "mirrored (all local GPUs), multi_worker (hosts from TF_CONFIG), tpu.",
)
_TPU = flags.DEFINE_string(
    "tpu",
    "",
    "TPU name or grpc://address for --strategy=tpu ('' = local TPU VM / Colab).",
)
_VERBOSE = flags.DEFINE_enum(
    "verbose",
    "auto",
    ["auto", "0", "1", "2"],
    "Keras fit verbosity (1 = progress bar).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    config_lib.validate(config)  # again: command-line overrides come after get_config
    strategy = runtime.get_strategy(_STRATEGY.value, _TPU.value)
    logging.info(
        "strategy %s with %d replica(s); oneDNN CPU kernels %s",
        _STRATEGY.value,
        strategy.num_replicas_in_sync,
        "on" if runtime.onednn_enabled() else "off",
    )
    verbose = _VERBOSE.value if _VERBOSE.value == "auto" else int(_VERBOSE.value)
    training.train(config, _WORKDIR.value, strategy, verbose=verbose)


if __name__ == "__main__":
    app.run(main)
