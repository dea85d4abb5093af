"""BatchNorm "standing statistics" for the EMA generator (BigGAN, Brock et al. 2019).

The paper samples from an exponential moving average of G's weights (section 3.3)
but does not say where that generator's BatchNorm statistics come from. During
training they are moving averages (momentum 0.99, ~100 steps) of the EMA
generator's own batch statistics (`DVDGAN._update_ema`), so they trail its weights,
which keep moving. Standing statistics replace them by the exact statistics of the
current weights: N training-mode forwards, each with fresh z and labels (and real
conditioning frames for DVD-GAN-FP), give per-batch means and variances whose
averages become every BN layer's moving mean and variance. Nothing else changes:
the spectral-norm vectors that a training-mode forward would also update are put
back. The estimate needs many batches: on the built-in dataset the EMA generator's
Fréchet distance moves by ~2 (of ~7) between two draws of 128 batches of 8, and
settles with 512 (BENCHMARKS.md).

  recompute(generator, batches)             in place; batches of (z, labels, frames)
  with standing_statistics(generator, batches):   ... restored on exit
  batches_for(config, num_batches, ...)     z ~ N(0, 1), uniform labels, and for
                                            DVD-GAN-FP the first C frames of real
                                            training clips

`config.eval.standing_stats` (a number of batches of `train.batch_size`; 0 = off)
switches it on for the evaluation callback and for everything that loads a run's
EMA generator (`checkpoints.load_ema_generator`: evaluate, sample, export).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import numpy as np
import tensorflow as tf

from dvdgan_tf import layers

Batch = tuple  # (z [B, z_dim], labels [B], frames [B, C, H, W, 3] or None)


def num_batches(config, requested: int | None = None) -> int:
    """`requested`, or config.eval.standing_stats when None (0: off); >= 0 checked."""
    n = config.eval.get("standing_stats", 0) if requested is None else requested
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(
            f"standing_stats must be an int >= 0 (0 = off); received {n!r}"
        )
    return int(n)


def _batch_norms(generator) -> list[layers.ConditionalBatchNorm]:
    return layers.sublayers(generator, layers.ConditionalBatchNorm)


def recompute(generator, batches: Iterable[Batch]) -> int:
    """Sets every BN layer's moving mean/variance to its average batch statistics.

    Each batch is one training-mode forward with momentum 0 (so the moving
    statistics hold that batch's mean and variance, read back after it). All other
    non-trainable state (spectral-norm vectors, sigma) is restored afterwards, and
    on an error (a bad batch) the BN statistics too: G is never left half-updated.
    Returns the number of batches; ValueError when there is none or G has no BN.
    """
    bns = _batch_norms(generator)
    if not bns:
        raise ValueError(f"generator {generator.name!r} has no BatchNorm layer")
    state = list(generator.non_trainable_variables)
    kept = [tf.identity(v) for v in state]
    momenta = [bn.momentum for bn in bns]
    sums = [[np.zeros(bn.moving_mean.shape, np.float64)] * 2 for bn in bns]
    count = 0
    try:
        for bn in bns:
            bn.momentum = 0.0  # moving statistics := this batch's statistics
        # Traced after momentum is set to 0 (read at trace time); one trace per call.
        forward = tf.function(
            lambda z, y, **kw: generator(z, y, training=True, **kw), autograph=False
        )
        for z, labels, frames in batches:
            kwargs = {} if frames is None else {"frames": tf.constant(frames)}
            forward(tf.constant(z), tf.constant(labels), **kwargs)
            for s, bn in zip(sums, bns):
                s[0] = s[0] + bn.moving_mean.numpy()
                s[1] = s[1] + bn.moving_variance.numpy()
            count += 1
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        for v, value in zip(state, kept):
            v.assign(value)  # the BN statistics are set below, on success
    if not count:
        raise ValueError("standing statistics need at least one batch; received none")
    for (mean, var), bn in zip(sums, bns):
        bn.moving_mean.assign((mean / count).astype(np.float32))
        bn.moving_variance.assign((var / count).astype(np.float32))
    return count


@contextlib.contextmanager
def standing_statistics(generator, batches: Iterable[Batch]) -> Iterator[int]:
    """`recompute` for the duration of a `with` block; all statistics restored after.

    For scoring the generator of a running training job without changing the run.
    """
    state = list(generator.non_trainable_variables)
    kept = [tf.identity(v) for v in state]
    try:
        yield recompute(generator, batches)
    finally:
        for v, value in zip(state, kept):
            v.assign(value)


def batches_for(
    config, num_batches: int, batch_size: int | None = None, seed: int = 0
) -> list[Batch]:
    """`num_batches` batches of G's inputs for `recompute`, drawn like training's.

    z ~ N(0, 1) [B, z_dim], labels uniform over the classes [B] (0 for a one-class
    run), B = `batch_size` or config.train.batch_size: G's BatchNorm normalised
    batches of that size in training, and a batch's variance depends on it (the
    positions of one clip are strongly correlated, so it is ~(B-1)/B of the
    population's); other sizes change the samples (BENCHMARKS.md). DVD-GAN-FP
    (model.conditioning_frames C > 0): the first C frames of real clips of the
    training split, [B, C, H, W, 3] in [-1, 1]; the test split is what evaluation
    scores, so it stays out of the statistics.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1; received {num_batches}")
    b = int(batch_size or config.train.batch_size)
    if b < 1:
        raise ValueError(f"batch_size must be >= 1; received {b}")
    m = config.model
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_batches, b, m.z_dim)).astype(np.float32)
    labels = rng.integers(0, max(1, m.num_classes), (num_batches, b)).astype(np.int32)
    frames = [None] * num_batches
    c = m.get("conditioning_frames", 0)
    if c:
        from dvdgan_tf import prediction

        clips = prediction.dataset_clips(
            config, num_batches * b, b, splits=("train",)
        )  # [N*B, C+T, H, W, 3]
        n = len(clips.labels)
        order = rng.permutation(num_batches * b) % n  # repeats when the split is short
        cond = clips.videos[order, :c]  # [N*B, C, H, W, 3]
        frames = list(
            cond.reshape((num_batches, b) + cond.shape[1:])
        )  # N x [B, C, ...]
        if m.num_classes > 1:  # The clips' own classes, as in training.
            labels = clips.labels[order].reshape(num_batches, b).astype(np.int32)
    return [(z[i], labels[i], frames[i]) for i in range(num_batches)]
