"""Offline metric for the built-in dataset: a small 3-D-conv video classifier.

FVD, FID and the UCF-101 IS need pretrained networks that cannot be downloaded
here, so for the built-in "synthetic actions" dataset (`dvdgan_tf.data.synthetic`,
classes = (shape, motion) pairs) we train our own judge, in a few minutes on a CPU,
and measure generated videos with it:

  * class_accuracy: fraction of generated videos that the classifier assigns to
    the class they were asked for. Classes differ by shape AND motion, so a video
    only counts when both are right. `real_accuracy` is the same on real clips
    (the classifier's held-out accuracy: the ceiling).
  * frechet: Fréchet distance (`frechet.py`) between Gaussians fitted to the
    classifier's penultimate features (64-d) of generated and real clips: an FVD
    analogue. `frechet_real_real` is the same between two disjoint real sets of
    the same size, the value a perfect generator would get (the estimator is
    biased upwards for finite sets, so it is not 0).
  * diversity: mean over classes of the average pairwise L2 distance between the
    features of generated videos of that class; `diversity_real` the same on real
    clips; `diversity_ratio` = diversity / diversity_real (mode collapse -> << 1).
  * background_spread_ratio: interquartile range over clips of each clip's
    background shade (`background_shades`), generated over real (`background_iqr`,
    `background_iqr_real`; quartiles, not the std, so a few outlying clips do not
    hide a collapse). Not a target: a diagnostic for a collapse that the per-class
    feature diversity hardly sees (most backgrounds in one shade).
  * the breakdown of class_accuracy (`class_breakdown`): `shape_accuracy` and
    `motion_accuracy` (the predicted class has the asked shape / motion, whatever
    the other half), and `class_accuracy/<class name>` for each class asked for:
    which classes a run has not learnt yet, and whether it misses shape or motion.

Future prediction (DVD-GAN-FP): `PredictionMetrics` scores predicted continuations
with the same classifier and keys; the target class is the conditioning clip's, so
class_accuracy asks whether the continuation keeps the class (shape AND motion).

Protocol: pass at least twice as many real clips as generated ones (a balanced,
held-out set: `real_clips(...)` makes one from a seed the classifier was not
trained on); the generated and real label distributions should match.

Classifier (`build_classifier`, 0.18M parameters at K = 12): 4 Conv3D-BN-ReLU
layers: two spatial 1x3x3 (32 channels; the second halves H, W) that see shape,
then two 3x3x3 (64 channels; each halves T, H, W) that see motion; global max
pooling (is a corner / edge / moving part present anywhere), Dense(64, ReLU) =
the feature layer, Dense(K) logits. BN momentum 0.9 so that its moving statistics
keep up with a short training run. `python -m dvdgan_tf.train_classifier
--num_frames=8 --resolution=32` trains it (4800 clips, 8 epochs) and caches it at
`default_classifier_path(8, 32)`.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from dvdgan_tf.eval import frechet

FEATURE_LAYER = "features"
# Held-out real clips come from seeds offset from the training seed, so that no
# training clip is reused.
TEST_SEED_OFFSET = 1_000_003
REAL_SEED_OFFSET = 2_000_003


def _synthetic():
    from dvdgan_tf.data import synthetic

    return synthetic


def default_cache_dir() -> str:
    """$DVDGAN_TF_CACHE, else ~/.cache/dvdgan_tf."""
    return os.environ.get("DVDGAN_TF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "dvdgan_tf"
    )


def default_classifier_path(num_frames: int, resolution: int) -> str:
    """Where the classifier for T x R x R clips is cached (a .keras file)."""
    return os.path.join(
        default_cache_dir(), f"classifier_T{num_frames}_R{resolution}.keras"
    )


def _report_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".json"


def to_float_videos(videos) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]; float videos pass as float32."""
    videos = np.asarray(videos)
    if videos.dtype == np.uint8:
        return videos.astype(np.float32) / 127.5 - 1.0
    return videos.astype(np.float32, copy=False)


# (kernel, channels, strides) per Conv3D-BN-ReLU. Outputs: conv1 [B, T, R, R, 32],
# conv2 [B, T, R/2, R/2, 32], conv3 [B, T/2, R/4, R/4, 64], conv4 [B, T/4, R/8, R/8, 64]
# (T and R not divisible round up: padding="same").
_CONVS = (((1, 3, 3), 32, 1), ((1, 3, 3), 32, (1, 2, 2)), (3, 64, 2), (3, 64, 2))


def build_classifier(num_frames: int, resolution: int, num_classes: int) -> keras.Model:
    """The video classifier: float32 [B, T, R, R, 3] in [-1, 1] -> [B, K] logits.

    Always float32, whatever Keras's global dtype policy: it is the metric's
    yardstick, so a run under `runtime.mixed_precision="bfloat16"` that trains the
    classifier (none cached yet) must not get a bfloat16 one, whose scores would
    differ from every other run's.
    """
    if num_frames < 4 or resolution < 8:
        raise ValueError(
            "the classifier needs num_frames >= 4 and resolution >= 8; received "
            f"num_frames={num_frames}, resolution={resolution}"
        )
    layers = keras.layers
    f32 = "float32"
    video = keras.Input(
        (num_frames, resolution, resolution, 3), dtype=f32, name="video"
    )
    x = video
    for i, (kernel, ch, strides) in enumerate(_CONVS, start=1):
        x = layers.Conv3D(
            ch,
            kernel,
            strides=strides,
            padding="same",
            use_bias=False,
            dtype=f32,
            name=f"conv{i}",
        )(x)
        x = layers.BatchNormalization(momentum=0.9, dtype=f32, name=f"bn{i}")(x)
        x = layers.ReLU(dtype=f32, name=f"relu{i}")(x)
    x = layers.GlobalMaxPooling3D(dtype=f32, name="pool")(x)  # [B, 64]
    x = layers.Dense(64, activation="relu", dtype=f32, name=FEATURE_LAYER)(x)  # [B, 64]
    logits = layers.Dense(num_classes, dtype=f32, name="logits")(x)  # [B, K]
    return keras.Model(
        video, logits, name=f"video_classifier_T{num_frames}_R{resolution}"
    )


def _dataset(videos, labels, batch_size, shuffle_seed=None) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((videos, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    # uint8 stays uint8 in memory; converted per batch.
    ds = ds.map(lambda v, y: (tf.cast(v, tf.float32) / 127.5 - 1.0, y))
    return ds.prefetch(2)


def train_classifier(
    num_frames: int = 8,
    resolution: int = 32,
    num_train: int = 4800,
    num_test: int = 1200,
    epochs: int = 8,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    verbose: int = 0,
) -> tuple[keras.Model, dict]:
    """Trains the classifier on built-in clips; tests it on clips of another seed.

    Sets Keras's global random seed to `seed`. The defaults take a few minutes on
    2 CPU cores at 8 x 32 x 32.

    Returns:
      (model, report): report has test_accuracy (held-out real clips, generated
      with seed + TEST_SEED_OFFSET), train_accuracy, sizes, seeds and train_seconds.
    """
    synthetic = _synthetic()
    keras.utils.set_random_seed(seed)
    start = time.time()
    x_train, y_train = synthetic.make_clips(
        num_train, num_frames=num_frames, resolution=resolution, seed=seed
    )
    test_seed = seed + TEST_SEED_OFFSET
    x_test, y_test = synthetic.make_clips(
        num_test, num_frames=num_frames, resolution=resolution, seed=test_seed
    )
    data_seconds = time.time() - start

    model = build_classifier(num_frames, resolution, synthetic.NUM_CLASSES)
    steps = epochs * -(-num_train // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        _dataset(x_train, y_train, batch_size, shuffle_seed=seed),
        epochs=epochs,
        shuffle=False,  # The dataset shuffles itself.
        verbose=verbose,
    )
    _, test_acc = model.evaluate(_dataset(x_test, y_test, 128), verbose=0)
    report = {
        "test_accuracy": float(test_acc),
        "train_accuracy": float(history.history["accuracy"][-1]),
        "num_frames": num_frames,
        "resolution": resolution,
        "num_classes": synthetic.NUM_CLASSES,
        "num_train": num_train,
        "num_test": num_test,
        "epochs": epochs,
        "train_seed": seed,
        "test_seed": test_seed,
        "data_seconds": round(data_seconds, 1),
        "train_seconds": round(time.time() - start - data_seconds, 1),
    }
    return model, report


def save_classifier(model: keras.Model, report: dict, path: str) -> None:
    """Saves the model to `path` (.keras) and the report next to it (.json)."""
    if not path.endswith(".keras"):
        raise ValueError(f"classifier path must end in .keras; received {path!r}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    model.save(path)
    with open(_report_path(path), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)


def load_classifier(path: str) -> tuple[keras.Model, dict]:
    """Loads a cached classifier and its report ({} if the .json is missing)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no classifier at {path!r}; train one with `python -m "
            "dvdgan_tf.train_classifier --num_frames=T --resolution=R [--out=PATH]`"
        )
    model = keras.models.load_model(path, compile=False)
    report = {}
    if os.path.isfile(_report_path(path)):
        with open(_report_path(path), encoding="utf-8") as f:
            report = json.load(f)
    return model, report


def load_or_train_classifier(
    num_frames: int,
    resolution: int,
    path: str | None = None,
    retrain: bool = False,
    **train_kwargs,
) -> tuple[keras.Model, dict]:
    """The cached classifier for T x R x R clips, trained and cached if missing."""
    path = path or default_classifier_path(num_frames, resolution)
    if os.path.isfile(path) and not retrain:
        model, report = load_classifier(path)
        if model.input_shape[1:4] != (num_frames, resolution, resolution):
            raise ValueError(
                f"the classifier at {path!r} takes input {model.input_shape}; "
                f"expected num_frames={num_frames}, resolution={resolution}"
            )
        return model, report
    model, report = train_classifier(num_frames, resolution, **train_kwargs)
    save_classifier(model, report, path)
    return model, report


def real_clips(
    num: int, num_frames: int, resolution: int, seed: int = REAL_SEED_OFFSET
) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced set of real clips: float32 [N, T, R, R, 3] in [-1, 1], [N]."""
    synthetic = _synthetic()
    labels = np.arange(num, dtype=np.int32) % synthetic.NUM_CLASSES
    videos, labels = synthetic.make_clips(
        num, num_frames=num_frames, resolution=resolution, seed=seed, labels=labels
    )
    return to_float_videos(videos), np.asarray(labels, np.int32)


def class_breakdown(predicted, labels) -> dict[str, float]:
    """Where class accuracy is lost: shape / motion accuracy and accuracy per class.

    predicted, labels: class ids [N] of the built-in dataset (classifier argmax and
    the asked class). Returns {"shape_accuracy", "motion_accuracy",
    "class_accuracy/<name>" for each class present in `labels`}.
    """
    synthetic = _synthetic()
    predicted = np.asarray(predicted, np.int64)
    labels = np.asarray(labels, np.int64)
    if predicted.shape != labels.shape or predicted.ndim != 1:
        raise ValueError(
            f"predicted and labels must both be [N]; received shapes "
            f"{predicted.shape} and {labels.shape}"
        )
    for name, ids in (("predicted", predicted), ("labels", labels)):
        if ids.size and (ids.min() < 0 or ids.max() >= synthetic.NUM_CLASSES):
            raise ValueError(
                f"{name} must be class ids in [0, {synthetic.NUM_CLASSES}); "
                f"received values in [{ids.min()}, {ids.max()}]"
            )
    shape = np.array([synthetic.shape_of(c) for c in range(synthetic.NUM_CLASSES)])
    motion = np.array([synthetic.motion_of(c) for c in range(synthetic.NUM_CLASSES)])
    out = {
        "shape_accuracy": float(np.mean(shape[predicted] == shape[labels])),
        "motion_accuracy": float(np.mean(motion[predicted] == motion[labels])),
    }
    for c in np.unique(labels):
        asked = labels == c
        out[f"class_accuracy/{synthetic.CLASS_NAMES[c]}"] = float(
            np.mean(predicted[asked] == c)
        )
    return out


def _mean_pairwise_distance(feats: np.ndarray) -> float:
    """Average L2 distance over the n (n - 1) / 2 pairs of rows of feats [n, D]."""
    sq = np.sum(feats**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T, 0.0)  # [n, n]
    n = feats.shape[0]
    return float(np.sum(np.sqrt(d2)) / (n * (n - 1)))


def per_class_diversity(feats: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes (with >= 2 samples) of the mean pairwise feature distance."""
    values = [
        _mean_pairwise_distance(feats[labels == k])
        for k in np.unique(labels)
        if np.sum(labels == k) >= 2
    ]
    return float(np.mean(values)) if values else float("nan")


def background_shades(videos) -> np.ndarray:
    """float64 [N]: each clip's background shade, the median over its frames and
    pixels of the channel mean (the built-in dataset draws one flat shade per clip;
    its shape covers ~6% of the pixels, so the median is the background's)."""
    videos = to_float_videos(videos)  # [N, T, H, W, 3]
    grey = videos.mean(axis=-1).reshape(videos.shape[0], -1)  # [N, T*H*W]
    return np.median(grey, axis=1).astype(np.float64)


def _iqr(values: np.ndarray) -> float:
    """Interquartile range (75th - 25th percentile) of values [N]."""
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def _balanced_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint index sets, each with (about) half of every class, shuffled."""
    order = np.argsort(labels, kind="stable")
    a, b = order[0::2], order[1::2]  # Alternate within each class's run.
    rng = np.random.default_rng(seed)
    return rng.permutation(a), rng.permutation(b)


class BuiltinMetrics:
    """Class accuracy, Fréchet distance and diversity under the built-in classifier.

    The real set's features are computed once; call the object on each batch of
    generated videos:

      metrics = BuiltinMetrics(classifier, *real_clips(1200, 8, 32))
      result = metrics(fake_videos, fake_labels)  # dict of floats
    """

    def __init__(
        self,
        classifier: keras.Model,
        real_videos,
        real_labels,
        batch_size: int = 64,
        seed: int = 0,
    ):
        self.classifier = classifier
        self.batch_size = batch_size
        self._embed = keras.Model(
            classifier.input,
            [classifier.get_layer(FEATURE_LAYER).output, classifier.outputs[0]],
        )
        self.real_feats, real_logits = self.features_and_logits(real_videos)
        self.real_labels = np.asarray(real_labels, np.int64)
        if self.real_labels.shape != (self.real_feats.shape[0],):
            raise ValueError(
                f"real_labels must be [N] with N={self.real_feats.shape[0]}; "
                f"received shape {self.real_labels.shape}"
            )
        self.real_accuracy = float(
            np.mean(np.argmax(real_logits, axis=1) == self.real_labels)
        )
        self.diversity_real = per_class_diversity(self.real_feats, self.real_labels)
        self.background_iqr_real = _iqr(background_shades(real_videos))
        self._half_a, self._half_b = _balanced_halves(self.real_labels, seed)

    def features_and_logits(self, videos) -> tuple[np.ndarray, np.ndarray]:
        """float64 features [N, 64] and logits [N, K] of videos [N, T, H, W, 3]."""
        videos = to_float_videos(videos)
        expected = tuple(self.classifier.input_shape[1:])
        if videos.ndim != 5 or videos.shape[1:] != expected:
            raise ValueError(
                f"videos must be [N, {', '.join(map(str, expected))}] to match the "
                f"classifier; received shape {videos.shape}"
            )
        feats, logits = [], []
        for i in range(0, videos.shape[0], self.batch_size):
            f, lg = self._embed(videos[i : i + self.batch_size], training=False)
            feats.append(np.asarray(f, np.float64))
            logits.append(np.asarray(lg, np.float64))
        return np.concatenate(feats), np.concatenate(logits)

    def _background(self, videos) -> dict:
        """Spread of the clips' background shades against the real set's: G can
        draw every background in one shade while its classes and their features'
        per-class diversity look right (BENCHMARKS.md); Fréchet sees it, this names
        it."""
        iqr = _iqr(background_shades(videos))
        return {
            "background_iqr": iqr,
            "background_iqr_real": self.background_iqr_real,
            "background_spread_ratio": iqr / max(self.background_iqr_real, 1e-12),
        }

    def __call__(self, fake_videos, fake_labels) -> dict:
        """Metrics of generated videos float32 [N, T, H, W, 3] in [-1, 1], labels [N]."""
        fake_feats, fake_logits = self.features_and_logits(fake_videos)
        fake_labels = np.asarray(fake_labels, np.int64)
        if fake_labels.shape != (fake_feats.shape[0],):
            raise ValueError(
                f"fake_labels must be [N] with N={fake_feats.shape[0]}; received "
                f"shape {fake_labels.shape}"
            )
        # Same set sizes on both sides, so that the (biased) estimates compare.
        n = min(fake_feats.shape[0], len(self._half_a), len(self._half_b))
        if n < 2:
            raise ValueError(
                f"need >= 2 generated and >= 4 real videos; received "
                f"{fake_feats.shape[0]} and {self.real_feats.shape[0]}"
            )
        real_a = self.real_feats[self._half_a[:n]]
        real_b = self.real_feats[self._half_b[:n]]
        diversity = per_class_diversity(fake_feats, fake_labels)
        predicted = np.argmax(fake_logits, axis=1)  # [N] class ids
        return {
            "class_accuracy": float(np.mean(predicted == fake_labels)),
            "real_accuracy": self.real_accuracy,
            "frechet": frechet.frechet_distance(fake_feats[:n], real_a),
            "frechet_real_real": frechet.frechet_distance(real_b, real_a),
            "diversity": diversity,
            "diversity_real": self.diversity_real,
            "diversity_ratio": diversity / self.diversity_real,
            "num_compared": n,
            **self._background(fake_videos),
            **class_breakdown(predicted, fake_labels),
        }


class PredictionMetrics(BuiltinMetrics):
    """The built-in metrics for future prediction (DVD-GAN-FP, paper v2 section 4.2).

    Built from the real continuations of the N conditioning clips (float32 [N, T,
    H, W, 3], their last T frames), the clips' labels [N] and, as the Fréchet
    reference, the continuations of N other real clips [M, T, H, W, 3]; called on the
    N predicted continuations in the same order:

      class_accuracy     predictions the classifier assigns to their conditioning
                         clip's class (shape AND motion kept);
      real_accuracy      the same for the real continuations: the ceiling;
      frechet            Fréchet distance of predictions vs the reference set;
      frechet_real_real  of the real continuations vs the reference set: exactly
                         what a predictor that returns the true continuation
                         scores (same sizes on both sides, disjoint clips);
      diversity(_real, _ratio)  per-class feature diversity of the predictions
                         (of the real continuations), as in `BuiltinMetrics`;
      background_iqr(_real), background_spread_ratio  as in `BuiltinMetrics`.
    """

    def __init__(
        self,
        classifier: keras.Model,
        continuations,
        labels,
        reference,
        batch_size: int = 64,
    ):
        super().__init__(classifier, continuations, labels, batch_size)
        self.reference_feats, _ = self.features_and_logits(reference)
        self.frechet_real_real = frechet.frechet_distance(
            self.real_feats, self.reference_feats
        )

    def __call__(self, predicted, labels=None) -> dict:
        """Metrics of predictions [N, T, H, W, 3], row i continuing clip i."""
        background = self._background(predicted)
        feats, logits = self.features_and_logits(predicted)
        n = self.real_feats.shape[0]
        if feats.shape[0] != n:
            raise ValueError(
                f"expected one prediction per conditioning clip, {n}; received "
                f"{feats.shape[0]}"
            )
        if labels is not None and not np.array_equal(
            np.asarray(labels, np.int64), self.real_labels
        ):
            raise ValueError("labels must be the conditioning clips' labels, in order")
        diversity = per_class_diversity(feats, self.real_labels)
        predicted = np.argmax(logits, 1)  # [N] class ids
        return {
            "class_accuracy": float(np.mean(predicted == self.real_labels)),
            "real_accuracy": self.real_accuracy,
            "frechet": frechet.frechet_distance(feats, self.reference_feats),
            "frechet_real_real": self.frechet_real_real,
            "diversity": diversity,
            "diversity_real": self.diversity_real,
            "diversity_ratio": diversity / self.diversity_real,
            "num_compared": n,
            **background,
            **class_breakdown(predicted, self.real_labels),
        }


def builtin_metrics(
    classifier: keras.Model,
    fake_videos,
    fake_labels,
    real_videos,
    real_labels,
    batch_size: int = 64,
) -> dict:
    """One-shot `BuiltinMetrics(classifier, real_videos, real_labels)(fake, labels)`."""
    return BuiltinMetrics(classifier, real_videos, real_labels, batch_size)(
        fake_videos, fake_labels
    )
