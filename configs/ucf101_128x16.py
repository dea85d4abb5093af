"""UCF-101, 16 frames at 128x128, class-conditional (paper IS 32.97).

Paper setting (DVD-GAN v2, section 4): batch 512 on a TPU pod, ~300k steps, Adam
G 1e-4 / D 5e-4, 2 D steps per G step, EMA 0.9999 from step 20k.

  python -m dvdgan_tf.train --config=configs/ucf101_128x16.py --workdir=/tmp/ucf101_128x16 \
      --strategy=tpu --tpu=$TPU_NAME
  python -m dvdgan_tf.train --config=configs/ucf101_128x16.py:runlocal --workdir=/tmp/smoke

Expected (paper, not reproducible on a CPU): see the README's comparison table.
"""

from dvdgan_tf import config_lib


def get_config(arg: str | None = None):
    c = config_lib.base_config()
    c.model.resolution = 128
    c.model.num_frames = 16
    c.model.num_classes = 101
    c.data.name = "ucf101"
    c.data.frame_stride = 1
    return config_lib.finish(c, arg)
