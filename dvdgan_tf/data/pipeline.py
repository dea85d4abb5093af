"""The input pipeline shared by every video source (issue 4, items 2, 4 and 5).

`build_dataset(config, split, batch_size)` yields `(video, label)` batches:
video float32 [B, T, H, W, 3] in [-1, 1] (T = `config_lib.clip_frames(config)`:
model.num_frames, plus model.conditioning_frames for DVD-GAN-FP, whose clips hold
the conditioning frames followed by the frames to predict; H = W =
model.resolution), label int32 [B]; static shapes (drop_remainder=True) for XLA/TPU.

Sources, picked by `config.data.name`:
  "synthetic_actions"        in-memory built-in set, no preparation: clips
                             0..data.num_train_examples-1 of `data.seed` (test:
                             num_train_examples // 10, at least one per class, from
                             a separate stream), rendered per batch directly at
                             model resolution and T. Clip i is always the same clip;
                             frame_stride and cropping do not apply. With
                             data.class_balanced, each training batch is made of
                             runs of NUM_CLASSES clips holding every class once.
  "tfds:synthetic_actions"   the prepared TFDS builder (64x64x16, 12k train; built
                             offline on first use, ~1-2 min), resized and cropped.
  "ucf101[/config]"          TFDS `ucf101` (default config ucf101_1_256), 101 classes.
  "bair_robot_pushing_small" TFDS BAIR (image_main, 30 frames); unlabelled: label 0
                             (one class; configs set model.num_classes = 1).
  "kinetics600"              TFDS has no Kinetics builder: a folder of clips at
                             <data_dir>/kinetics600/<split>/<class>/*.mp4.
  "folder:/path"             /path/<class>/*.mp4 (see `folder`); every split reads
                             the whole folder.
  any other TFDS name        a prepared TFDS dataset with a Video (or a Sequence of
                             Image) feature and optionally a ClassLabel.
`data.data_dir` is the TFDS data_dir ("" = TFDS default). TFDS data is never
downloaded: a missing dataset raises at once, naming the path and how to prepare it.

Real-video sources: a random window of T frames `data.frame_stride` apart (the middle
window when not training); clips shorter than (T-1)*stride+1 frames are looped for
TFDS sources and skipped when a folder is cached. Only the T chosen frames are
decoded. Frames are resized so the short side is H, then cropped to H x W: centre
crop, or a random crop along the long side when `data.random_crop` and training.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from dvdgan_tf import config_lib
from dvdgan_tf.data import folder as folder_lib
from dvdgan_tf.data import synthetic

logger = logging.getLogger(__name__)

SYNTHETIC = "synthetic_actions"
TFDS_SYNTHETIC = "tfds:synthetic_actions"
KINETICS = "kinetics600"
FOLDER_PREFIX = "folder:"
VALID_NAMES = (
    SYNTHETIC,
    TFDS_SYNTHETIC,
    "ucf101",
    "bair_robot_pushing_small",
    KINETICS,
    "folder:/path/to/clips",
    "tfds:<name> or <name> of another prepared TFDS video dataset",
)

# How to prepare each TFDS set by hand; TFDS takes the files from --manual_dir by
# their file names instead of downloading them.
_PREPARE_HINTS = {
    "ucf101": (
        "download UCF101_videos.zip "
        "(https://storage.googleapis.com/thumos14_files/UCF101_videos.zip) and "
        "UCF101TrainTestSplits-RecognitionTask.zip "
        "(https://www.crcv.ucf.edu/data/UCF101/"
        "UCF101TrainTestSplits-RecognitionTask.zip) into MANUAL, then run "
        "`tfds build ucf101 --data_dir={data_dir} --manual_dir=MANUAL` "
        "(or build on a machine with internet and copy {data_dir}/ucf101 here)"
    ),
    "bair_robot_pushing_small": (
        "download bair_robot_pushing_dataset_v0.tar "
        "(http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar) "
        "into MANUAL, then run `tfds build bair_robot_pushing_small "
        "--data_dir={data_dir} --manual_dir=MANUAL` (or build elsewhere and copy "
        "{data_dir}/bair_robot_pushing_small here)"
    ),
}


@dataclasses.dataclass(frozen=True)
class _Source:
    """A resolved `data.name`: where examples come from and what they hold."""

    kind: str  # "synthetic" | "tfds"
    name: str
    class_names: tuple[str, ...]
    builder: Any = None  # tfds.core.DatasetBuilder for kind "tfds".
    tfds_split: str | None = None  # Overrides the requested split (folders).
    video_key: str = "video"
    label_key: str | None = "label"


def _data_dir(config) -> str | None:
    return config.data.data_dir or None


def _default_data_dir(config) -> str:
    return os.path.expanduser(config.data.data_dir or tfds.core.constants.DATA_DIR)


def _frames_needed(config) -> int:
    """Frames a clip must have for one window of T frames at the stride."""
    t, stride = config_lib.clip_frames(config), config.data.frame_stride
    if stride < 1:
        raise ValueError(f"data.frame_stride must be >= 1; received {stride!r}")
    return (t - 1) * stride + 1


def _video_keys(features) -> tuple[str, str | None]:
    """Finds the video feature and the ClassLabel feature of a TFDS dataset."""
    video_key = label_key = None
    for key, feature in features.items():
        if video_key is None and isinstance(feature, tfds.features.Video):
            video_key = key
        if label_key is None and isinstance(feature, tfds.features.ClassLabel):
            label_key = key
    if video_key is None:  # A Sequence of Image frames, e.g. BAIR's image_main.
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        images.sort(key=lambda k: (k != "image_main", k))
        video_key = images[0] if images else None
    return video_key, label_key


def _flat_features(builder) -> dict:
    features = builder.info.features
    if isinstance(features, tfds.features.Sequence):  # BAIR: Sequence({...}).
        features = features.feature
    return dict(features.items()) if hasattr(features, "items") else {}


def _tfds_source(name: str, config, prepare: bool = True) -> _Source:
    """A TFDS source; `prepare=False` only reads its features (class names)."""
    data_dir = _data_dir(config)
    if name == SYNTHETIC:
        from dvdgan_tf.data import tfds_builder  # noqa: F401 -- registers builder.
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise ValueError(
            f"unknown dataset data.name={config.data.name!r}; valid names: "
            f"{', '.join(VALID_NAMES)}"
        ) from e
    if prepare and not builder.is_prepared():
        if name == SYNTHETIC:  # Renders offline: prepare on first use.
            logger.info("preparing %s into %s (offline)", name, builder.data_dir)
            builder.download_and_prepare()
            builder = tfds.builder(name, data_dir=data_dir)
        else:
            root = _default_data_dir(config)
            hint = _PREPARE_HINTS.get(
                name.split("/")[0],
                "run `tfds build {name} --data_dir={data_dir}` on a machine with "
                "internet (following any manual download steps TFDS prints) and "
                "copy the result into {data_dir}",
            ).format(name=name, data_dir=root)
            raise FileNotFoundError(
                f"dataset {name!r} is not prepared in data_dir {root!r} (no "
                f"{builder.data_path}); nothing is downloaded at run time. To "
                f"prepare it: {hint}"
            )
    video_key, label_key = _video_keys(_flat_features(builder))
    if video_key is None:
        raise ValueError(
            f"TFDS dataset {name!r} has no Video or Image-sequence feature; "
            f"features: {builder.info.features}"
        )
    names = tuple(builder.info.features[label_key].names) if label_key else (name,)
    return _Source("tfds", name, names, builder, None, video_key, label_key)


def _folder_source(root: str, config) -> _Source:
    builder, rep = folder_lib.prepare_folder(
        root,
        data_dir=_data_dir(config),
        resolution=config.model.resolution,
        min_frames=_frames_needed(config),
    )
    return _Source("tfds", f"folder:{rep.root}", rep.class_names, builder, "train")


def _kinetics_root(config, split: str) -> str:
    root = os.path.join(_default_data_dir(config), KINETICS, split)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"kinetics600: TFDS has no Kinetics builder, so Kinetics-600 is read as "
            f"a folder of clips at {root}/<class_name>/*.mp4, which does not exist. "
            "Download the clips (e.g. the CVDF kinetics-dataset scripts, "
            "github.com/cvdfoundation/kinetics-dataset), sort them into one folder "
            f"per class under {root}, or set data.name='folder:/path'."
        )
    return root


def _resolve(config, split: str, prepare: bool = True) -> _Source:
    """Turns `config.data.name` into a source.

    `prepare=False` only finds class names: no folder caching, no prepared-data check.
    """
    name = config.data.name
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"data.name must be a non-empty string; received data.name={name!r}; "
            f"valid names: {', '.join(VALID_NAMES)}"
        )
    if name == SYNTHETIC:
        return _Source("synthetic", name, synthetic.CLASS_NAMES)
    if name.startswith(FOLDER_PREFIX) or name == KINETICS:
        if name == KINETICS:
            root = _kinetics_root(config, split)
        else:
            root = name[len(FOLDER_PREFIX) :]
        if not prepare:
            names = tuple(folder_lib.scan_folder(root))
            return _Source("tfds", name, names)
        return _folder_source(root, config)
    tfds_name = name.removeprefix("tfds:")
    return _tfds_source(tfds_name, config, prepare)


def class_names(config) -> list[str]:
    """Class names of the configured dataset; label id = position in the list."""
    return list(_resolve(config, "train", prepare=False).class_names)


def _synthetic_split(config, split: str) -> tuple[int, int]:
    """(number of clips, stream) of the in-memory set's split."""
    n = config.data.num_train_examples
    if n < 1:
        raise ValueError(f"data.num_train_examples must be >= 1; received {n!r}")
    if split == "train":
        return n, 0
    if split in ("test", "validation", "eval"):
        return max(n // 10, synthetic.NUM_CLASSES), 1
    raise ValueError(
        f"unknown split {split!r} for {SYNTHETIC}; expected 'train', 'test', "
        "'validation' or 'eval'"
    )


def num_examples(config, split: str = "train") -> int:
    """Number of clips in `split` of the configured dataset (one epoch)."""
    if config.data.name == SYNTHETIC:
        return _synthetic_split(config, split)[0]
    source = _resolve(config, split)
    return int(source.builder.info.splits[source.tfds_split or split].num_examples)


def _class_balanced_indices(n, batch_size, seed, shards, shard, repeat):
    """Clip indices in runs of NUM_CLASSES that hold every class once (in class order).

    The built-in set's clip i has class i mod C (`synthetic.balanced_labels`), so
    class c owns clips c, c + C, c + 2C, ...; each class's clips are shuffled on their
    own and the C streams are interleaved one clip at a time. A batch that is a
    multiple of C (and every D step's chunk of it) then shows G and D every class.
    """
    num_classes = synthetic.NUM_CLASSES
    if batch_size % num_classes:
        raise ValueError(
            f"data.class_balanced needs a batch that is a multiple of the "
            f"{num_classes} classes; received batch_size={batch_size}"
        )
    if n < num_classes * shards:
        raise ValueError(
            f"data.class_balanced needs at least one clip per class per input "
            f"pipeline ({num_classes} x {shards}); received data.num_train_examples={n}"
        )
    streams = []
    for c in range(num_classes):
        clips = tf.data.Dataset.range(c, n, num_classes).shard(shards, shard)
        size = len(range(shard, len(range(c, n, num_classes)), shards))  # Its clips.
        clips = clips.shuffle(
            size, seed=seed * num_classes + c, reshuffle_each_iteration=True
        )
        streams.append(clips.repeat() if repeat else clips)
    # Without repeat, zip stops at the smallest class: one balanced pass.
    return tf.data.Dataset.zip(tuple(streams)).flat_map(
        lambda *idx: tf.data.Dataset.from_tensor_slices(tf.stack(idx))  # [C] -> C x []
    )


def _synthetic_dataset(config, split, batch_size, input_context, repeat, shuffle):
    n, stream = _synthetic_split(config, split)
    t, r = config_lib.clip_frames(config), config.model.resolution
    seed = config.data.seed
    shards, shard = 1, 0
    if input_context is not None:
        shards = input_context.num_input_pipelines
        shard = input_context.input_pipeline_id
    if shuffle and config.data.get("class_balanced", False):
        ds = _class_balanced_indices(n, batch_size, seed, shards, shard, repeat)
    else:
        ds = tf.data.Dataset.range(n).shard(shards, shard)
        if shuffle:  # Indices are cheap: shuffle the whole split.
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)

    def render(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return synthetic.render_indexed(indices, t, r, seed, stream)

    def to_example(indices):
        video, label = tf.numpy_function(
            render, [indices], (tf.uint8, tf.int32), stateful=False
        )
        video = tf.ensure_shape(video, [batch_size, t, r, r, 3])  # [B, T, H, W, 3]
        label = tf.ensure_shape(label, [batch_size])
        return tf.cast(video, tf.float32) / 127.5 - 1.0, label

    return ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)


def _decode_window(encoded, num_frames, stride, training, seed):
    """Picks and decodes T frames of encoded frames [L]: uint8 [T, h, w, 3]."""
    length = tf.shape(encoded)[0]
    span = (num_frames - 1) * stride + 1
    max_start = tf.maximum(length - span, 0)
    if training:
        start = tf.random.stateless_uniform(
            [], seed, minval=0, maxval=max_start + 1, dtype=tf.int32
        )
    else:
        start = max_start // 2
    # Looping (mod L) keeps clips shorter than the window usable.
    idx = (start + tf.range(num_frames) * stride) % length  # [T]
    return tf.map_fn(
        lambda s: tf.io.decode_image(s, channels=3, expand_animations=False),
        tf.gather(encoded, idx),
        fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
    )  # [T, h, w, 3]


def resize_and_crop(video, resolution: int, random_crop: bool, seed=None):
    """uint8 [T, h, w, 3] -> float32 [T, R, R, 3] in [-1, 1]; short side to R."""
    shape = tf.shape(video)
    h, w = shape[1], shape[2]
    scale = resolution / tf.cast(tf.minimum(h, w), tf.float32)
    new_h = tf.maximum(
        resolution, tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32)
    )
    new_w = tf.maximum(
        resolution, tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32)
    )
    x = tf.cond(
        tf.logical_and(tf.equal(new_h, h), tf.equal(new_w, w)),
        lambda: tf.cast(video, tf.float32),
        lambda: tf.image.resize(video, [new_h, new_w], antialias=True),
    )  # [T, h', w', 3] with min(h', w') = R
    if random_crop:
        off_h = tf.random.stateless_uniform(
            [], seed, maxval=new_h - resolution + 1, dtype=tf.int32
        )
        off_w = tf.random.stateless_uniform(
            [], seed + 1, maxval=new_w - resolution + 1, dtype=tf.int32
        )
    else:
        off_h, off_w = (new_h - resolution) // 2, (new_w - resolution) // 2
    x = x[:, off_h : off_h + resolution, off_w : off_w + resolution, :]
    x = tf.ensure_shape(x, [video.shape[0], resolution, resolution, 3])  # [T, R, R, 3]
    return tf.clip_by_value(x / 127.5 - 1.0, -1.0, 1.0)


def _tfds_dataset(source, config, split, batch_size, input_context, repeat, shuffle):
    t, r = config_lib.clip_frames(config), config.model.resolution
    stride, seed = config.data.frame_stride, config.data.seed
    _frames_needed(config)  # Validates the stride.
    tfds_split = source.tfds_split or split
    if input_context is not None and input_context.num_input_pipelines > 1:
        tfds_split = tfds.even_splits(
            tfds_split, input_context.num_input_pipelines, drop_remainder=True
        )[input_context.input_pipeline_id]
    decoders = {source.video_key: tfds.decode.SkipDecoding()}
    ds = source.builder.as_dataset(
        split=tfds_split,
        decoders=decoders,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    if shuffle:
        ds = ds.shuffle(config.data.shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    training = shuffle  # Random windows and crops only while training.
    random_crop = bool(config.data.random_crop) and training
    # One stateless seed [2] per example: reproducible for a data.seed.
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, seeds))

    def to_example(ex, example_seed):
        encoded = ex[source.video_key]  # [L] encoded frames
        window = _decode_window(encoded, t, stride, training, example_seed)
        video = resize_and_crop(window, r, random_crop, example_seed + 7)
        if source.label_key is None:
            label = tf.constant(0, tf.int32)
        else:
            label = tf.cast(ex[source.label_key], tf.int32)
        return video, label  # float32 [T, R, R, 3], int32 []

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True)


def build_dataset(
    config,
    split: str = "train",
    batch_size: int = 16,
    input_context: tf.distribute.InputContext | None = None,
    repeat: bool = True,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """(video, label) batches of the configured dataset; see the module docstring.

    video: float32 [batch_size, T, H, W, 3] in [-1, 1]; label: int32 [batch_size].
    `batch_size` is the batch yielded (per replica under a strategy). With
    `input_context`, this pipeline reads only its 1/num_input_pipelines share.
    `shuffle` also turns on random windows and crops (training mode).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; received batch_size={batch_size}")
    if config.data.name == SYNTHETIC:
        source = _Source("synthetic", SYNTHETIC, synthetic.CLASS_NAMES)
    else:
        source = _resolve(config, split)
    k = config.model.num_classes
    if len(source.class_names) > k:
        raise ValueError(
            f"dataset {source.name!r} has {len(source.class_names)} classes but "
            f"model.num_classes={k}; set model.num_classes >= "
            f"{len(source.class_names)}"
        )
    if source.kind == "synthetic":
        ds = _synthetic_dataset(
            config, split, batch_size, input_context, repeat, shuffle
        )
    else:
        ds = _tfds_dataset(
            source, config, split, batch_size, input_context, repeat, shuffle
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def distribute_dataset(
    strategy: tf.distribute.Strategy,
    config,
    global_batch_size: int,
    split: str = "train",
) -> tf.distribute.DistributedDataset:
    """Per-replica pipelines via `strategy.distribute_datasets_from_function`."""
    if global_batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"global_batch_size must divide evenly over replicas; received "
            f"global_batch_size={global_batch_size}, "
            f"num_replicas_in_sync={strategy.num_replicas_in_sync}"
        )

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = input_context.get_per_replica_batch_size(global_batch_size)
        return build_dataset(config, split, per_replica, input_context=input_context)

    return strategy.distribute_datasets_from_function(dataset_fn)
