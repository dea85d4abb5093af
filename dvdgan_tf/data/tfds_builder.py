"""TFDS builder for the built-in synthetic-actions dataset (issue 4, item 1).

`SyntheticActions` ("synthetic_actions") prepares entirely offline from
`synthetic.render_indexed`: no download, no manual files. The default config is
64x64, 16 frames, 12000 train and 1200 test clips; other sizes come from a
`SyntheticActionsConfig` (tests build a tiny one into a tmp data_dir):

  builder = SyntheticActions(data_dir=d, config=SyntheticActionsConfig(
      name="tiny", resolution=16, num_frames=4, num_train_examples=24))
  builder.download_and_prepare()

Features: video uint8 [T, H, W, 3] (lossless PNG frames), label
ClassLabel(names=synthetic.CLASS_NAMES). Train is stream 0 of `seed` (the same clips
as `synthetic.make_clips`), test is stream 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from dvdgan_tf.data import synthetic

_RENDER_CHUNK = 256  # Clips rendered per vectorised call while generating.


@dataclasses.dataclass
class SyntheticActionsConfig(tfds.core.BuilderConfig):
    """Size of a prepared synthetic-actions dataset."""

    resolution: int = 64
    num_frames: int = 16
    num_train_examples: int = 12_000
    num_test_examples: int = 1_200
    seed: int = 0


class SyntheticActions(tfds.core.GeneratorBasedBuilder):
    """Procedurally rendered (shape, motion) action clips; see `synthetic`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 12 (shape, motion) classes."}
    BUILDER_CONFIGS = [
        SyntheticActionsConfig(
            name="default",
            description="64x64, 16 frames, 12000 train / 1200 test clips.",
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        return self.dataset_info_from_configs(
            description=(
                "Synthetic actions: one shape moving over a grey background; "
                "a class is a (shape, motion) pair."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(
                        (c.num_frames, c.resolution, c.resolution, 3),
                        encoding_format="png",
                    ),
                    "label": tfds.features.ClassLabel(names=synthetic.CLASS_NAMES),
                }
            ),
            supervised_keys=("video", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Everything is rendered locally.
        c = self.builder_config
        return {
            "train": self._generate_examples(c.num_train_examples, stream=0),
            "test": self._generate_examples(c.num_test_examples, stream=1),
        }

    def _generate_examples(self, num: int, stream: int):
        c = self.builder_config
        for start in range(0, num, _RENDER_CHUNK):
            indices = np.arange(start, min(start + _RENDER_CHUNK, num))
            videos, labels = synthetic.render_indexed(
                indices, c.num_frames, c.resolution, c.seed, stream
            )
            for i, video, label in zip(indices, videos, labels):
                yield int(i), {"video": video, "label": int(label)}
