"""DVD-GAN-FP (future prediction): the frame encoder, the conditioned generator, the
train step on C + T frame clips, the configs and pipeline, and the train CLI."""

import json
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, load_runlocal

from dvdgan_tf import checkpoints, config_lib, data, losses, training
from dvdgan_tf.discriminators import SpatialDiscriminator
from dvdgan_tf.encoder import FrameEncoder, encoder_num_blocks
from dvdgan_tf.generator import Generator
from dvdgan_tf.model import DVDGAN

FP_TINY = os.path.join(REPO, "configs/synthetic_actions_fp_cpu.py:runlocal")


@pytest.fixture
def fp_config():
    """The built-in FP config's runlocal variant: 16x16, 2 frames in, 4 predicted."""
    return config_lib.load_config(FP_TINY)


@pytest.fixture
def fp_generator(fp_config):
    return Generator.from_model_config(fp_config.model)


def _inputs(m, b=2, seed=0):
    """z [B, z_dim], labels [B], conditioning frames [B, C, R, R, 3] in [-1, 1]."""
    z = tf.random.normal([b, m.z_dim], seed=seed)
    y = tf.constant(np.arange(b) % m.num_classes, tf.int32)
    r = m.resolution
    frames = tf.random.uniform(
        [b, m.conditioning_frames, r, r, 3], -1.0, 1.0, seed=seed + 1
    )
    return z, y, frames


def test_config_clip_frames_and_validation(fp_config):
    m = fp_config.model
    assert (m.conditioning_frames, m.num_frames) == (2, 4)
    assert config_lib.clip_frames(fp_config) == config_lib.clip_frames(m) == 6
    full = config_lib.load_config(FP_TINY.split(":")[0])
    assert (full.model.conditioning_frames, full.model.num_frames) == (4, 8)
    assert config_lib.clip_frames(full) == 12
    for name, c, t in (("bair_fp_64x16", 1, 15), ("kinetics600_fp_64x16", 5, 11)):
        m = config_lib.load_config(os.path.join(REPO, f"configs/{name}.py")).model
        assert (m.resolution, m.conditioning_frames, m.num_frames) == (64, c, t)
    for overrides, match in (
        ({"conditioning_frames": -1}, "conditioning_frames=-1"),
        ({"conditioning_frames": 1, "fake_labels": "uniform"}, "'uniform'"),
    ):
        bad = config_lib.base_config()
        for key, value in overrides.items():
            section = bad.model if key == "conditioning_frames" else bad.train
            setattr(section, key, value)
        with pytest.raises(ValueError, match=match):
            config_lib.finalize(bad)


def test_pipeline_yields_conditioning_plus_predicted_frames(fp_config):
    video, label = next(iter(data.build_dataset(fp_config, "train", 2)))
    assert video.shape == (2, 6, 16, 16, 3)  # C + T frames
    assert label.shape == (2,)


def test_encoder_is_ds_architecture_and_outputs_the_gru_state(fp_config):
    m = fp_config.model
    m.encoder_states = "first"  # the paper's text (the built-in config uses "all")
    g = Generator.from_model_config(m)
    enc = g.frame_encoder
    assert isinstance(enc, FrameEncoder)
    ds = SpatialDiscriminator.from_model_config(m)
    assert ds.num_frames == 6  # D_S judges C + T frames
    # Same residual stack as D_S (D_S ends at 4x4), its own weights.
    assert [b.name for b in enc.blocks] == ["FE_B1", "FE_B2", "FE_B3"]
    assert [tuple(w.shape) for b in enc.blocks for w in b.trainable_weights] == [
        tuple(w.shape) for b in ds.blocks for w in b.trainable_weights
    ]
    z, y, frames = _inputs(m, b=3)
    [state] = enc(frames)  # encoder_states="first": the first GRU's state only
    assert state.shape == (3, *g.state_shape)  # [B, 4, 4, ch0]
    assert g(z, y, frames=frames).shape == (3, m.num_frames, 16, 16, 3)
    # Where D_S's stack would end below 4x4 only the blocks down to 4x4 are kept.
    assert encoder_num_blocks(16, (1, 2, 2)) == 3
    assert encoder_num_blocks(16, (1, 2, 2, 4)) == 2
    with pytest.raises(ValueError, match=r"multipliers=\(1, 2\)"):
        encoder_num_blocks(16, (1, 2))


def test_encoder_states_all_gives_every_gru_its_state(fp_config):
    m = fp_config.model
    assert m.encoder_states == "all"  # configs/synthetic_actions_fp_cpu.py
    g = Generator.from_model_config(m)
    assert g.get_config()["encoder_states"] == "all"
    z, y, frames = _inputs(m, b=3)
    states = g.frame_encoder(frames)
    # runlocal is 16x16: GRUs at 4x4 (ch0) and 8x8, taken from the 4x4 output of
    # the last block and the 8x8 output of the first.
    assert [tuple(s.shape) for s in states] == [(3, *shape) for shape in g.state_shapes]
    assert [s[0] for s in g.state_shapes] == [4, 8]
    assert g.frame_encoder.taps == [2, 0]
    # The 8x8 state reaches the video: negating its reduction (same spectral norm)
    # changes the prediction.
    full = g(z, y, frames=frames).numpy()
    kernel = g.frame_encoder.reduce2.kernel
    kernel.assign(-kernel)
    assert np.abs(full - g(z, y, frames=frames).numpy()).mean() > 1e-4
    _assert_refused(m, "encoder_states", "some")


def test_reflect_padded_encoder_gives_flat_frames_flat_states(fp_config):
    """encoder_padding="reflect": a shapeless frame (one shade) encodes to spatially
    constant states at every size; with D_S's zero padding the states have a
    border pattern (encoder.py)."""
    m = fp_config.model
    shade = -0.6  # a dark-grey background, as in the built-in dataset
    frames = tf.fill([2, m.conditioning_frames, m.resolution, m.resolution, 3], shade)
    spreads = {}
    for padding in ("zeros", "reflect"):
        g = Generator.from_model_config(_with(m, encoder_padding=padding))
        assert g.frame_encoder.padding == padding
        assert all(b.conv1.padding == padding for b in g.frame_encoder.blocks)
        states = g.frame_encoder(frames)
        spreads[padding] = [
            float(tf.reduce_max(tf.math.reduce_std(s, axis=[1, 2]))) for s in states
        ]  # the largest spatial std over examples and channels, per state
    assert max(spreads["reflect"]) < 1e-5, spreads
    assert min(spreads["zeros"]) > 1e-2, spreads
    _assert_refused(m, "encoder_padding", "same")


def _assert_refused(m, field, value):
    """G and config validation both refuse model.<field> = value, quoting it."""
    with pytest.raises(ValueError, match=f"{field}={value!r}"):
        Generator.from_model_config(_with(m, **{field: value}))
    bad = config_lib.load_config(FP_TINY)
    bad.model[field] = value
    with pytest.raises(ValueError, match=f"model.{field}={value!r}"):
        config_lib.finalize(bad)


def _with(m, **overrides):
    m = ml_collections.ConfigDict(m.to_dict())
    m.update(overrides)
    return m


def test_different_conditioning_clips_give_different_predictions(
    fp_config, fp_generator
):
    z, y, frames = _inputs(fp_config.model)
    a = fp_generator(z, y, frames=frames).numpy()
    b = fp_generator(z, y, frames=-frames).numpy()
    assert np.abs(a - b).mean() > 1e-4
    np.testing.assert_array_equal(a, fp_generator(z, y, frames=frames).numpy())


@pytest.mark.parametrize("encoder_states, reductions", [("first", 1), ("all", 2)])
def test_g_loss_gradients_reach_every_encoder_weight(
    fp_config, encoder_states, reductions
):
    fp_config.model.encoder_states = encoder_states
    gan = DVDGAN(fp_config.model)
    g = gan.generator
    weights = g.frame_encoder.trainable_weights
    z, y, frames = _inputs(fp_config.model)

    @tf.function  # as in train_step (Conv3D's gradient needs a graph)
    def encoder_grads(z, y, frames):
        with tf.GradientTape() as tape:
            fake = tf.concat([frames, g(z, y, training=True, frames=frames)], axis=1)
            loss = losses.generator_loss(
                gan.spatial_discriminator(fake, y, training=True),
                gan.temporal_discriminator(fake, y, training=True),
            )["g_loss"]
        return tape.gradient(loss, weights)

    grads = encoder_grads(z, y, frames)
    # Kernel and bias of: 2 convs in each of 3 blocks, the 1x1 shortcuts of the two
    # downsampling blocks, the 1x1 reduction(s): one per state.
    assert len(weights) == 2 * (3 * 2 + 2 + reductions)
    for w, grad in zip(weights, grads):
        assert grad is not None, w.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0.0, w.path


@pytest.mark.slow
def test_fp_generator_eager_equals_xla(fp_config, fp_generator):
    z, y, frames = _inputs(fp_config.model)

    def run(z, y, frames):
        return fp_generator(z, y, training=False, frames=frames)

    eager = run(z, y, frames).numpy()
    xla = tf.function(run, jit_compile=True)(z, y, frames).numpy()
    np.testing.assert_allclose(xla, eager, rtol=1e-3, atol=1e-3)


def test_frames_errors_name_expected_and_received_shapes(fp_config, fp_generator):
    m, g = fp_config.model, fp_generator
    z, y, frames = _inputs(m)
    with pytest.raises(ValueError, match=r"\[B, 2, 16, 16, 3\].*received None"):
        g(z, y)
    with pytest.raises(
        ValueError, match=r"\[B, 2, 16, 16, 3\].*received shape \(2, 3, 16, 16, 3\)"
    ):
        g(z, y, frames=tf.zeros([2, 3, 16, 16, 3]))
    with pytest.raises(ValueError, match=r"received shape \(2, 16, 16, 3\)"):
        g(z, y, frames=tf.zeros([2, 16, 16, 3]))
    with pytest.raises(ValueError, match="not both"):
        g(z, y, frames=frames, initial_state=tf.zeros([2, *g.state_shape]))
    plain = load_runlocal()
    g0 = Generator.from_model_config(plain.model)
    assert g0.frame_encoder is None
    with pytest.raises(
        ValueError, match=r"conditioning_frames=0.*received frames of shape"
    ):
        g0(z, y, frames=frames)


def _snapshot(weights):
    return [np.asarray(w.value).copy() for w in weights]


def _all_changed(weights, before):
    return all(not np.allclose(np.asarray(w.value), b) for w, b in zip(weights, before))


def test_tiny_fp_fit_updates_encoder_and_both_discriminators(fp_config):
    m, t = fp_config.model, fp_config.train
    gan = training.build_gan(fp_config, tf.distribute.get_strategy())
    enc, ema_enc = gan.generator.frame_encoder, gan.ema_generator.frame_encoder
    nets = (enc, gan.spatial_discriminator, gan.temporal_discriminator)
    before = [_snapshot(n.trainable_weights) for n in nets]
    n = 2 * t.batch_size * t.d_steps
    rng = np.random.default_rng(0)
    clips = rng.uniform(-1, 1, (n, config_lib.clip_frames(m), 16, 16, 3))
    labels = rng.integers(0, m.num_classes, n).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((clips.astype("float32"), labels))
    history = gan.fit(
        ds.batch(n // 2), epochs=1, steps_per_epoch=2, verbose=0, shuffle=False
    )
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    for net, b in zip(nets, before):
        # A D head's bias gets an exactly zero gradient whenever as many real as
        # fake hinge terms are active (their -1 and +1 cancel): not a missed update.
        kept = [
            (w, v)
            for w, v in zip(net.trainable_weights, b)
            if not w.path.endswith("head/linear/bias")
        ]
        assert _all_changed(*map(list, zip(*kept))), net.name
    # The EMA generator carries its own copy of the encoder (a plain copy here:
    # ema_start is not reached).
    for e, w in zip(ema_enc.trainable_weights, enc.trainable_weights):
        np.testing.assert_array_equal(np.asarray(e.value), np.asarray(w.value))
    with pytest.raises(ValueError, match="fake_labels must be 'real'"):
        gan.compile(gan.g_optimizer, gan.d_optimizer, fake_labels="uniform")


def test_output_skip_adds_the_last_frame_in_tanhs_argument(fp_config):
    """output_skip="last_frame": with the same weights, G's prediction is
    tanh(atanh(G's "none" output) + atanh(last conditioning frame)), in numpy."""
    m = fp_config.model
    assert m.output_skip == "last_frame"  # configs/synthetic_actions_fp_cpu.py
    skip = Generator.from_model_config(m)
    plain = Generator.from_model_config(_with(m, output_skip="none"))
    plain.set_weights(skip.get_weights())
    z, y, frames = _inputs(m, b=3)
    frames = tf.tensor_scatter_nd_update(  # pure black and white pixels too
        frames, [[0, m.conditioning_frames - 1, 0, 0]], [[-1.0, 1.0, -1.0]]
    )
    got = skip(z, y, frames=frames).numpy()  # [B, T, R, R, 3]
    out = plain(z, y, frames=frames).numpy().astype(np.float64)
    bound = 1 - 1 / 255
    last = np.clip(frames.numpy()[:, -1].astype(np.float64), -bound, bound)
    want = np.tanh(np.arctanh(out) + np.arctanh(last)[:, None])
    # atanh of G's float32 output near +-1 amplifies its rounding: 1e-4, not 1e-6.
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.abs(got - out).mean() > 0.1  # the skip changes the prediction
    assert skip.get_config()["output_skip"] == "last_frame"
    # A zero argument reproduces the last frame to within half a uint8 level.
    assert (
        np.abs(np.tanh(np.arctanh(last)) - frames.numpy()[:, -1]).max() < 1 / 255 + 1e-6
    )
    _assert_refused(m, "output_skip", "first_frame")
    gen = _with(m, conditioning_frames=0)
    with pytest.raises(ValueError, match="needs conditioning_frames > 0"):
        Generator.from_model_config(gen)
    bad = config_lib.load_config(FP_TINY)
    bad.model.conditioning_frames = 0
    with pytest.raises(ValueError, match="output_skip='last_frame'"):
        config_lib.finalize(bad)


def test_legacy_workdir_config_field_is_renamed(fp_config, tmp_path):
    fp_config.model.encoder_states = "first"  # what the runs before these fields had
    fp_config.model.encoder_padding = "zeros"
    fp_config.model.output_skip = "none"
    saved = json.loads(fp_config.to_json())
    saved["model"]["conditional_frames"] = saved["model"].pop("conditioning_frames")
    del saved["model"]["encoder_states"]  # added later; older runs had "first"
    del saved["model"]["encoder_padding"]  # added later; older runs had "zeros"
    del saved["model"]["output_skip"]  # added later; older runs had "none"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = checkpoints.load_workdir_config(str(tmp_path))
    assert loaded.model.conditioning_frames == 2
    assert loaded.model.encoder_states == "first"
    assert loaded.model.encoder_padding == "zeros"
    assert loaded.model.output_skip == "none"
    assert "conditional_frames" not in loaded.model
    checkpoints.check_resume_compatible(loaded, fp_config)
