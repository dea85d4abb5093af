"""One MultiWorkerMirroredStrategy worker (TF_CONFIG from the environment): trains the
given config in WORKDIR, then writes its final weights to OUT.npz."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.disable_traceback_filtering()

from dvdgan_tf import config_lib, runtime, training  # noqa: E402


def main():
    spec, workdir, out = sys.argv[1:4]
    config = config_lib.load_config(spec)
    config.train.d_steps = 2  # the paper's two D steps, each split over the workers
    strategy = runtime.get_strategy("multi_worker")
    gan = training.train(config, workdir, strategy, verbose=0)
    weights = {
        f"{i}:{w.path}": np.asarray(w.value)
        for i, w in enumerate(gan.generator.weights + gan.discriminator_variables)
    }
    weights["step"] = np.asarray(int(gan.g_optimizer.iterations.numpy()))
    np.savez(out, **weights)
    print("replicas", strategy.num_replicas_in_sync)


if __name__ == "__main__":
    main()
