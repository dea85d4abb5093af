"""BatchNorm standing statistics (dvdgan_tf/standing_stats.py): the recomputed moving
statistics are the batches' own, averaged; nothing else changes; the context
manager restores everything; configs, old workdirs and the loader take the setting."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, load_runlocal

from dvdgan_tf import checkpoints, config_lib, standing_stats
from dvdgan_tf.generator import Generator

FP_TINY = os.path.join(REPO, "configs/synthetic_actions_fp_cpu.py:runlocal")


@pytest.fixture(scope="module")
def converged():
    """The weights of a runlocal generator whose spectral-norm vectors have converged
    (30 training-mode forwards, ~5 s eagerly: made once per module)."""
    config = load_runlocal()
    keras.utils.set_random_seed(0)  # before the per-test seeding (conftest)
    g = Generator.from_model_config(config.model)
    ((z, y, _),) = standing_stats.batches_for(config, 1, 4, seed=9)
    for _ in range(30):
        g(tf.constant(z), tf.constant(y), training=True)
    return [v.numpy() for v in g.weights]


def _generator(config, weights):
    """A fresh generator holding `converged`'s weights: one more training-mode forward
    leaves its sigmas where they are."""
    g = Generator.from_model_config(config.model)
    for v, w in zip(g.weights, weights, strict=True):
        v.assign(w)
    return g


def _bn_stats(g):
    return [
        (bn.moving_mean.numpy(), bn.moving_variance.numpy())
        for bn in standing_stats._batch_norms(g)
    ]


def test_one_batch_makes_inference_equal_training_mode(converged):
    config = load_runlocal()
    g = _generator(config, converged)
    ((z, y, _),) = batch = standing_stats.batches_for(config, 1, 4, seed=1)
    assert z.shape == (4, config.model.z_dim) and y.shape == (4,)
    # Before: inference uses stale moving averages, so the outputs differ.
    inference = g(tf.constant(z), tf.constant(y), training=False).numpy()
    training = g(tf.constant(z), tf.constant(y), training=True).numpy()
    assert np.abs(inference - training).max() > 1e-2
    assert standing_stats.recompute(g, batch) == 1
    inference = g(tf.constant(z), tf.constant(y), training=False).numpy()
    np.testing.assert_allclose(inference, training, atol=2e-5)


def test_statistics_are_the_average_over_batches_and_sn_is_untouched(converged):
    config = load_runlocal()
    g = _generator(config, converged)
    b1, b2 = standing_stats.batches_for(config, 2, 4, seed=2)
    assert not np.array_equal(b1[0], b2[0])
    sn = [v.numpy() for v in g.non_trainable_variables if "sn_u" in v.path]
    assert sn
    standing_stats.recompute(g, [b1])
    s1 = _bn_stats(g)
    standing_stats.recompute(g, [b2])
    s2 = _bn_stats(g)
    standing_stats.recompute(g, [b1, b2])
    for (m1, v1), (m2, v2), (m, v) in zip(s1, s2, _bn_stats(g)):
        np.testing.assert_allclose(m, (m1 + m2) / 2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v, (v1 + v2) / 2, rtol=1e-5, atol=1e-6)
        assert not np.allclose(m1, m2)  # two batches, two sets of statistics
    # Only the BN statistics changed: spectral-norm vectors are put back.
    after = [v.numpy() for v in g.non_trainable_variables if "sn_u" in v.path]
    for a, b in zip(sn, after):
        np.testing.assert_array_equal(a, b)
    for bn in standing_stats._batch_norms(g):
        assert bn.momentum == 0.99  # restored
    with pytest.raises(ValueError, match="at least one batch; received none"):
        standing_stats.recompute(g, [])
    # A bad batch (wrong z width) fails without touching any statistic.
    state = [v.numpy() for v in g.non_trainable_variables]
    z, y, _ = b1
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        standing_stats.recompute(g, [b1, (z[:, :3], y, None)])
    for a, v in zip(state, g.non_trainable_variables):
        np.testing.assert_array_equal(a, v.numpy())
    with pytest.raises(ValueError, match="num_batches must be >= 1; received 0"):
        standing_stats.batches_for(config, 0)


def test_context_manager_restores_every_statistic(converged):
    config = load_runlocal()
    g = _generator(config, converged)
    before = [v.numpy() for v in g.non_trainable_variables]
    with standing_stats.standing_statistics(
        g, standing_stats.batches_for(config, 2, 4)
    ) as n:
        assert n == 2
        inside = [v.numpy() for v in g.non_trainable_variables]
        assert any(not np.array_equal(a, b) for a, b in zip(before, inside))
    for a, b in zip(before, [v.numpy() for v in g.non_trainable_variables]):
        np.testing.assert_array_equal(a, b)


def test_fp_batches_carry_training_clips_and_their_labels():
    config = config_lib.load_config(FP_TINY)
    m = config.model
    batches = standing_stats.batches_for(config, 3, 4, seed=0)
    assert len(batches) == 3
    for z, y, frames in batches:
        assert z.shape == (4, m.z_dim)
        shape = (4, m.conditioning_frames, m.resolution, m.resolution, 3)
        assert frames.shape == shape and frames.dtype == np.float32
        assert -1.0 <= frames.min() and frames.max() <= 1.0
        assert y.dtype == np.int32 and 0 <= y.min() and y.max() < m.num_classes
    g = Generator.from_model_config(m)
    assert standing_stats.recompute(g, batches) == 3


def test_config_validation_and_old_workdirs(tmp_path):
    config = load_runlocal()
    assert config_lib.base_config().eval.standing_stats == 0  # paper-agnostic default
    assert config.eval.standing_stats > 0  # the built-in dataset's configs use it
    # Batches default to training's size: the size G's BatchNorm normalised.
    ((z, y, _),) = standing_stats.batches_for(config, 1)
    assert z.shape[0] == y.shape[0] == config.train.batch_size
    bad = load_runlocal()
    bad.eval.standing_stats = -3
    with pytest.raises(ValueError, match="eval.standing_stats=-3"):
        config_lib.validate(bad)
    # A run saved before the field existed loads with it off (as it was run).
    saved = json.loads(config.to_json())
    del saved["eval"]["standing_stats"]
    os.makedirs(tmp_path / "w")
    with open(checkpoints.config_path(str(tmp_path / "w")), "w") as f:
        json.dump(saved, f)
    assert checkpoints.load_workdir_config(str(tmp_path / "w")).eval.standing_stats == 0
