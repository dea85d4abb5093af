"""Kinetics-600, 12 frames at 128x128 (paper FID 2.16, IS 55.09).

Paper setting (DVD-GAN v2, section 4): batch 512 on a TPU pod, ~300k steps, Adam
G 1e-4 / D 5e-4, 2 D steps per G step, EMA 0.9999 from step 20k. Kinetics frames are taken with stride 2.

  python -m dvdgan_tf.train --config=configs/kinetics600_128x12.py --workdir=/tmp/kinetics600_128x12 \
      --strategy=tpu --tpu=$TPU_NAME
  python -m dvdgan_tf.train --config=configs/kinetics600_128x12.py:runlocal --workdir=/tmp/smoke

Expected (paper, not reproducible on a CPU): see the README's comparison table.
"""

from dvdgan_tf import config_lib


def get_config(arg: str | None = None):
    c = config_lib.base_config()
    c.model.resolution = 128
    c.model.num_frames = 12
    c.model.num_classes = 600
    c.data.name = "kinetics600"
    c.data.frame_stride = 2
    return config_lib.finish(c, arg)
