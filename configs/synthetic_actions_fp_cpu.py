"""DVD-GAN-FP on the built-in dataset: 4 frames in, 8 predicted, 32x32, on a CPU.

The default CPU config (`synthetic_actions_cpu.py`: widths, batch, learning rates,
EMA) turned into future prediction (paper v2, section 4.2): clips of 12 frames, G's
frame encoder reads the first 4 and G predicts the next 8; both discriminators
judge all 12. The class (shape and motion) is visible in the conditioning frames,
so a good prediction keeps it.

  python -m dvdgan_tf.train --config=configs/synthetic_actions_fp_cpu.py \\
      --workdir=workdirs/synthetic_actions_fp_cpu
  python -m dvdgan_tf.train --config=configs/synthetic_actions_fp_cpu.py:runlocal \\
      --workdir=/tmp/smoke  # 16x16, 2 frames in, 4 predicted, seconds

In-training samples and evaluation of FP runs are not implemented yet
(train.sample_every = eval.every = 0).
"""

import os

from dvdgan_tf import config_lib


def get_config(arg: str | None = None):
    parent = os.path.join(os.path.dirname(__file__), "synthetic_actions_cpu.py")
    c = config_lib.load_config(parent)
    c.unlock()
    c.model.conditioning_frames = 4
    c.model.num_frames = 8  # T: frames predicted; clips are 4 + 8 frames.
    c.train.sample_every = 0  # FP samples: coming in the next step.
    c.eval.every = 0  # FP evaluation: coming in the next step.
    return config_lib.finish(c, arg)
