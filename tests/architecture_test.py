"""Generator and discriminators: shapes, ranges, conditioning, D_S sampling, D_T
layout, eager == tf.function == XLA, serialisation, parameter counts, bad args."""

import gc
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CONFIGS

from dvdgan_tf import config_lib, layers, summary
from dvdgan_tf.discriminators import SpatialDiscriminator, TemporalDiscriminator
from dvdgan_tf.generator import GBlock, Generator, upsample2x


def _models(m):
    return (
        Generator.from_model_config(m),
        SpatialDiscriminator.from_model_config(m),
        TemporalDiscriminator.from_model_config(m),
    )


@pytest.mark.parametrize("spec", [c + ":runlocal" for c in CONFIGS])
def test_generator_shape_and_range_per_config(spec):
    m = config_lib.load_config(spec).model
    g, ds, dt = _models(m)
    z = tf.random.normal([2, m.z_dim], seed=1)
    y = tf.constant([0, m.num_classes - 1])
    c, r = m.conditioning_frames, m.resolution
    frames = tf.random.uniform([2, c, r, r, 3], -1, 1, seed=2) if c else None
    video = g(z, y, training=True, frames=frames)
    assert video.shape == (2, m.num_frames, m.resolution, m.resolution, 3)
    assert video.dtype == tf.float32
    assert float(tf.reduce_min(video)) >= -1.0 and float(tf.reduce_max(video)) <= 1.0
    if c:  # DVD-GAN-FP: the discriminators judge conditioning + predicted frames
        video = tf.concat([frames, video], axis=1)
    assert ds(video, y, training=True).shape == (2,)
    assert dt(video, y, training=True).shape == (2,)


@pytest.fixture
def models(tiny_config):
    return tiny_config.model, *_models(tiny_config.model)


def test_generator_depends_on_z_and_y_and_frames_differ(models):
    m, g, _, _ = models
    z = tf.random.normal([2, m.z_dim], seed=2)
    y = tf.constant([1, 1])
    base = g(z, y).numpy()
    other_z = g(z + 1.0, y).numpy()
    other_y = g(z, tf.constant([2, 3])).numpy()
    assert np.abs(base - other_z).mean() > 1e-3
    assert np.abs(base - other_y).mean() > 1e-3
    # The GRU carries state, so frames differ although the input is the same each frame.
    assert np.abs(base[:, 0] - base[:, -1]).mean() > 1e-4


def test_generator_initial_state_changes_video(models):
    m, g, _, _ = models
    z = tf.random.normal([2, m.z_dim], seed=3)
    y = tf.constant([0, 1])
    h0 = tf.random.normal([2, *g.state_shape], seed=4)
    assert np.abs(g(z, y).numpy() - g(z, y, initial_state=h0).numpy()).mean() > 1e-4
    # A list sets the GRUs' states in order; None (or a short list) means zeros.
    np.testing.assert_allclose(
        g(z, y, initial_state=[h0]).numpy(), g(z, y, initial_state=h0).numpy()
    )
    h1 = tf.random.normal([2, *g.state_shapes[1]], seed=5)
    assert (
        np.abs(g(z, y).numpy() - g(z, y, initial_state=[None, h1]).numpy()).mean()
        > 1e-4
    )
    with pytest.raises(ValueError, match=f"{len(g.grus) + 1} states for"):
        g(z, y, initial_state=[None] * (len(g.grus) + 1))


def test_upsample2x_is_nearest_neighbour_and_its_gradient_sums_the_copies():
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(2, 3, 4, 5)), tf.float32)
    cot = rng.normal(size=(2, 6, 8, 5)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = upsample2x(x)
        loss = tf.reduce_sum(y * cot)
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x.numpy(), 2, 1), 2, 2))
    blocks = cot.reshape(2, 3, 2, 4, 2, 5).sum((2, 4))  # each pixel's 2x2 copies
    np.testing.assert_allclose(tape.gradient(loss, x), blocks, atol=1e-5)


def test_gblock_shortcut_conv_before_upsampling_equals_after():
    """The block's 1x1 shortcut runs before the upsampling: the same as after it."""
    rng = np.random.default_rng(8)
    x = tf.constant(rng.normal(size=(4, 4, 4, 6)), tf.float32)
    cond = tf.constant(rng.normal(size=(2, 10)), tf.float32)
    block = GBlock(3, upsample=True)
    block(x, cond)
    block.conv_sc.bias.assign(rng.normal(size=(3,)).astype("float32"))
    after = block.conv_sc(upsample2x(x))  # [4, 8, 8, 3]
    np.testing.assert_allclose(block._up(block.conv_sc(x)), after, atol=1e-5)


def test_spatial_discriminator_uses_only_sampled_frames(models):
    m, _, ds, _ = models
    b, t, r = 3, m.num_frames, m.resolution
    video = tf.random.uniform([b, t, r, r, 3], -1, 1, seed=5)
    y = tf.constant([0, 1, 2])
    idx = ds.sample_frame_indices(b, seed=12).numpy()
    assert idx.shape == (b, m.k)
    assert all(len(set(row)) == m.k for row in idx)  # without replacement
    np.testing.assert_array_equal(idx, ds.sample_frame_indices(b, seed=12).numpy())
    score = ds(video, y, frame_indices=idx).numpy()
    outside = np.ones([b, t], bool)
    outside[np.arange(b)[:, None], idx] = False
    perturbed = np.where(outside[..., None, None, None], 5.0, video.numpy())
    np.testing.assert_allclose(
        ds(perturbed, y, frame_indices=idx).numpy(), score, rtol=1e-5
    )
    inside = np.where(~outside[..., None, None, None], -video.numpy(), video.numpy())
    assert not np.allclose(ds(inside, y, frame_indices=idx).numpy(), score)


def test_frame_sampling_is_uniform():
    ds = SpatialDiscriminator(3, 2, (1, 1), num_frames=6, k=2)
    idx = ds.sample_frame_indices(6000, seed=34).numpy()
    counts = np.bincount(idx.ravel(), minlength=6) / idx.size
    np.testing.assert_allclose(counts, 1 / 6, atol=0.01)


def test_temporal_discriminator_layout_and_projection(models):
    m, _, ds, dt = models
    kinds = [type(b.conv1).__name__ for b in dt.blocks]
    assert kinds[:2] == ["SNConv3D", "SNConv3D"] and set(kinds[2:]) <= {"SNConv2D"}
    assert tuple(dt.blocks[0].conv1.kernel.shape[:3]) == (3, 3, 3)
    video = tf.random.uniform(
        [2, m.num_frames, m.resolution, m.resolution, 3], -1, 1, seed=6
    )
    idx = ds.sample_frame_indices(2, seed=56)
    for d, kw in ((dt, {}), (ds, {"frame_indices": idx})):
        # Projection: the score depends on the label.
        a = d(video, tf.constant([0, 0]), **kw).numpy()
        b = d(video, tf.constant([1, 2]), **kw).numpy()
        assert a.shape == (2,) and not np.allclose(a, b)


def test_temporal_discriminator_sees_time_order(models):
    m, _, _, dt = models
    video = tf.random.uniform(
        [1, m.num_frames, m.resolution, m.resolution, 3], -1, 1, seed=7
    )
    y = tf.constant([0])
    assert not np.allclose(dt(video, y).numpy(), dt(video[:, ::-1], y).numpy())


def test_eager_tf_function_and_xla_agree(models):
    m, g, ds, dt = models
    z = tf.random.normal([2, m.z_dim], seed=8)
    y = tf.constant([0, 1])
    idx = ds.sample_frame_indices(2, seed=78)

    def run(z, y, idx):
        video = g(z, y, training=False)
        return video, ds(video, y, frame_indices=idx), dt(video, y)

    eager = run(z, y, idx)
    graph = tf.function(run)(z, y, idx)
    xla = tf.function(run, jit_compile=True)(z, y, idx)
    for e, gr, x in zip(eager, graph, xla):
        np.testing.assert_allclose(gr.numpy(), e.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(x.numpy(), e.numpy(), rtol=1e-3, atol=1e-3)


def _copy_weights(src, dst):
    for a, b in zip(src.weights, dst.weights):
        b.assign(a.value)


def test_from_config_round_trip_gives_identical_outputs(models):
    m, g, ds, dt = models
    z = tf.random.normal([2, m.z_dim], seed=9)
    y = tf.constant([1, 0])
    video = g(z, y)
    idx = ds.sample_frame_indices(2, seed=99)
    for model, args, kw in (
        (g, (z, y), {}),
        (ds, (video, y), {"frame_indices": idx}),
        (dt, (video, y), {}),
    ):
        clone = type(model).from_config(model.get_config())
        clone.build(*[a.shape for a in args])
        assert [w.path.split("/", 1)[1] for w in clone.weights] == [
            w.path.split("/", 1)[1] for w in model.weights
        ]
        _copy_weights(model, clone)
        np.testing.assert_array_equal(
            clone(*args, **kw).numpy(), model(*args, **kw).numpy()
        )


def test_checkpoint_save_restore_gives_identical_outputs(models, tmp_path):
    m, g, _, _ = models
    z = tf.random.normal([2, m.z_dim], seed=10)
    y = tf.constant([2, 3])
    g(z, y, training=True)  # move BN statistics and SN state away from init
    before = g(z, y).numpy()
    path = tf.train.Checkpoint(generator=g).write(os.path.join(tmp_path, "ckpt"))
    fresh = Generator.from_model_config(m)
    assert not np.allclose(fresh(z, y).numpy(), before)
    tf.train.Checkpoint(generator=fresh).read(path).assert_consumed()
    np.testing.assert_array_equal(fresh(z, y).numpy(), before)


def test_keras_weights_file_round_trip(models, tmp_path):
    m, g, _, _ = models
    z = tf.random.normal([1, m.z_dim], seed=11)
    y = tf.constant([0])
    path = os.path.join(tmp_path, "g.weights.h5")
    g.save_weights(path)
    fresh = Generator.from_model_config(m)
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh(z, y).numpy(), g(z, y).numpy())


# Trainable parameters per shipped config; `python -m dvdgan_tf.summary` prints them.
# (Check: D_S at 128x128 with ch=96 is 87.4M, BigGAN's D at 128 is 88.0M with 1000 classes.)
# DVD-GAN-FP configs: G includes its frame encoder (D_S's stack + a 1x1 conv).
# synthetic_actions_fp_cpu seeds all 3 GRUs (encoder_states="all"): two more 1x1
# convs on 4 frames x 64 channels, to 64 (8x8) and 32 (16x16) channels:
# (256 * 64 + 64) + (256 * 32 + 32) = 24,672 more than with the first state only.
EXPECTED_PARAMS = {
    "bair_fp_64x16.py": (519_877_659, 43_965_985, 17_584_513),
    "kinetics600_128x12.py": (476_869_635, 87_356_449, 46_052_449),
    "kinetics600_128x48.py": (476_869_635, 87_356_449, 46_052_449),
    "kinetics600_256x12.py": (532_030_467, 98_565_409, 88_522_849),
    "kinetics600_64x12.py": (473_625_795, 44_886_049, 17_814_529),
    "kinetics600_64x48.py": (473_625_795, 44_886_049, 17_814_529),
    "kinetics600_fp_64x16.py": (529_386_723, 44_886_049, 17_814_529),
    "synthetic_actions_cpu.py": (1_313_667, 269_697, 416_321),
    "synthetic_actions_fp_cpu.py": (1_623_651, 269_697, 416_321),
    "ucf101_128x16.py": (476_809_755, 86_589_985, 45_285_985),
}


@pytest.mark.parametrize("spec", CONFIGS, ids=os.path.basename)
def test_parameter_counts(spec):
    counts = summary.parameter_counts(spec)
    assert (counts["G"], counts["D_S"], counts["D_T"]) == EXPECTED_PARAMS[
        os.path.basename(spec)
    ]


def test_every_config_has_an_expected_count():
    assert sorted(EXPECTED_PARAMS) == sorted(os.path.basename(c) for c in CONFIGS)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Generator(48, 4, 3, 2, ((1, 1),) * 3), "resolution=48"),
        (lambda: Generator(16, 4, 0, 2, ((1, 1),) * 2), "num_classes=0"),
        (lambda: Generator(16, 4, 3, 2, ((1, 1),)), "multipliers"),
        (
            lambda: SpatialDiscriminator(3, 2, (1, 1), num_frames=4, k=5),
            "k=5, num_frames=4",
        ),
        (lambda: TemporalDiscriminator(0, 2, (1, 1)), "num_classes=0"),
    ],
)
def test_bad_arguments_quote_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_config_values_quote_value(tiny_config):
    c = config_lib.load_config(CONFIGS[0])
    with pytest.raises(AttributeError, match="num_frame"):
        c.model.num_frame = 3  # typo on a locked config
    for field, value, match in (
        ("resolution", 48, "resolution=48"),
        ("k", 99, "k=99"),
        ("num_classes", 0, "0"),
    ):
        bad = config_lib.base_config()
        setattr(bad.model, field, value)
        with pytest.raises(ValueError, match=match):
            config_lib.finalize(bad)


def test_out_of_range_label_in_eager_mode(models):
    m, g, ds, dt = models
    z = tf.zeros([2, m.z_dim])
    with pytest.raises(
        ValueError, match=rf"\[0, {m.num_classes}\).*\[{m.num_classes}\]"
    ):
        g(z, tf.constant([0, m.num_classes]))
    video = tf.zeros([1, m.num_frames, m.resolution, m.resolution, 3])
    with pytest.raises(ValueError, match=r"\[-1\]"):
        dt(video, tf.constant([-1]))


def test_kernel_initializer_context_restores_orthogonal():
    with layers.kernel_initializer("zeros"):
        d = layers.SNDense(4)
        d.build((None, 4))
    assert np.all(d.kernel.numpy() == 0)
    d2 = layers.SNDense(4)
    d2.build((None, 4))
    k = d2.kernel.numpy()
    np.testing.assert_allclose(k.T @ k, np.eye(4), atol=1e-5)  # orthogonal


def test_keras_saving_registration_not_needed_for_weights():
    # Generators are plain Keras models: summary works and names are stable.
    g = Generator(16, 2, 3, 2, ((1, 1), (1, 1)))
    g.build()
    names = [layer.name for layer in g.layers]
    assert names[:2] == ["G_embed", "G_linear"]
    assert ["G_GRU1", "G_B1", "G_B2", "G_GRU2", "G_B3", "G_B4"] == [
        n for n in names if n.startswith(("G_GRU", "G_B"))
    ]
    assert isinstance(g, keras.Model)


def test_unknown_config_variant_is_refused():
    with pytest.raises(ValueError, match="'tiny'"):
        config_lib.load_config(CONFIGS[0] + ":tiny")
    with pytest.raises(FileNotFoundError, match="nope.py"):
        config_lib.load_config("configs/nope.py")


def test_parameter_counts_frees_the_models():
    """Counting must not keep the (reference-cyclic) networks alive: at paper size
    each config's hold ~2 GiB. The collector is off, so only an explicit release
    frees them."""

    def live():
        return sum(isinstance(o, Generator) for o in gc.get_objects())

    gc.collect()
    before = live()
    gc.disable()
    try:
        summary.parameter_counts(CONFIGS[0] + ":runlocal")
        after = live()
    finally:
        gc.enable()
    assert after == before
