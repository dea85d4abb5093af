"""Trains the built-in dataset's video classifier (the offline metric) and caches it.

  python -m dvdgan_tf.train_classifier --num_frames=8 --resolution=32 [--out=PATH]

Trains `dvdgan_tf.eval.classifier.build_classifier` on real synthetic-actions clips
(seed --seed), reports its accuracy on held-out clips of another seed, and saves
the model to --out, by default `default_classifier_path(T, R)`
(~/.cache/dvdgan_tf/classifier_T8_R32.keras, or under $DVDGAN_TF_CACHE), with the
report next to it (.json). `dvdgan_tf.evaluate` loads it from there. Expected at
the defaults (8 x 32 x 32, 4800 clips, 8 epochs): held-out accuracy ~1.0 in a few
minutes on 2 CPU cores.
"""

from __future__ import annotations

import json

from absl import app, flags, logging

from dvdgan_tf.eval import classifier

_NUM_FRAMES = flags.DEFINE_integer("num_frames", 8, "Frames per clip (T).")
_RESOLUTION = flags.DEFINE_integer("resolution", 32, "Frame height = width (R).")
_OUT = flags.DEFINE_string(
    "out", "", "Output .keras path; default: the cache path for (T, R)."
)
_NUM_TRAIN = flags.DEFINE_integer("num_train", 4800, "Training clips.")
_NUM_TEST = flags.DEFINE_integer("num_test", 1200, "Held-out test clips.")
_EPOCHS = flags.DEFINE_integer("epochs", 8, "Training epochs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 3e-3, "Peak Adam learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Training data and initialisation seed.")
_MIN_ACCURACY = flags.DEFINE_float(
    "min_accuracy", 0.0, "Exit with an error if held-out accuracy is below this."
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    t, r = _NUM_FRAMES.value, _RESOLUTION.value
    out = _OUT.value or classifier.default_classifier_path(t, r)
    logging.info("training the %dx%dx%d video classifier -> %s", t, r, r, out)
    model, report = classifier.train_classifier(
        t,
        r,
        num_train=_NUM_TRAIN.value,
        num_test=_NUM_TEST.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        seed=_SEED.value,
        verbose=2,
    )
    classifier.save_classifier(model, report, out)
    print(json.dumps(report, indent=2))
    print(
        f"held-out accuracy {report['test_accuracy']:.4f} on {report['num_test']} "
        f"clips; trained in {report['train_seconds']:.0f} s; saved to {out}"
    )
    if report["test_accuracy"] < _MIN_ACCURACY.value:
        raise SystemExit(
            f"held-out accuracy {report['test_accuracy']:.4f} < --min_accuracy="
            f"{_MIN_ACCURACY.value}"
        )


if __name__ == "__main__":
    app.run(main)
