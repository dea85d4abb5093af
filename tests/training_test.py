"""Training: hinge losses, a tiny fit, d_steps, EMA, strategies, resume, NaN stop,
config mismatch, the train CLI."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, TINY, copy_run, load_runlocal

from dvdgan_tf import checkpoints, losses, runtime, training
from dvdgan_tf.model import DVDGAN

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}


def test_hinge_losses_match_hand_computed():
    real = tf.constant([2.0, 0.5, -1.0])
    fake = tf.constant([-2.0, 0.0, 1.5])
    d = losses.d_hinge_terms(real, fake)
    # relu(1 - [2, .5, -1]) = [0, .5, 2] -> 2.5/3;  relu(1 + [-2, 0, 1.5]) = [0, 1, 2.5] -> 3.5/3
    np.testing.assert_allclose(d["real"].numpy(), 2.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(d["fake"].numpy(), 3.5 / 3, rtol=1e-6)
    # D_T terms on swapped scores: relu(1 - fake) = [3, 1, 0]; relu(1 + real) = [3, 1.5, 0]
    total = losses.discriminator_loss(real, fake, fake, real)
    np.testing.assert_allclose(
        total["d_loss"].numpy(), 2.5 / 3 + 3.5 / 3 + 4 / 3 + 4.5 / 3, rtol=1e-6
    )
    g = losses.generator_loss(fake, real)
    np.testing.assert_allclose(g["g_ds"].numpy(), 0.5 / 3, rtol=1e-6)  # -mean(fake)
    np.testing.assert_allclose(g["g_dt"].numpy(), -1.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(g["g_loss"].numpy(), -1.0 / 3, rtol=1e-6)
    # D_T's weight in G's loss scales its term only; the logged terms stay unweighted.
    g = losses.generator_loss(fake, real, dt_weight=0.25)
    np.testing.assert_allclose(g["g_loss"].numpy(), 0.5 / 3 - 0.25 * 1.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(g["g_dt"].numpy(), -1.5 / 3, rtol=1e-6)


def _random_dataset(config, n_batches=2):
    m, t = config.model, config.train
    b = t.batch_size * t.d_steps
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, (n_batches * b, m.num_frames, m.resolution, m.resolution, 3))
    y = rng.integers(0, m.num_classes, n_batches * b).astype("int32")
    return (
        tf.data.Dataset.from_tensor_slices((v.astype("float32"), y)).batch(b).repeat()
    )


def _build(config):
    """The GAN as the train command builds it: the config's runtime settings (runlocal:
    float32, no Grappler) applied first, one device."""
    return training.build_gan(config, tf.distribute.get_strategy())


def _snapshot(model):
    return [np.asarray(w.value).copy() for w in model.trainable_weights]


def _ema_pairs(gan):
    """Copies of (EMA G, G) trainable weights, pair by pair, all of G's trainables."""
    pairs = [
        (np.asarray(e.value).copy(), np.asarray(w.value).copy())
        for e, w in zip(gan.ema_generator.weights, gan.generator.weights)
        if w.trainable
    ]
    assert len(pairs) == len(gan.generator.trainable_weights)
    return pairs


def _changed(model, before):
    return all(
        not np.allclose(np.asarray(w.value), b)
        for w, b in zip(model.trainable_weights, before)
    )


# Each fixture's users on one pytest-xdist worker (--dist=loadgroup), so that its model
# is built once (a train step costs ~20 s to build on 2 cores).
FOUR_STEPS_GROUP = pytest.mark.xdist_group("four_steps")
TWO_STEPS_GROUP = pytest.mark.xdist_group("two_steps")


@pytest.fixture(scope="module")
def four_steps():
    """A runlocal model fitted four steps (one per epoch) with the paper's two D steps
    per G step, learning rates G 1e-3 and D 2e-3 decaying over the last 2 steps to
    half, and an EMA from step 2 at decay 0.25 whose BN statistics come from its own
    forward ("forward"). Returns (gan, config, history, the trainable weights of G,
    D_S and D_T before the fit, and (EMA G, G) trainable weight pairs after it)."""
    config = load_runlocal()
    with config.unlocked():
        config.train.d_steps = 2
        config.train.g_lr, config.train.d_lr = 1e-3, 2e-3
        config.train.lr_decay_steps, config.train.lr_final_fraction = 2, 0.5
        config.train.ema_start = 2
        config.train.ema_decay = 0.25
        config.train.ema_statistics = "forward"  # the default CPU config: "copy"
    keras.utils.set_random_seed(0)
    gan = _build(config)
    before = [
        _snapshot(m)
        for m in (gan.generator, gan.spatial_discriminator, gan.temporal_discriminator)
    ]
    history = gan.fit(_random_dataset(config), steps_per_epoch=1, epochs=4, verbose=0)
    return gan, config, history.history, before, _ema_pairs(gan)


@FOUR_STEPS_GROUP
def test_tiny_fit_updates_every_network_and_ema(four_steps):
    gan, config, history, (g0, ds0, dt0), pairs = four_steps
    for name, values in history.items():
        assert np.all(np.isfinite(values)), name
    assert {"d_loss", "g_loss", "ds_real", "dt_fake", "g_grad_norm"} <= set(history)
    assert _changed(gan.generator, g0)
    assert _changed(gan.spatial_discriminator, ds0)
    assert _changed(gan.temporal_discriminator, dt0)
    # d_steps = 2: the D optimizer took twice as many steps as G's.
    assert int(gan.g_optimizer.iterations.numpy()) == 4
    assert int(gan.d_optimizer.iterations.numpy()) == 8
    # Past ema_start the EMA weights trail G's: different, but close.
    assert len(pairs) == len(gan.generator.trainable_weights)
    assert all(not np.allclose(e, w) for e, w in pairs)
    assert max(np.abs(e - w).max() for e, w in pairs) < 0.05
    # Calling the model samples from the EMA generator.
    z = tf.random.normal([2, config.model.z_dim], seed=0)
    y = tf.constant([0, 1])
    np.testing.assert_array_equal(
        gan(z, y).numpy(), gan.ema_generator(z, y, training=False).numpy()
    )


@FOUR_STEPS_GROUP
def test_learning_rates_follow_the_config_schedule(four_steps):
    """The rates of each step come from the config's schedule (logged as g_lr,
    d_lr), both driven by G's step count (D takes two steps per G step here)."""
    history = four_steps[2]  # num_steps 4, lr_decay_steps 2: steps 2, 3 decay
    np.testing.assert_allclose(history["g_lr"], [1e-3, 1e-3, 1e-3, 7.5e-4], 1e-6)
    np.testing.assert_allclose(history["d_lr"], [2e-3, 2e-3, 2e-3, 1.5e-3], 1e-6)


@FOUR_STEPS_GROUP
def test_ema_batchnorm_statistics_are_the_ema_generators_own(four_steps):
    """_update_ema averages trainable weights, then one training-mode forward of
    the EMA generator updates its BN moving statistics (checked against an
    independent Generator given the hand-averaged weights). The one user of
    four_steps' model that changes it: one more EMA update."""
    from dvdgan_tf.generator import Generator

    gan, tiny_config, _, _, _ = four_steps
    assert gan.ema_statistics == "forward"
    assert int(gan.g_optimizer.iterations) == 4  # past ema_start=2: decay 0.25
    g_w = [np.asarray(w.value).copy() for w in gan.generator.weights]
    ema_w = [np.asarray(w.value).copy() for w in gan.ema_generator.weights]
    trainable = [w.trainable for w in gan.generator.weights]
    # Not copied from G: the statistics of G and of its average differ.
    stats = [i for i, w in enumerate(gan.generator.weights) if "moving_" in w.path]
    assert stats and any(not np.allclose(g_w[i], ema_w[i]) for i in stats)

    ref = Generator.from_model_config(tiny_config.model, name="reference")
    for r, e, w, t in zip(ref.weights, ema_w, g_w, trainable):
        r.assign(0.25 * e + 0.75 * w if t else e)
    z = tf.random.normal([3, tiny_config.model.z_dim], seed=1)
    y = tf.constant([0, 5, 11])
    ref(z, y, training=True)
    gan._update_ema(z, y)
    for r, e in zip(ref.weights, gan.ema_generator.weights):
        np.testing.assert_allclose(
            np.asarray(e.value), np.asarray(r.value), rtol=1e-5, atol=1e-6
        )


def _np_power_iteration(kernel, u, eps=1e-4):
    """One Miyato power iteration in numpy: returns (u', sigma)."""
    w = kernel.reshape(-1, kernel.shape[-1])  # [N, C_out]

    def normalise(x):
        return x / max(np.sqrt(np.sum(x * x)), eps)

    v = normalise(u @ w.T)  # [1, N]
    u_new = normalise(v @ w)  # [1, C_out]
    return u_new, float((v @ w @ u_new.T)[0, 0])


@pytest.fixture(scope="module")
def two_steps():
    """A runlocal model fitted two steps, one `fit` call each, with an EMA from step
    1 at decay 0.5 and D_T's G-loss weight 0.25, then 3.0 from step 1 (schedule).
    Returns (gan, config, [history of each step], [(EMA G, G) trainable weight pairs
    after each step])."""
    config = load_runlocal()
    with config.unlocked():
        config.train.ema_start = 1
        config.train.ema_decay = 0.5
        config.train.ema_statistics = "copy"  # runlocal's default too
        config.train.g_dt_weight = 0.25
        config.train.g_dt_weight_schedule = ((1, 3.0),)  # from step 1 on
    keras.utils.set_random_seed(0)
    gan = _build(config)
    ds = _random_dataset(config)
    histories, weights = [], []
    for _ in range(2):
        h = gan.fit(ds, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        histories.append(h.history)
        weights.append(_ema_pairs(gan))
    return gan, config, histories, weights


@TWO_STEPS_GROUP
def test_ema_statistics_copy_takes_gs_batchnorm_and_iterates_its_own_sn(
    two_steps, tmp_path
):
    """ema_statistics="copy": no forward of the EMA generator. Its BN moving
    statistics become G's; each SN layer's u takes one power iteration on the
    averaged kernel (numpy reference); the averaged weights are as in "forward".
    The one user of two_steps' model: it runs one more EMA update on it."""
    from dvdgan_tf import config_lib, layers

    gan, config, _, _ = two_steps
    tiny_config = config.copy_and_resolve_references()
    assert gan.ema_statistics == "copy"
    assert int(gan.g_optimizer.iterations) == 2  # past ema_start=1: decay 0.5
    bn = layers.ConditionalBatchNorm
    for e, w in zip(
        layers.sublayers(gan.ema_generator, bn), layers.sublayers(gan.generator, bn)
    ):  # after fit: copied at the last step
        np.testing.assert_array_equal(e.moving_mean.numpy(), w.moving_mean.numpy())
        np.testing.assert_array_equal(
            e.moving_variance.numpy(), w.moving_variance.numpy()
        )
    sns = layers.sublayers(gan.ema_generator, layers.SpectralNorm)
    assert len(sns) > 10
    rng = np.random.default_rng(3)
    for sn in sns:  # u unlike G's: a copy of G's u (or no iteration) would show
        sn.sn_u.assign(rng.standard_normal(sn.sn_u.shape).astype("float32"))
    before = {
        sn.path: (sn.kernel.numpy(), sn.sn_u.numpy()) for sn in sns
    }  # EMA kernel, u
    g_kernels = {
        sn.path.replace("ema_generator", "generator", 1): sn.kernel.numpy()
        for sn in layers.sublayers(gan.generator, layers.SpectralNorm)
    }
    z = tf.random.normal([3, tiny_config.model.z_dim], seed=1)
    gan._update_ema(z, tf.constant([0, 5, 11]))
    for sn in sns:
        kernel, u = before[sn.path]
        avg = (
            0.5 * kernel
            + 0.5 * g_kernels[sn.path.replace("ema_generator", "generator", 1)]
        )
        np.testing.assert_allclose(sn.kernel.numpy(), avg, rtol=1e-5, atol=1e-6)
        u_want, sigma_want = _np_power_iteration(avg, u)
        np.testing.assert_allclose(sn.sn_u.numpy(), u_want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sn.sigma.numpy(), sigma_want, rtol=1e-3)
    # Validated in the config and in compile, quoting the bad value.
    bad = tiny_config.copy_and_resolve_references()
    bad.train.ema_statistics = "average"
    with pytest.raises(ValueError, match="train.ema_statistics='average'"):
        config_lib.validate(bad)
    with pytest.raises(ValueError, match="'average'"):
        DVDGAN.from_config_dict(bad)
    # A run saved before the field existed loads with "forward" (as it was run).
    saved = json.loads(tiny_config.to_json())
    del saved["train"]["ema_statistics"]
    with open(checkpoints.config_path(str(tmp_path)), "w") as f:
        json.dump(saved, f)
    assert checkpoints.load_workdir_config(str(tmp_path)).train.ema_statistics == (
        "forward"
    )


@TWO_STEPS_GROUP
def test_g_dt_weight_and_its_schedule_reach_the_train_step_and_are_validated(
    two_steps, tmp_path
):
    """train.g_dt_weight = w until the schedule's first step, then the schedule's
    weight: every logged G loss is g_ds + w g_dt with the w of its step (one step
    per fit); bad values are refused, quoted."""
    from dvdgan_tf import config_lib

    _, config, histories, _ = two_steps
    tiny_config = config.copy_and_resolve_references()
    assert [h["g_dt_weight"] for h in histories] == [[0.25], [3.0]]  # logged
    for h, w in zip(histories, (0.25, 3.0), strict=True):
        g_loss, g_ds, g_dt = (h[k][0] for k in ("g_loss", "g_ds", "g_dt"))
        assert abs(g_dt) > 1e-3  # the check below would not see the weight otherwise
        np.testing.assert_allclose(g_loss, g_ds + w * g_dt, rtol=1e-5, atol=1e-6)
    bad = tiny_config.copy_and_resolve_references()
    bad.train.g_dt_weight = -0.5  # (ConfigDict itself refuses other types)
    with pytest.raises(ValueError, match=re.escape("train.g_dt_weight=-0.5")):
        config_lib.validate(bad)
    bad.train.g_dt_weight = -1.0
    with pytest.raises(ValueError, match="-1.0"):
        DVDGAN.from_config_dict(bad)
    bad.train.g_dt_weight = 1.0
    for schedule, why in [
        (((5, 1.0), (5, 2.0)), "increase strictly"),
        (((5, -2.0),), "weights must be numbers >= 0, not -2.0"),
        (((-1, 2.0),), "steps must be ints >= 0, not -1"),
        (((5, 1.0, 2.0),), "(step, weight) pairs, not (5, 1.0, 2.0)"),
    ]:
        bad.train.g_dt_weight_schedule = schedule
        message = f"{why}; received train.g_dt_weight_schedule={schedule!r}"
        with pytest.raises(ValueError, match=re.escape(message)):
            config_lib.validate(bad)
    with pytest.raises(ValueError, match=re.escape("g_dt_weight_schedule=((5, 1.0")):
        DVDGAN.from_config_dict(bad)
    saved = json.loads(tiny_config.to_json())
    del saved["train"]["g_dt_weight"]  # a run saved before the fields: the paper's 1
    del saved["train"]["g_dt_weight_schedule"]
    with open(checkpoints.config_path(str(tmp_path)), "w") as f:
        json.dump(saved, f)
    loaded = checkpoints.load_workdir_config(str(tmp_path)).train
    assert (loaded.g_dt_weight, loaded.g_dt_weight_schedule) == (1.0, ())


def test_ema_decay_rampup_is_hand_computed_validated_and_used_by_the_model(
    tiny_config,
):
    """schedules.EMADecay: 0 up to start, then min(decay, 1 - 1/max(1, r*step));
    the model averages with it (`_update_ema`, checked against numpy)."""
    from dvdgan_tf import config_lib
    from dvdgan_tf.schedules import EMADecay

    s = EMADecay(0.99, start=2, rampup=0.5)
    got = [float(s(tf.constant(n, tf.int64))) for n in (0, 2, 3, 4, 10, 100, 10**4)]
    # r*step = 1.5, 2, 5, 50, 5000: 1 - 1/h = 1/3, 1/2, 0.8, 0.98, then the cap.
    np.testing.assert_allclose(got, [0, 0, 1 / 3, 0.5, 0.8, 0.98, 0.99], rtol=1e-6)
    assert float(EMADecay(0.99, start=2, rampup=0.1)(tf.constant(5))) == 0.0  # h<=1
    assert float(EMADecay(0.99)(tf.constant(1))) == pytest.approx(0.99)  # constant
    with pytest.raises(ValueError, match=r"received ema_rampup=-0.1"):
        EMADecay(0.99, rampup=-0.1)
    with pytest.raises(ValueError, match=r"received ema_decay=1.0"):
        EMADecay(1.0)
    c = load_runlocal()
    with c.unlocked():
        c.train.ema_rampup = -1
    with pytest.raises(ValueError, match=r"received train.ema_rampup=-1"):
        config_lib.validate(c)

    with tiny_config.unlocked():
        tiny_config.train.ema_start = 0
        tiny_config.train.ema_decay = 0.9
        tiny_config.train.ema_rampup = 0.5
        tiny_config.train.ema_statistics = "copy"  # no forward pass needed here
    gan = DVDGAN.from_config_dict(tiny_config)
    assert gan.ema_schedule.get_config() == {"decay": 0.9, "start": 0, "rampup": 0.5}
    rng = np.random.default_rng(0)
    for w in gan.generator.trainable_weights:  # G moves away from its copy
        w.assign(w.numpy() + rng.normal(0, 0.1, w.shape).astype("float32"))
    pairs = [
        (e.numpy(), w.numpy())
        for e, w in zip(gan.ema_generator.weights, gan.generator.weights)
        if w.trainable
    ]
    gan.g_optimizer.iterations.assign(4)  # horizon 0.5 * 4 = 2 steps: d = 0.5
    z = tf.random.normal([3, tiny_config.model.z_dim], seed=1)
    gan._update_ema(z, tf.constant([0, 5, 11]))
    pairs_after = zip(gan.ema_generator.weights, gan.generator.weights)
    ema = [e for e, w in pairs_after if w.trainable]
    for (e0, w0), e in zip(pairs, ema):
        np.testing.assert_allclose(e.numpy(), 0.5 * e0 + 0.5 * w0, rtol=1e-5, atol=1e-6)


def test_lr_tail_decay_is_constant_then_linear_and_validated():
    """Hand-computed: base 4e-4, 10 steps, the last 4 decaying to a quarter."""
    from dvdgan_tf import config_lib
    from dvdgan_tf.schedules import LinearTailDecay

    s = LinearTailDecay(4e-4, total_steps=10, decay_steps=4, final_fraction=0.25)
    got = [float(s(tf.constant(step, tf.int64))) for step in range(13)]
    # Steps 0-6 at the base; 6 + i for i = 0..4 at 4e-4 (1 - 0.75 i / 4); then held.
    want = [4e-4] * 7 + [3.25e-4, 2.5e-4, 1.75e-4, 1e-4, 1e-4, 1e-4]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert float(LinearTailDecay(1e-3, 10)(tf.constant(9))) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"decay_steps=11"):
        LinearTailDecay(1e-3, total_steps=10, decay_steps=11)
    with pytest.raises(ValueError, match=r"received 1.5"):
        LinearTailDecay(1e-3, total_steps=10, final_fraction=1.5)
    c = load_runlocal()
    for field, value, quoted in [
        ("lr_decay_steps", 5, "train.num_steps=4]; received train.lr_decay_steps=5"),
        ("lr_decay_steps", -1, "received train.lr_decay_steps=-1"),
        ("lr_final_fraction", 2.0, "received train.lr_final_fraction=2.0"),
    ]:
        bad = c.copy_and_resolve_references()
        setattr(bad.train, field, value)
        with pytest.raises(ValueError, match=re.escape(quoted)):
            config_lib.validate(bad)


@TWO_STEPS_GROUP
def test_ema_is_a_copy_before_start_and_an_average_after(two_steps):
    _, _, _, (first, second) = two_steps
    for e, w in first:  # step 1: not past ema_start, the EMA is a copy of G
        np.testing.assert_array_equal(e, w)
    for (prev_e, _), (e, w) in zip(first, second, strict=True):
        # step 2: ema = .5 ema + .5 w
        np.testing.assert_allclose(e, 0.5 * prev_e + 0.5 * w, rtol=1e-5, atol=1e-6)
        assert not np.array_equal(e, w)


@pytest.mark.slow
def test_xla_train_step_on_one_device(tiny_config):
    """The single-device setting: the whole step compiled with jit_compile=True."""
    with tiny_config.unlocked():
        tiny_config.runtime.jit_compile = "true"
    gan = _build(tiny_config)
    assert gan.jit_compile is True
    g0 = _snapshot(gan.generator)
    history = gan.fit(
        _random_dataset(tiny_config), steps_per_epoch=2, epochs=1, verbose=0
    )
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert _changed(gan.generator, g0)


def test_jit_compile_resolution_per_strategy():
    default = tf.distribute.get_strategy()
    assert runtime.resolve_jit_compile("true", default) is True
    assert runtime.resolve_jit_compile("false", default) is False
    # auto: on with a GPU, off on a CPU-only machine (BENCHMARKS.md)
    assert runtime.resolve_jit_compile("auto", default) is bool(
        tf.config.list_logical_devices("GPU")
    )
    with pytest.raises(ValueError, match="'sometimes'"):
        runtime.resolve_jit_compile("sometimes", default)


def test_graph_optimizations_follow_the_config(tiny_config, tmp_path):
    """Grappler: on in the full configs, off in runlocal ones; build_gan applies the
    config's setting process-wide, as the train command does."""
    from dvdgan_tf import config_lib

    full = config_lib.load_config(
        os.path.join(REPO, "configs/synthetic_actions_cpu.py")
    )
    assert full.runtime.graph_optimizations is True
    assert tiny_config.runtime.graph_optimizations is False
    before = runtime.graph_optimizations()
    try:
        for on in (True, False):
            with tiny_config.unlocked():
                tiny_config.runtime.graph_optimizations = on
            _build(tiny_config)
            assert runtime.graph_optimizations() is on
            options = tf.config.optimizer.get_experimental_options()
            assert options["disable_meta_optimizer"] is not on
    finally:
        runtime.set_graph_optimizations(before)
    # ConfigDict already refuses a non-bool for a bool field ("off" from the command
    # line is an error there); validate() also catches one that is None.
    with tiny_config.unlocked():
        tiny_config.runtime.graph_optimizations = None
    with pytest.raises(ValueError, match="received runtime.graph_optimizations=None"):
        config_lib.validate(tiny_config)
    with pytest.raises(ValueError, match="received 1"):
        runtime.set_graph_optimizations(1)
    # A run saved before the field existed loads with it on (as it was run), and a
    # runlocal resume of it names the change.
    saved = json.loads(full.to_json())
    del saved["runtime"]["graph_optimizations"]
    with open(checkpoints.config_path(str(tmp_path)), "w") as f:
        json.dump(saved, f)
    old = checkpoints.load_workdir_config(str(tmp_path))
    assert old.runtime.graph_optimizations is True
    full.runtime.graph_optimizations = False
    assert "runtime.graph_optimizations: saved True vs now False" in (
        checkpoints.resume_differences(old, full)
    )


def test_precision_resolution_auto_is_bfloat16_only_on_bf16_cpus(tmp_path):
    amx = tmp_path / "amx"
    amx.write_text(
        "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    )
    avx = tmp_path / "avx512_bf16"  # AVX512_BF16 without AMX (AMD Zen 4)
    avx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    plain = tmp_path / "plain"  # AVX-512 without bfloat16: emulated, float32
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    # The flag must be on a flags line, as a whole word.
    other = tmp_path / "other"
    other.write_text("model name\t: avx512_bf16\nflags\t\t: fpu avx512_bf16x\n")
    assert runtime.cpu_bf16_hardware(str(amx)) == "amx_bf16"
    assert runtime.cpu_bf16_hardware(str(avx)) == "avx512_bf16"
    assert runtime.cpu_bf16_hardware(str(plain)) is None
    assert runtime.cpu_bf16_hardware(str(other)) is None
    assert runtime.cpu_bf16_hardware(str(tmp_path / "missing")) is None
    on_accelerator = bool(
        tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    )
    expected = "float32" if on_accelerator else "bfloat16"
    assert runtime.resolve_precision("auto", str(amx)) == expected
    assert runtime.resolve_precision("auto", str(avx)) == expected
    assert runtime.resolve_precision("auto", str(plain)) == "float32"
    for fixed in ("float32", "bfloat16", "mixed_float16"):
        assert runtime.resolve_precision(fixed, str(amx)) == fixed
    with pytest.raises(ValueError, match="'fp8'"):
        runtime.resolve_precision("fp8")


def test_import_turns_onednn_on_unless_the_user_or_an_earlier_tf_import_decides():
    """dvdgan_tf/__init__.py sets TF_ENABLE_ONEDNN_OPTS=1 on x86-64 before TF loads;
    TF then reports oneDNN on, whatever the CPU. A user's value wins, and after an
    earlier `import tensorflow` the package leaves the variable alone."""
    probe = (
        "import os, sys\n"
        "{first}\n"
        "import dvdgan_tf\n"
        "from dvdgan_tf import runtime\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), dvdgan_tf.ONEDNN_DEFAULTED,"
        " runtime.onednn_enabled())\n"
    )

    def run(first="", **env):
        base = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        proc = subprocess.run(
            [sys.executable, "-c", probe.format(first=first)],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.split()

    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the default applies to x86-64 only")
    assert run() == ["1", "True", "True"]
    assert run(TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False", "False"]
    # TF already loaded: too late to choose, so the package does not pretend to.
    out = run(first="import tensorflow")
    assert out[:2] == ["None", "False"]


def test_runlocal_maps_auto_precision_to_float32():
    from dvdgan_tf import config_lib

    spec = os.path.join(REPO, "configs/synthetic_actions_cpu.py")
    full = config_lib.load_config(spec)
    with full.unlocked():
        full.runtime.mixed_precision = "auto"
    assert config_lib.finalize(full).runtime.mixed_precision == "auto"
    # Smoke sizes stay float32 on any CPU (machine-independent test numerics).
    assert config_lib.runlocal(full).runtime.mixed_precision == "float32"
    with full.unlocked():
        full.runtime.mixed_precision = "bfloat16"  # asked for explicitly: kept
    assert config_lib.runlocal(full).runtime.mixed_precision == "bfloat16"


def test_strategy_errors_quote_values(monkeypatch):
    with pytest.raises(ValueError, match="'gpu_farm'"):
        runtime.get_strategy("gpu_farm")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        runtime.get_strategy("multi_worker")
    with pytest.raises(RuntimeError, match="--tpu='no-such-tpu'"):
        runtime.get_strategy("tpu", "no-such-tpu")


def _run(args, timeout=300, env=ENV):
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device():
    out = _run([os.path.join(REPO, "tests/scripts/mirrored_vs_single.py"), TINY])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "replicas 2" in out.stdout
    rel = float(re.search(r"max_rel_diff=(\S+)", out.stdout).group(1))
    state = float(re.search(r"max_state_diff=(\S+)", out.stdout).group(1))
    changed = float(re.search(r"changed=(\S+)", out.stdout).group(1))
    assert changed > 1.0  # the largest gradient entry (seen: 14-44)
    # SGD's step is lr * g: the replicas' summed gradients against the single device's,
    # per tensor, relative to its largest gradient or to 2% of the model's largest,
    # whichever is more (float noise in a small gradient is set by the size of the
    # terms that cancel in it, ~1e-5 absolute), beyond the float32 storage resolution
    # of w - lr * g (the script says how; a purely relative check with a narrower
    # resolution once failed in CI at 1.2e-2). What remains is summation order: up to
    # 6e-5 (seen over ~30 initialisations). A wrong loss scale or a missed all-reduce
    # is off by >= 0.5.
    assert rel < 1e-3, out.stdout[-2000:]
    # BN moving statistics, spectral-norm vectors, the EMA generator (seen: 2.4e-7).
    assert state < 1e-5


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_processes_end_with_identical_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workdir = str(tmp_path / "wd")
    procs = []
    for i in range(2):
        tf_config = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": i}}
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(REPO, "tests/scripts/multi_worker.py"),
                    TINY,
                    workdir,
                    str(tmp_path / f"w{i}.npz"),
                ],
                cwd=REPO,
                env={**ENV, "TF_CONFIG": tf_config},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
        assert "replicas 2" in stdout
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    assert int(w0["step"]) == int(w1["step"]) == 4
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
    # The chief wrote the checkpoints; the other worker's scratch copy is gone.
    assert tf.train.latest_checkpoint(checkpoints.checkpoint_dir(workdir)).endswith(
        "ckpt-4"
    )
    assert not os.path.exists(os.path.join(workdir, "tmp", "worker_1"))


def _train_cmd(workdir, *overrides, verbose=0):
    return [
        "-m",
        "dvdgan_tf.train",
        f"--config={TINY}",
        f"--workdir={workdir}",
        f"--verbose={verbose}",
        *overrides,
    ]


def _signal_after_checkpoint(proc, ckpt_dir, step, sig):
    """Sends `sig` to `proc` once a checkpoint at >= `step` exists (300 s at most)."""
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            latest = (
                tf.train.latest_checkpoint(ckpt_dir)
                if os.path.isdir(ckpt_dir)
                else None
            )
            if latest and checkpoints.checkpoint_step(latest) >= step:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early with code {proc.returncode}")
            time.sleep(0.2)
        else:
            pytest.fail(f"no checkpoint at step >= {step} within 300 s")
        proc.send_signal(sig)
        return proc.wait(timeout=120)
    finally:
        proc.kill()


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_then_sigterm_saves_and_stops(tmp_path):
    """Two runs of the same command: the first killed (SIGKILL, mid-run, possibly
    mid-save), the second resuming from its last checkpoint and stopped by SIGTERM
    (preemption), which saves where it is and exits cleanly."""
    workdir = str(tmp_path / "wd")
    ckpt_dir = checkpoints.checkpoint_dir(workdir)
    command = [
        sys.executable,
        *_train_cmd(
            workdir,
            "--config.train.num_steps=400",
            "--config.train.checkpoint_every=5",
            verbose=1,
        ),
    ]

    proc = subprocess.Popen(
        command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _signal_after_checkpoint(proc, ckpt_dir, 10, signal.SIGKILL)
    killed_at = checkpoints.checkpoint_step(tf.train.latest_checkpoint(ckpt_dir))
    assert 10 <= killed_at < 400

    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=out, stderr=err)
        code = _signal_after_checkpoint(proc, ckpt_dir, killed_at + 10, signal.SIGTERM)
    stderr = (tmp_path / "err.txt").read_text()
    assert code == 0, stderr[-3000:]
    resumed = re.search(r"resumed from \S+ckpt-(\d+)", stderr)
    assert resumed, stderr[-3000:]
    resumed_at = int(resumed.group(1))
    assert resumed_at >= killed_at  # the killed run may have saved once more
    assert "SIGTERM: saving a checkpoint and stopping" in stderr
    final = tf.train.latest_checkpoint(ckpt_dir)
    stopped_at = checkpoints.checkpoint_step(final)
    assert killed_at + 10 <= stopped_at < 400
    assert f"step {stopped_at}: saved" in stderr
    # The resumed run's bar counts its own steps (400 - resumed_at of them) and ends
    # where it stopped, not at its target.
    bar = re.findall(rf"(\d+)/{400 - resumed_at}\b", (tmp_path / "out.txt").read_text())
    assert bar and int(bar[-1]) == stopped_at - resumed_at, bar[-3:]
    # The last checkpoint restores into a fresh model, with the step counter.
    config = checkpoints.load_workdir_config(workdir)
    gan = DVDGAN.from_config_dict(config)
    checkpoints.make_checkpoint(gan).restore(final).assert_existing_objects_matched()
    assert int(gan.g_optimizer.iterations.numpy()) == stopped_at


def _train_in_process(tiny_config, workdir, **train_overrides):
    with tiny_config.unlocked():
        for k, v in train_overrides.items():
            setattr(tiny_config.train, k, v)
    return training.train(tiny_config, workdir, verbose=0)


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(
    tiny_config, tmp_path, monkeypatch
):
    workdir = str(tmp_path / "wd")
    good = _random_dataset(tiny_config)

    def poisoned(strategy, config, global_batch, split="train"):
        # Three good batches, then videos full of NaN.
        nan = good.map(lambda v, y: (v * np.float32("nan"), y))
        return good.take(3).concatenate(nan)

    monkeypatch.setattr(training.data, "distribute_dataset", poisoned)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 4") as err:
        _train_in_process(
            tiny_config, workdir, num_steps=8, checkpoint_every=2, ema_start=100
        )
    assert "d_loss" in str(err.value)
    latest = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(workdir))
    assert checkpoints.checkpoint_step(latest) == 2  # step 4 was never saved
    assert str(latest) in str(err.value) or "ckpt-2" in str(err.value)
    g, _, step = checkpoints.load_ema_generator(workdir)
    assert step == 2
    assert all(np.all(np.isfinite(np.asarray(w.value))) for w in g.weights)


# Its users on one pytest-xdist worker (--dist=loadgroup, pyproject.toml), so that
# it is trained once.
TRAINED_RUN_GROUP = pytest.mark.xdist_group("trained_run")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """(workdir, config) of a tiny run trained once in-process: 5 steps, checkpoints
    every 2 (kept: 2, 4 and 5, where it ended), EMA samples every 2. Read-only: the
    tests below copy it (`_copy_run`) instead of each training its own (a train
    step costs ~20 s to build on 2 cores, running it ~0.05 s)."""
    config = load_runlocal()
    with config.unlocked():
        config.train.num_steps = 5
        config.train.checkpoint_every = 2
        config.train.keep_checkpoints = 5
        config.train.sample_every = 2
    workdir = str(tmp_path_factory.mktemp("trained_run") / "wd")
    training.train(config, workdir, verbose=0)
    return workdir, config


def _copy_run(trained_run, tmp_path):
    """A private copy of the shared run's workdir and an unlocked copy of its config."""
    workdir, config = trained_run
    return copy_run(workdir, tmp_path), config.copy_and_resolve_references()


def _checkpoint_steps(workdir):
    state = tf.train.get_checkpoint_state(checkpoints.checkpoint_dir(workdir))
    return [checkpoints.checkpoint_step(p) for p in state.all_model_checkpoint_paths]


@TRAINED_RUN_GROUP
def test_learning_rates_follow_the_config_on_resume(trained_run, tmp_path):
    """Keras keeps a float rate in a variable that the checkpoint restores, so a run
    resumed with --config.train.g_lr=0 used to train G on at the old rate. Here G
    resumed at rate 0 does not move while D does."""
    workdir, again = _copy_run(trained_run, tmp_path)  # G and D at 4e-4, 5 steps
    again.train.g_lr = 0.0
    again.train.num_steps = 7
    ckpt_path = tf.train.latest_checkpoint(checkpoints.checkpoint_dir(workdir))
    saved = DVDGAN.from_config_dict(again)
    restored = checkpoints.make_checkpoint(saved).restore(ckpt_path)
    restored.assert_existing_objects_matched()
    assert float(saved.g_optimizer.learning_rate) == pytest.approx(
        trained_run[1].train.g_lr
    )  # the trap
    resumed = training.train(again, workdir, verbose=0)
    assert int(resumed.g_optimizer.iterations) == 7
    assert float(resumed.g_optimizer.learning_rate) == 0.0
    for before, after in zip(
        _snapshot(saved.generator), _snapshot(resumed.generator), strict=True
    ):
        np.testing.assert_array_equal(before, after)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(
            _snapshot(saved.spatial_discriminator),
            _snapshot(resumed.spatial_discriminator),
            strict=True,
        )
    ]
    assert any(moved)


@TRAINED_RUN_GROUP
def test_train_writes_workdir_layout(trained_run, tmp_path):
    workdir, config = _copy_run(trained_run, tmp_path)
    assert checkpoints.load_class_names(workdir)[0] == "square_left"
    assert sorted(os.listdir(os.path.join(workdir, "samples")))[0].startswith("step_")
    assert os.listdir(os.path.join(workdir, "tb"))
    assert _checkpoint_steps(workdir) == [2, 4, 5]  # every 2, and where the run ended
    saved = checkpoints.load_workdir_config(workdir)
    assert checkpoints.resume_differences(saved, config) == []
    # The run's training clock is saved with each checkpoint and continues on resume.
    with open(checkpoints.run_time_path(workdir)) as f:
        first = json.load(f)
    assert first["step"] == 5 and first["run_seconds"] > 0
    assert checkpoints.load_run_seconds(workdir) == first["run_seconds"]
    config.train.num_steps = 6
    training.train(config, workdir, verbose=0)
    assert checkpoints.load_run_seconds(workdir) > first["run_seconds"]
    with open(checkpoints.run_time_path(workdir)) as f:
        assert json.load(f)["step"] == 6
    assert _checkpoint_steps(workdir) == [2, 4, 5, 6]


@TRAINED_RUN_GROUP
def test_resume_with_a_different_architecture_is_refused(trained_run, tmp_path):
    workdir, config = _copy_run(trained_run, tmp_path)
    config.model.g_ch = trained_run[1].model.g_ch * 2
    with pytest.raises(ValueError, match=r"model\.g_ch: saved 4 vs now 8"):
        training.train(config, workdir, verbose=0)
    # The refused run touched nothing: the checkpoints and config are intact.
    assert checkpoints.load_workdir_config(workdir).model.g_ch == 4
    assert _checkpoint_steps(workdir) == [2, 4, 5]


@TRAINED_RUN_GROUP
def test_resume_that_would_delete_checkpoints_is_refused(trained_run, tmp_path):
    workdir, again = _copy_run(trained_run, tmp_path)  # saved with keep_checkpoints=5
    ckpt_dir = checkpoints.checkpoint_dir(workdir)
    before = sorted(os.listdir(ckpt_dir))
    # The same run resumed with keep_checkpoints=2 (say, its override left off the
    # command line) would delete ckpt-2 at its first save: refused, naming the value
    # and the fix.
    again.train.keep_checkpoints = 2
    again.train.num_steps = 7
    with pytest.raises(
        ValueError,
        match=r"keep_checkpoints=2 would delete 1 of the run's 3 checkpoints "
        r"\(ckpt-2\); pass --config.train.keep_checkpoints=3",
    ):
        training.train(again, workdir, verbose=0)
    assert sorted(os.listdir(ckpt_dir)) == before
    assert checkpoints.load_workdir_config(workdir).train.keep_checkpoints == 5
    # Other changed settings are allowed and listed.
    again.train.keep_checkpoints = 3
    saved = checkpoints.load_workdir_config(workdir)
    assert checkpoints.resume_differences(saved, again) == [
        "train.keep_checkpoints: saved 5 vs now 3",
        "train.num_steps: saved 5 vs now 7",
    ]


@TRAINED_RUN_GROUP
def test_resume_after_a_kill_inside_a_save_is_not_refused(trained_run, tmp_path):
    # CheckpointManager records a new checkpoint before it deletes the oldest and
    # records again, so a run killed in between lists keep_checkpoints + 1. The
    # same command must resume (and finish that deletion); a smaller keep still
    # refuses, counting only the checkpoints the run meant to keep.
    workdir, config = _copy_run(trained_run, tmp_path)
    ckpt_dir = checkpoints.checkpoint_dir(workdir)
    # The workdir as a run with keep_checkpoints=2 leaves it when killed inside its
    # save of ckpt-5: ckpt-2, 4, 5 listed (keep + 1), ckpt-2's files already deleted.
    config.train.keep_checkpoints = 2
    checkpoints.write_workdir_config(workdir, config)
    for name in os.listdir(ckpt_dir):
        if name.startswith("ckpt-2."):
            os.remove(os.path.join(ckpt_dir, name))
    assert _checkpoint_steps(workdir) == [2, 4, 5]
    smaller = config.copy_and_resolve_references()
    smaller.train.keep_checkpoints = 1
    with pytest.raises(
        ValueError,
        match=r"keep_checkpoints=1 would delete 1 of the run's 2 checkpoints "
        r"\(ckpt-4\); pass --config.train.keep_checkpoints=2",
    ):
        training.train(smaller, workdir, verbose=0)
    config.train.num_steps = 6  # the same command, resumed (ckpt-6: the run's end)
    training.train(config, workdir, verbose=0)
    assert _checkpoint_steps(workdir) == [5, 6]


def test_train_help_lists_every_flag():
    out = _run(["-m", "dvdgan_tf.train", "--help"], timeout=120)
    text = out.stdout + out.stderr
    for flag in ("--config", "--workdir", "--strategy", "--tpu", "--verbose"):
        assert flag in text, flag
    for strategy in runtime.STRATEGIES:
        assert strategy in text


def test_train_cli_config_override_and_bad_value(tmp_path):
    out = _run(
        _train_cmd(str(tmp_path / "wd"), "--config.train.d_steps=0"), timeout=120
    )
    assert out.returncode != 0
    assert "d_steps" in out.stderr


def test_mixed_bfloat16_trains_with_float32_weights_and_output(tiny_config):
    with tiny_config.unlocked():
        tiny_config.runtime.mixed_precision = "bfloat16"
    try:
        gan = _build(tiny_config)  # sets the precision before any layer is built
        assert gan.generator.compute_dtype == "bfloat16"
        history = gan.fit(
            _random_dataset(tiny_config),
            steps_per_epoch=2,
            epochs=1,
            verbose=0,
            shuffle=False,
        )
        assert all(np.all(np.isfinite(v)) for v in history.history.values())
        assert gan.generator.embed.kernel.dtype == "float32"  # variables stay float32
        z = tf.zeros([1, tiny_config.model.z_dim])
        assert gan(z, tf.constant([0])).dtype == tf.float32  # the video is float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="'float8'"):
        runtime.set_precision("float8")
