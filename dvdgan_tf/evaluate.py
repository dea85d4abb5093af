"""Evaluates a trained run's EMA generator: builtin metric, FVD, per-frame FID, IS.

  # Runs on the built-in dataset (the classifier is trained and cached on first
  # use at the run's T and resolution, see dvdgan_tf/eval/classifier.py):
  python -m dvdgan_tf.evaluate --workdir=DIR [--num_samples=600]
  # FVD / FID / IS with locally downloaded networks (nothing downloads):
  python -m dvdgan_tf.evaluate --workdir=DIR --metrics=fvd,fid \\
      --i3d_path=/data/i3d-kinetics-400 \\
      --inception_path=/data/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5
  python -m dvdgan_tf.evaluate --workdir=DIR --metrics=is --c3d_path=/data/c3d_ucf101

Writes DIR/eval/<step>.json and TensorBoard scalars under DIR/tb/eval, and prints
a table. Defaults (--num_samples, --metrics, --truncation, --standing_stats) come from the run's
config `eval` section. Protocols: `dvdgan_tf/evaluation.py`.

DVD-GAN-FP runs (future prediction) take the same command: G continues
--num_samples real clips (test split) from their first C frames and the predicted T
frames are scored against the clips' real continuations (builtin: does the
continuation keep the conditioning clip's class; fvd: predicted vs real
continuations, the paper's protocol):

  python -m dvdgan_tf.evaluate --workdir=workdirs/synthetic_actions_fp_cpu
  python -m dvdgan_tf.evaluate --workdir=runs/bair_fp --metrics=fvd \\
      --num_samples=256 --i3d_path=/data/i3d-kinetics-400
"""

from __future__ import annotations

from absl import app, flags

from dvdgan_tf import evaluation

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's directory.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "", "Checkpoint name (ckpt-N) or path; default: the latest."
)
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples",
    None,
    "Generated videos; DVD-GAN-FP: conditioning clips (default: "
    "config.eval.num_samples).",
)
_METRICS = flags.DEFINE_list(
    "metrics",
    None,
    f"Metrics among {', '.join(evaluation.METRICS)} (default: config.eval.metrics).",
)
_I3D_PATH = flags.DEFINE_string(
    "i3d_path", "", "FVD: local Kinetics-400 I3D (TF-Hub module directory)."
)
_INCEPTION_PATH = flags.DEFINE_string(
    "inception_path", "", "FID: local InceptionV3 no-top ImageNet weights (.h5)."
)
_C3D_PATH = flags.DEFINE_string(
    "c3d_path", "", "IS: local UCF-101 classifier (SavedModel dir or .keras/.h5)."
)
_C3D_VALUE_RANGE = flags.DEFINE_list(
    "c3d_value_range", ["-1", "1"], "Input value range of the --c3d_path model."
)
_CLASSIFIER_PATH = flags.DEFINE_string(
    "classifier_path", "", "builtin: classifier .keras file (default: the cache)."
)
_TRUNCATION = flags.DEFINE_float(
    "truncation", None, "Truncation threshold of z; 0 = none (default: config)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the latents.")
_STANDING_STATS = flags.DEFINE_integer(
    "standing_stats",
    None,
    "Batches for the EMA generator's BatchNorm standing statistics; 0 = the "
    "checkpoint's statistics (default: config.eval.standing_stats).",
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "Batch size (default: config.eval.batch_size)."
)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        value_range = tuple(float(v) for v in _C3D_VALUE_RANGE.value)
        if len(value_range) != 2:
            raise ValueError(
                f"--c3d_value_range needs two numbers lo,hi; received "
                f"{','.join(_C3D_VALUE_RANGE.value)!r}"
            )
        path, results, step = evaluation.evaluate_workdir(
            _WORKDIR.value,
            checkpoint=_CHECKPOINT.value or None,
            metrics=_METRICS.value,
            num_samples=_NUM_SAMPLES.value,
            batch_size=_BATCH_SIZE.value,
            truncation=_TRUNCATION.value,
            seed=_SEED.value,
            standing_stats=_STANDING_STATS.value,
            i3d_path=_I3D_PATH.value,
            inception_path=_INCEPTION_PATH.value,
            c3d_path=_C3D_PATH.value,
            c3d_value_range=value_range,
            classifier_path=_CLASSIFIER_PATH.value or None,
        )
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dvdgan_tf.evaluate: error: {e}") from None
    print(evaluation.format_table(results, step))
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
