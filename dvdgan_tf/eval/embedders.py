"""Pretrained embedders for FVD, per-frame FID and UCF-101 IS, loaded from LOCAL paths.

Nothing here downloads: the user fetches each network once and passes its path.

FVD (Unterthiner et al. 2018, "Towards Accurate Generative Models of Video"; the
reference code is google-research/frechet_video_distance):
  * embedder: the Kinetics-400 I3D of TF-Hub, `deepmind/i3d-kinetics-400/1` (now on
    Kaggle Models as `deepmind/i3d-kinetics/tensorFlow1/400`): download the
    module's .tar.gz and extract it into a directory (which then holds
    `saved_model.pb` and `variables/`);
  * input: float32 [B, T, 224, 224, 3] in [-1, 1]; every frame resized
    bilinearly to 224x224 with TF1's `resize_bilinear(align_corners=False)`, as the
    reference does (here through `tf.raw_ops.ResizeBilinear`, same kernel);
  * features: the 400-d Kinetics logits (the module's "default" output);
  * FVD = Fréchet distance between Gaussians fitted to real and generated features
    (`frechet.py`). The reference uses 16-frame clips and sets of 256 or more.

Per-frame FID (Heusel et al. 2017): every frame of every video is an image;
InceptionV3 (Keras's `keras.applications.InceptionV3`, `include_top=False,
pooling="avg"`) with ImageNet weights from a local file (Keras's
`inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`); frames resized
bilinearly to 299x299; Keras's InceptionV3 preprocessing maps pixels [0, 255] to
[-1, 1], which is already the range of our videos; 2048-d pool features.

UCF-101 Inception Score (the TGAN/TGANv2 protocol the paper uses: a C3D fine-tuned
on UCF-101, 16-frame samples, 2048 samples x 10 splits): the user supplies the
classifier as a SavedModel directory or a `.keras`/`.h5` file that maps float32
[B, 16, 112, 112, 3] RGB videos, with values in `value_range` (default [-1, 1];
pass (0, 255) for C3D ports that take pixels and subtract their mean inside), to
[B, 101] logits. Longer videos are cut to their first 16 frames, frames are
resized bilinearly to 112x112 (square videos; TGAN resizes to 128x171 and crops
the centre, which needs non-square frames).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from dvdgan_tf.eval import frechet, inception_score

I3D_HANDLE = "deepmind/i3d-kinetics-400/1"
I3D_RESOLUTION = 224
I3D_NUM_CLASSES = 400
INCEPTION_RESOLUTION = 299
INCEPTION_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
C3D_NUM_FRAMES = 16
C3D_RESOLUTION = 112
UCF101_NUM_CLASSES = 101

EmbedFn = Callable[[tf.Tensor], tf.Tensor]

_I3D_HELP = (
    f"FVD needs the Kinetics-400 I3D of TF-Hub ({I3D_HANDLE!r}) on local disk. "
    "Download it once on a machine with internet access (Kaggle Models "
    "'deepmind/i3d-kinetics/tensorFlow1/400/1', or "
    f"https://tfhub.dev/{I3D_HANDLE}?tf-hub-format=compressed), extract the "
    ".tar.gz into a directory (it holds saved_model.pb and variables/) and pass "
    "that directory, e.g. --i3d_path=/data/i3d-kinetics-400"
)
_INCEPTION_HELP = (
    "Per-frame FID needs Keras's ImageNet InceptionV3 weights without the top on "
    f"local disk: download {INCEPTION_NOTOP_FILE} from "
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/ "
    "once and pass its path (or any InceptionV3 no-top .h5/.weights.h5 file)"
)
_C3D_HELP = (
    "UCF-101 IS needs a video classifier fine-tuned on UCF-101 (C3D as in "
    "TGAN/TGANv2), exported as a SavedModel directory or a .keras/.h5 file that "
    f"maps float32 [B, {C3D_NUM_FRAMES}, {C3D_RESOLUTION}, {C3D_RESOLUTION}, 3] "
    f"videos to [B, {UCF101_NUM_CLASSES}] logits; pass its path"
)


def _check_videos(videos, name: str = "videos") -> tf.Tensor:
    videos = tf.convert_to_tensor(videos, tf.float32)
    if videos.shape.rank != 5 or videos.shape[-1] != 3:
        raise ValueError(
            f"{name} must be float32 [B, T, H, W, 3]; received shape {videos.shape}"
        )
    return videos


def _signature_fn(obj, path: str) -> EmbedFn:
    """A tensor -> tensor function from a loaded SavedModel or Keras model."""
    signatures = getattr(obj, "signatures", None) or {}
    key = next((k for k in ("default", "serving_default") if k in signatures), None)
    if key is None:
        if callable(obj):
            return lambda x: _single_output(obj(x), path)
        raise ValueError(
            f"the model at {path!r} has neither a 'default' nor a 'serving_default' "
            f"signature and is not callable; signatures: {sorted(signatures)}"
        )
    fn = signatures[key]
    _, kwargs_spec = fn.structured_input_signature
    if len(kwargs_spec) > 1:
        raise ValueError(
            f"signature {key!r} of {path!r} takes several inputs "
            f"{sorted(kwargs_spec)}; expected one video tensor"
        )
    arg_name = next(iter(kwargs_spec), None)

    def call(x):
        out = fn(**{arg_name: x}) if arg_name else fn(x)
        return _single_output(out, path)

    return call


def _single_output(out, path: str) -> tf.Tensor:
    if isinstance(out, dict):
        if "default" in out:
            return out["default"]
        if len(out) != 1:
            raise ValueError(
                f"the model at {path!r} returns several outputs {sorted(out)}; "
                "expected one logits tensor (or one named 'default')"
            )
        return next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ValueError(f"the model at {path!r} returns {len(out)} outputs")
        return out[0]
    return out


def _batched(fn: EmbedFn, x: tf.Tensor, batch_size: int, prep) -> np.ndarray:
    """Applies prep then fn over x in batches of batch_size; float64 numpy out."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received {batch_size}")
    outs = []
    for i in range(0, int(x.shape[0]), batch_size):
        y = fn(prep(x[i : i + batch_size]))
        outs.append(np.asarray(y, np.float64))
    return np.concatenate(outs, axis=0)


# ---------------------------------------------------------------- FVD (I3D)


def load_i3d(path: str) -> EmbedFn:
    """Loads the Kinetics-400 I3D from a local TF-Hub/SavedModel directory.

    Returns a function: float32 [B, T, 224, 224, 3] in [-1, 1] -> [B, 400] logits.
    Raises FileNotFoundError naming `path` and how to get the module.
    """
    if not path or not os.path.isdir(path):
        raise FileNotFoundError(f"no I3D module at {path!r}. {_I3D_HELP}")
    # TF1 Hub-format modules (the I3D is one) keep their graph under the empty tag
    # set, which tf.saved_model.load picks only when told (as hub.load does).
    tags = [] if os.path.exists(os.path.join(path, "tfhub_module.pb")) else None
    obj = tf.saved_model.load(path, tags=tags)
    return _signature_fn(obj, path)


def resize_frames_tf1(videos: tf.Tensor, size: int) -> tf.Tensor:
    """Bilinear resize of every frame as TF1's resize_bilinear (FVD reference).

    videos: float32 [B, T, H, W, C] -> [B, T, size, size, C].
    """
    b, t, h, w, c = videos.shape
    if (h, w) == (size, size):
        return videos
    frames = tf.reshape(videos, [-1, h, w, c])  # [B*T, H, W, C]: time into batch
    frames = tf.raw_ops.ResizeBilinear(
        images=frames, size=[size, size], align_corners=False, half_pixel_centers=False
    )
    return tf.reshape(frames, [-1, t, size, size, c])  # [B, T, size, size, C]


def fvd_embed(videos, model: EmbedFn, batch_size: int = 16) -> np.ndarray:
    """I3D logits of videos float32 [B, T, H, W, 3] in [-1, 1]; returns [B, 400].

    Frames are resized bilinearly to 224x224 first. `model` is what `load_i3d`
    returns (or any function with the same signature).
    """
    videos = _check_videos(videos)
    return _batched(
        model, videos, batch_size, lambda v: resize_frames_tf1(v, I3D_RESOLUTION)
    )


def fvd(real_videos, fake_videos, model: EmbedFn, batch_size: int = 16) -> float:
    """Fréchet Video Distance between two sets of videos [N, T, H, W, 3] in [-1, 1]."""
    real = fvd_embed(real_videos, model, batch_size)
    fake = fvd_embed(fake_videos, model, batch_size)
    return frechet.frechet_distance(real, fake)


# ------------------------------------------------------- per-frame FID (InceptionV3)


def load_inception_v3(weights_path: str):
    """Keras InceptionV3 (no top, average pool, 2048-d) with local ImageNet weights.

    Raises FileNotFoundError naming the path and how to get the weights file.
    """
    if not weights_path or not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"no InceptionV3 weights file at {weights_path!r}. {_INCEPTION_HELP}"
        )
    import keras

    return keras.applications.InceptionV3(
        weights=weights_path,
        include_top=False,
        pooling="avg",
        input_shape=(INCEPTION_RESOLUTION, INCEPTION_RESOLUTION, 3),
    )


def fid_frame_embed(videos, model: EmbedFn, batch_size: int = 64) -> np.ndarray:
    """Pool features of every frame: videos [B, T, H, W, 3] in [-1, 1] -> [B*T, D].

    Frames are resized bilinearly to 299x299. [-1, 1] is what Keras's
    `inception_v3.preprocess_input` produces from pixels, so values pass as they are.
    `model` is `load_inception_v3(...)` or any frames -> features function.
    """
    videos = _check_videos(videos)
    b, t, h, w, c = videos.shape
    frames = tf.reshape(videos, [b * t, h, w, c])  # [B*T, H, W, 3]: frames as images

    def prep(x):
        return tf.image.resize(x, [INCEPTION_RESOLUTION, INCEPTION_RESOLUTION])

    return _batched(model, frames, batch_size, prep)


def frame_fid(real_videos, fake_videos, model: EmbedFn, batch_size: int = 64) -> float:
    """Per-frame FID between two sets of videos [N, T, H, W, 3] in [-1, 1]."""
    real = fid_frame_embed(real_videos, model, batch_size)
    fake = fid_frame_embed(fake_videos, model, batch_size)
    return frechet.frechet_distance(real, fake)


# ------------------------------------------------------------ UCF-101 IS (C3D)


def load_video_classifier(path: str) -> EmbedFn:
    """Loads a user-provided UCF-101 classifier (SavedModel dir or .keras/.h5 file).

    Returns a function: float32 [B, 16, 112, 112, 3] -> [B, 101] logits.
    Raises FileNotFoundError naming the path and what the model must be.
    """
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"no UCF-101 classifier at {path!r}. {_C3D_HELP}")
    if os.path.isdir(path):
        return _signature_fn(tf.saved_model.load(path), path)
    if not path.endswith((".keras", ".h5")):
        raise ValueError(
            f"{path!r} is a file but not .keras or .h5. {_C3D_HELP}; a SavedModel "
            "is a directory"
        )
    import keras

    model = keras.models.load_model(path, compile=False)
    return lambda x: _single_output(model(x, training=False), path)


def ucf101_logits(
    videos,
    model: EmbedFn,
    batch_size: int = 16,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """Classifier logits of videos [B, T>=16, H, W, 3] in [-1, 1]; returns [B, K].

    The first 16 frames are kept, frames resized bilinearly to 112x112, and values
    mapped linearly from [-1, 1] to `value_range` before `model`.
    """
    videos = _check_videos(videos)
    if videos.shape[1] < C3D_NUM_FRAMES:
        raise ValueError(
            f"the UCF-101 protocol needs >= {C3D_NUM_FRAMES} frames; received "
            f"videos with T={videos.shape[1]}"
        )
    lo, hi = value_range

    def prep(v):
        v = resize_frames_tf1(v[:, :C3D_NUM_FRAMES], C3D_RESOLUTION)
        return lo + (v + 1.0) * (0.5 * (hi - lo))

    return _batched(model, videos, batch_size, prep)


def ucf101_inception_score(
    videos,
    model: EmbedFn,
    num_splits: int = 10,
    batch_size: int = 16,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> tuple[float, float]:
    """(mean, std) Inception Score of videos under a UCF-101 classifier (C3D)."""
    logits = ucf101_logits(videos, model, batch_size, value_range)
    return inception_score.classifier_score(logits, num_splits)
