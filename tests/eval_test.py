"""Tests of dvdgan_tf.eval: Fréchet distance, classifier score, embedders, built-in metric.

The metric math is checked against numpy/scipy references; the pretrained
embedders (I3D, InceptionV3, C3D) against small stand-ins with the same call
signatures (nothing downloads); the built-in classifier is trained once per module
at 8 x 32 x 32 on a reduced set (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from dvdgan_tf.data import synthetic
from dvdgan_tf.eval import classifier, embedders, frechet, inception_score

# ------------------------------------------------------------------ Fréchet


def _reference_frechet(a, b):
    """The usual scipy formula (pytorch-fid / TF-GAN), independent of ours."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * covmean))


def test_frechet_identical_sets_is_zero():
    acts = np.random.default_rng(0).normal(size=(500, 32))
    assert frechet.frechet_distance(acts, acts) == pytest.approx(0.0, abs=1e-8)


def test_frechet_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    s1, s2 = rng.uniform(0.1, 3.0, 8), rng.uniform(0.1, 3.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2.0 * np.sqrt(s1 * s2))
    got = frechet.frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_full_covariance_closed_form_commuting():
    # S2 = Q diag(b) Q^T, S1 = Q diag(a) Q^T commute: sqrt(S1 S2) = Q sqrt(ab) Q^T.
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.2, 2.0, 6), rng.uniform(0.2, 2.0, 6)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    mu = rng.normal(size=6)
    expected = 4.0 + np.sum(a + b - 2.0 * np.sqrt(a * b))
    got = frechet.frechet_distance_from_stats(mu, s1, mu + 2.0 / np.sqrt(6), s2)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_scipy_reference_and_is_symmetric():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 24))
    b = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24)) * 0.3 + 0.5
    d_ab = frechet.frechet_distance(a, b)
    assert d_ab == pytest.approx(_reference_frechet(a, b), rel=1e-6)
    assert frechet.frechet_distance(b, a) == pytest.approx(d_ab, rel=1e-9)


def test_frechet_stable_when_rank_deficient():
    # N < D: singular covariances, where sqrtm of S1 S2 is ill-conditioned.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.1
    d = frechet.frechet_distance(a, b)
    assert np.isfinite(d) and d > 0
    assert frechet.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-7)


def test_frechet_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same D"):
        frechet.frechet_distance(np.zeros((4, 3)), np.zeros((4, 5)))


# ---------------------------------------------------------- classifier score


def test_classifier_score_uniform_is_one():
    mean, std = inception_score.classifier_score(np.zeros((100, 7)), num_splits=5)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


def test_classifier_score_confident_distinct_is_k():
    k = 10
    logits = 50.0 * np.eye(k)[np.arange(200) % k]  # Every split sees every class.
    mean, std = inception_score.classifier_score(logits, num_splits=10)
    assert mean == pytest.approx(k, rel=1e-6) and std < 1e-6


def test_classifier_score_matches_direct_formula():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(60, 5)) * 3.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for s in np.split(p, 3):
        py = s.mean(0)
        scores.append(np.exp(np.mean(np.sum(s * np.log(s / py), axis=1))))
    mean, std = inception_score.classifier_score(logits, num_splits=3)
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(
        np.std(scores)
    )


def test_classifier_score_rejects_bad_splits():
    with pytest.raises(ValueError, match="num_splits"):
        inception_score.classifier_score(np.zeros((4, 3)), num_splits=5)


# ----------------------------------------------------------------- embedders


class _StandInI3D(tf.Module):
    """Same call signature as the TF-Hub I3D: [B, T, 224, 224, 3] -> {"default": [B, 400]}."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(6)
        self.w = tf.Variable(rng.normal(size=(6, 400)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, 224, 224, 3], tf.float32)])
    def __call__(self, rgb_input):
        mean = tf.reduce_mean(rgb_input, axis=[1, 2, 3])  # [B, 3]
        std = tf.math.reduce_std(rgb_input, axis=[1, 2, 3])  # [B, 3]
        return {"default": tf.concat([mean, std], axis=1) @ self.w}


def _videos(n, t=4, r=16, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(size=(n, t, r, r, 3)) * scale, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def i3d_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("i3d"))
    module = _StandInI3D()
    tf.saved_model.save(module, path, signatures={"default": module.__call__})
    return path


def test_i3d_missing_path_error_names_path_and_module(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="i3d-kinetics-400") as e:
        embedders.load_i3d(missing)
    assert missing in str(e.value)


def test_fvd_pipeline_with_stand_in(i3d_dir):
    model = embedders.load_i3d(i3d_dir)
    real = _videos(12, seed=0)
    feats = embedders.fvd_embed(real, model, batch_size=5)
    assert feats.shape == (12, 400)
    # The stand-in sees the frames resized to 224x224.
    resized = embedders.resize_frames_tf1(tf.constant(real[:2]), 224)
    assert resized.shape == (2, 4, 224, 224, 3)
    direct = _StandInI3D()(resized)["default"].numpy()
    np.testing.assert_allclose(feats[:2], direct, rtol=1e-4, atol=1e-4)
    assert embedders.fvd(real, real, model) == pytest.approx(0.0, abs=1e-6)
    other = _videos(12, seed=1, scale=0.3) + 0.2
    assert embedders.fvd(real, other, model, batch_size=4) > 1.0


def test_resize_matches_tf1_resize_bilinear():
    x = tf.constant(_videos(1, t=2, r=8))
    frames = tf.reshape(x, [2, 8, 8, 3])
    ref = tf.compat.v1.image.resize_bilinear(frames, [20, 20], align_corners=False)
    got = embedders.resize_frames_tf1(x, 20)
    np.testing.assert_allclose(tf.reshape(got, [2, 20, 20, 3]), ref, atol=1e-6)


def test_inception_missing_weights_error(tmp_path):
    missing = str(tmp_path / embedders.INCEPTION_NOTOP_FILE)
    with pytest.raises(FileNotFoundError, match="InceptionV3") as e:
        embedders.load_inception_v3(missing)
    assert missing in str(e.value)


def test_frame_fid_with_stand_in():
    seen = []

    def stand_in(frames):  # [n, 299, 299, 3] -> [n, 8]
        seen.append(tuple(frames.shape))
        pooled = tf.reduce_mean(frames, axis=[1, 2])  # [n, 3]
        return tf.concat([pooled, pooled**2, pooled[:, :2] * 0.5], axis=1)

    real, fake = _videos(6, t=3, seed=2), _videos(6, t=3, seed=3, scale=0.2)
    feats = embedders.fid_frame_embed(real, stand_in, batch_size=7)
    assert feats.shape == (18, 8)
    assert all(s[1:] == (299, 299, 3) for s in seen)
    assert embedders.frame_fid(real, real, stand_in) == pytest.approx(0.0, abs=1e-8)
    assert embedders.frame_fid(real, fake, stand_in) > 0.0


def test_c3d_missing_path_error(tmp_path):
    missing = str(tmp_path / "c3d_ucf101")
    with pytest.raises(FileNotFoundError, match="UCF-101") as e:
        embedders.load_video_classifier(missing)
    assert missing in str(e.value)


def test_ucf101_is_with_stand_in_keras_file(tmp_path):
    inputs = keras.Input((16, 112, 112, 3))
    x = keras.layers.AveragePooling3D((4, 28, 28))(inputs)  # [B, 4, 4, 4, 3]
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(101)(x)
    path = str(tmp_path / "c3d.keras")
    keras.Model(inputs, logits).save(path)
    model = embedders.load_video_classifier(path)
    videos = _videos(20, t=18, r=32, seed=4)
    assert embedders.ucf101_logits(videos, model, batch_size=8).shape == (20, 101)
    mean, std = embedders.ucf101_inception_score(videos, model, num_splits=2)
    assert 1.0 <= mean <= 101.0 and std >= 0.0
    with pytest.raises(ValueError, match="16 frames"):
        embedders.ucf101_logits(_videos(2, t=8), model)


def test_ucf101_value_range_and_saved_model_dir(tmp_path):
    class StandIn(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 16, 112, 112, 3])])
        def serve(self, clip):
            return {
                "logits": tf.stack(
                    [
                        tf.reduce_min(clip, [1, 2, 3, 4]),
                        tf.reduce_max(clip, [1, 2, 3, 4]),
                    ],
                    1,
                )
            }

    module = StandIn()
    path = str(tmp_path / "c3d_savedmodel")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    model = embedders.load_video_classifier(path)
    videos = np.concatenate([-np.ones((1, 16, 8, 8, 3)), np.ones((1, 16, 8, 8, 3))])
    out = embedders.ucf101_logits(videos, model, value_range=(0.0, 255.0))
    np.testing.assert_allclose(out, [[0.0, 0.0], [255.0, 255.0]], atol=1e-4)


# ---------------------------------------------------- built-in video classifier

# 16 x 16 rather than the shipped 32 x 32: the same classifier at a quarter of the
# compute (10 epochs reach held-out accuracy ~0.97 in ~50 s on 2 cores, where 32 x 32
# took ~110 s for 0.96).
T, R = 8, 16


# The tests of the trained classifier on one pytest-xdist worker (--dist=loadgroup,
# pyproject.toml), so that it is trained once.
CLASSIFIER_GROUP = pytest.mark.xdist_group("builtin_classifier")


@pytest.fixture(scope="module")
def trained():
    # Reduced training set: ~50 s on 2 CPU cores (oneDNN on). The shipped command
    # trains on 4800 clips x 8 epochs at 32 x 32.
    model, report = classifier.train_classifier(
        T, R, num_train=2400, num_test=600, epochs=10, seed=0
    )
    return model, report


@pytest.fixture(scope="module")
def real_sets():
    real = classifier.real_clips(240, T, R)
    heldout = classifier.real_clips(120, T, R, seed=classifier.REAL_SEED_OFFSET + 1)
    return real, heldout


@CLASSIFIER_GROUP
def test_classifier_heldout_accuracy(trained):
    _, report = trained
    assert report["test_accuracy"] >= 0.9, report


@CLASSIFIER_GROUP
def test_builtin_metrics_real_vs_noise(trained, real_sets):
    model, _ = trained
    (real_v, real_y), (held_v, held_y) = real_sets
    metrics = classifier.BuiltinMetrics(model, real_v, real_y)
    good = metrics(held_v, held_y)
    assert good["class_accuracy"] >= 0.85, good
    assert good["real_accuracy"] >= 0.85, good
    assert good["num_compared"] == 120
    assert 0.7 <= good["diversity_ratio"] <= 1.3, good

    # The breakdown agrees with the total: on balanced labels the per-class mean is
    # class_accuracy, and a right class has the right shape and motion.
    per_class = [good[f"class_accuracy/{n}"] for n in synthetic.CLASS_NAMES]
    assert np.mean(per_class) == pytest.approx(good["class_accuracy"], abs=1e-9)
    assert good["shape_accuracy"] >= good["class_accuracy"]
    assert good["motion_accuracy"] >= good["class_accuracy"]

    wrong = metrics(held_v, (held_y + 1 + np.arange(120) % 11) % synthetic.NUM_CLASSES)
    assert wrong["class_accuracy"] <= 0.15, wrong

    noise = np.random.default_rng(0).uniform(-1, 1, held_v.shape).astype(np.float32)
    bad = metrics(noise, held_y)
    assert good["frechet_real_real"] * 10 < bad["frechet"], (good, bad)
    assert good["frechet"] * 5 < bad["frechet"], (good, bad)

    # Mode collapse: one video per class repeated -> no diversity.
    collapsed = np.stack([held_v[np.argmax(held_y == y)] for y in held_y])
    assert metrics(collapsed, held_y)["diversity_ratio"] < 0.05

    # Real clips' backgrounds spread as the real set's; one shade for all -> 0.
    assert 0.7 <= good["background_spread_ratio"] <= 1.3, good
    one_shade = held_v.copy()
    flat = held_v == held_v[:, :, :1, :1]  # [N, T, H, W, 3]: the background pixels
    one_shade[flat] = -0.5
    assert metrics(one_shade, held_y)["background_spread_ratio"] < 0.05

    one_shot = classifier.builtin_metrics(model, held_v, held_y, real_v, real_y)
    assert one_shot["frechet"] == pytest.approx(good["frechet"], rel=1e-6)


def test_background_shades_hand_computed():
    """Median of the channel mean over frames and pixels: a flat clip with a small
    bright square reads as its background; the real set's shades are spread."""
    v = np.full((3, 2, 8, 8, 3), -0.25, np.float32)
    v[1] = np.array([0.1, 0.2, 0.6], np.float32)  # grey 0.3
    v[2] = -0.8
    v[:, :, 2:4, 2:4] = 1.0  # a shape on 8 of 64 pixels per frame
    np.testing.assert_allclose(
        classifier.background_shades(v), [-0.25, 0.3, -0.8], atol=1e-6
    )
    real, _ = classifier.real_clips(120, T, R)
    assert np.std(classifier.background_shades(real)) > 0.15


def test_class_breakdown_hand_computed():
    names = list(synthetic.CLASS_NAMES)
    ids = [names.index(n) for n in ("square_left", "circle_left", "triangle_up")]
    sl, cl, tu = ids
    labels = [sl, sl, sl, sl, tu, tu]
    predicted = [
        sl,  # right
        cl,  # shape wrong, motion right
        names.index("square_grow"),  # shape right, motion wrong
        names.index("triangle_rotate"),  # both wrong
        tu,  # right
        names.index("circle_up"),  # shape wrong, motion right
    ]
    out = classifier.class_breakdown(predicted, labels)
    assert out == {
        "shape_accuracy": pytest.approx(3 / 6),
        "motion_accuracy": pytest.approx(4 / 6),
        "class_accuracy/square_left": pytest.approx(1 / 4),
        "class_accuracy/triangle_up": pytest.approx(1 / 2),
    }
    with pytest.raises(ValueError, match=r"class ids in \[0, 12\).*\[0, 12\]"):
        classifier.class_breakdown([0, 12], [0, 1])
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        classifier.class_breakdown([0, 1, 2], [0, 1])


@CLASSIFIER_GROUP
def test_builtin_metrics_rejects_wrong_shape(trained, real_sets):
    model, _ = trained
    (real_v, real_y), _ = real_sets
    metrics = classifier.BuiltinMetrics(model, real_v[:24], real_y[:24])
    with pytest.raises(ValueError, match="match the classifier"):
        metrics(np.zeros((4, T, 2 * R, 2 * R, 3), np.float32), np.zeros(4))


@CLASSIFIER_GROUP
def test_cache_path_save_and_load(trained, tmp_path, monkeypatch):
    model, report = trained
    monkeypatch.setenv("DVDGAN_TF_CACHE", str(tmp_path))
    path = classifier.default_classifier_path(T, R)
    assert path == os.path.join(str(tmp_path), f"classifier_T{T}_R{R}.keras")
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        classifier.load_classifier(path)
    classifier.save_classifier(model, report, path)
    loaded, loaded_report = classifier.load_or_train_classifier(T, R)  # No training.
    assert loaded_report == report
    x = classifier.to_float_videos(synthetic.make_clips(4, T, R, seed=9)[0])
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected num_frames"):
        classifier.load_or_train_classifier(4, R, path=path)


def test_classifier_is_float32_under_a_bfloat16_policy():
    # A bfloat16 training run that trains the classifier (none cached) must get the
    # same float32 yardstick as every other run.
    reference = classifier.build_classifier(4, 8, 12)  # float32 policy
    x = classifier.to_float_videos(synthetic.make_clips(3, 4, 8, seed=5)[0])
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = classifier.build_classifier(4, 8, 12)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {layer.compute_dtype for layer in model.layers[1:]} == {"float32"}
    model.set_weights(reference.get_weights())
    out = model(x, training=False)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out, reference(x, training=False), rtol=1e-6, atol=1e-6)


def test_train_classifier_command(tmp_path):
    out = str(tmp_path / "tiny.keras")
    cmd = [sys.executable, "-m", "dvdgan_tf.train_classifier", "--num_frames=4",
           "--resolution=8", "--num_train=24", "--num_test=12", "--epochs=1",
           f"--out={out}"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "held-out accuracy" in result.stdout
    assert os.path.isfile(out) and os.path.isfile(out[: -len(".keras")] + ".json")
