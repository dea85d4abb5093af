"""DVD-GAN-FP on Kinetics-600: 5 frames in, 11 predicted, 64x64 (paper FVD 69.1).

Future prediction (paper v2, section 4.2): G's frame encoder reads the first 5 frames
of a real 16-frame clip and G predicts the next 11; both discriminators judge all 16
frames. No frame skipping (frame_stride 1; the generation configs use 2). Data as
the other Kinetics configs: a folder of clips at
<data.data_dir>/kinetics600/<split>/<class>/*.mp4. Class-conditional as the
generation configs (the labels are there; our paper notes do not say whether
DVD-GAN-FP used them). Paper set-up otherwise: batch 512, Adam G 1e-4 / D 5e-4,
2 D steps per G step, EMA 0.9999 from step 20k; up to 1M steps for prediction.

  python -m dvdgan_tf.train --config=configs/kinetics600_fp_64x16.py \\
      --workdir=/tmp/kinetics600_fp --config.data.data_dir=/path/to/data \\
      --strategy=tpu --tpu=$TPU_NAME

The CPU variant is `:runlocal` (16x16, 2 frames in, 4 predicted, tiny widths; still
reads the Kinetics folder):

  python -m dvdgan_tf.train --config=configs/kinetics600_fp_64x16.py:runlocal \\
      --workdir=/tmp/smoke --config.data.data_dir=/path/to/data

Samples (real vs predicted), evaluation (FVD of predicted against real
continuations) and export (`predict` signature): README, "Future prediction".
"""

from dvdgan_tf import config_lib


def get_config(arg: str | None = None):
    c = config_lib.base_config()
    c.model.resolution = 64
    c.model.conditioning_frames = 5  # Paper: 5 conditioning frames on Kinetics-600.
    c.model.num_frames = 11  # T: frames predicted.
    c.model.num_classes = 600
    c.data.name = "kinetics600"
    c.data.frame_stride = 1  # Paper: no frame skipping for prediction.
    c.train.num_steps = 1_000_000  # Paper: up to 1M steps for prediction.
    return config_lib.finish(c, arg)
