"""Evaluation metrics: FVD / per-frame FID / IS, and the built-in dataset's metric.

  frechet          Fréchet distance between Gaussians fitted to activations (numpy).
  inception_score  Classifier score / Inception Score from logits.
  embedders        I3D (FVD), InceptionV3 (FID) and a UCF-101 C3D (IS), loaded from
                   local paths; nothing downloads.
  classifier       A small 3-D-conv classifier of the built-in synthetic-actions
                   clips and `BuiltinMetrics` (class accuracy, Fréchet distance in
                   its feature space, per-class diversity).

The numpy-only functions are re-exported here; import `embedders` and `classifier`
as submodules (they load TensorFlow / Keras).
"""

from dvdgan_tf.eval.frechet import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
)
from dvdgan_tf.eval.inception_score import classifier_score

__all__ = [
    "classifier_score",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
]
