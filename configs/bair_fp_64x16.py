"""DVD-GAN-FP on BAIR robot pushing: 1 frame in, 15 predicted, 64x64 (paper FVD 109.8).

Future prediction (paper v2, section 4.2): G's frame encoder reads the first frame
of a real 16-frame clip and G predicts the next 15; both discriminators judge all 16
frames. BAIR has no classes: model.num_classes = 1 and the pipeline labels every
clip 0, so the class embeddings reduce to one learned vector each. Data: the TFDS
set `bair_robot_pushing_small` (image_main, 30-frame clips; a random 16-frame
window), which must be prepared beforehand (README, "Future prediction"). Paper
set-up otherwise as the generation configs: batch 512, Adam G 1e-4 / D 5e-4, 2 D
steps per G step, EMA 0.9999 from step 20k; up to 1M steps for prediction.

  python -m dvdgan_tf.train --config=configs/bair_fp_64x16.py --workdir=/tmp/bair_fp \\
      --config.data.data_dir=/path/to/tensorflow_datasets --strategy=tpu --tpu=$TPU_NAME

The CPU variant is `:runlocal` (16x16, 1 frame in, 4 predicted, tiny widths; still
reads the prepared BAIR data):

  python -m dvdgan_tf.train --config=configs/bair_fp_64x16.py:runlocal \\
      --workdir=/tmp/smoke --config.data.data_dir=/path/to/tensorflow_datasets

Samples (real vs predicted), evaluation (FVD of predicted against real
continuations) and export (`predict` signature): README, "Future prediction".
"""

from dvdgan_tf import config_lib


def get_config(arg: str | None = None):
    c = config_lib.base_config()
    c.model.resolution = 64
    c.model.conditioning_frames = 1  # Paper: 1 conditioning frame on BAIR.
    c.model.num_frames = 15  # T: frames predicted.
    c.model.num_classes = 1  # Unlabelled: every clip has label 0.
    c.data.name = "bair_robot_pushing_small"
    c.data.frame_stride = 1
    c.train.num_steps = 1_000_000  # Paper: up to 1M steps for prediction.
    return config_lib.finish(c, arg)
