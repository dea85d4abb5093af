"""Video data for DVD-GAN (issue 4): built-in synthetic actions, TFDS sets, folders.

  synthetic     procedural (shape, motion) clips, uint8 [N, T, H, W, 3]
  tfds_builder  `SyntheticActions`, the same clips as a TFDS builder
  folder        `DIR/<class>/*.mp4` decoded once into a cached TFDS dataset
  pipeline      `build_dataset` -> (float32 [B, T, H, W, 3] in [-1, 1], int32 [B])

The TFDS builder module is imported lazily (by `pipeline` for
"tfds:synthetic_actions"), so importing this package registers nothing.
"""

from dvdgan_tf.data.folder import FolderReport, prepare_folder, read_clip
from dvdgan_tf.data.pipeline import (
    VALID_NAMES,
    build_dataset,
    class_names,
    distribute_dataset,
    num_examples,
    resize_and_crop,
)
from dvdgan_tf.data.synthetic import (
    CLASS_NAMES,
    NUM_CLASSES,
    make_clips,
    render_clip,
    render_indexed,
)

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "VALID_NAMES",
    "FolderReport",
    "build_dataset",
    "class_names",
    "distribute_dataset",
    "make_clips",
    "num_examples",
    "prepare_folder",
    "read_clip",
    "render_clip",
    "render_indexed",
    "resize_and_crop",
]
