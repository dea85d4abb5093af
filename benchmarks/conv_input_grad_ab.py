"""Interleaved A/B timing of `runtime.conv_input_grad` ("forward" vs "native").

Runs the benchmark's train-step measurement (`python -m dvdgan_tf.benchmark`'s
`train` worker, each in its own subprocess, XLA off) for every config and mode in
turn, `--rounds` times, the order of the modes reversed every other round, so that
a machine whose speed drifts during the run weighs on both modes alike. Prints
each measurement and the per-mode medians; `--out` writes them as JSON.

  python benchmarks/conv_input_grad_ab.py --configs=configs/synthetic_actions_cpu.py \
      --rounds=4 --steps=10 --out=benchmarks/cpu_2core_amd_epyc_avx2_conv_input_grad.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from dvdgan_tf import benchmark


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default=benchmark.DEFAULT_CONFIG, help="comma list")
    p.add_argument("--modes", default="forward,native", help="conv_input_grad values")
    p.add_argument("--rounds", type=int, default=4, help="measurements per mode")
    p.add_argument("--steps", type=int, default=10, help="timed steps each")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps each")
    p.add_argument("--out", default="", help="write the measurements as JSON here")
    a = p.parse_args(argv)
    a.configs, a.modes = a.configs.split(","), a.modes.split(",")
    return a


def main(argv=None):
    a = _args(argv)
    runs = []
    for r in range(a.rounds):
        for config in a.configs:
            modes = a.modes if r % 2 == 0 else a.modes[::-1]
            for mode in modes:
                spec = {"task": "train", "config": config, "xla": False,
                        "steps": a.steps, "warmup": a.warmup,
                        "conv_input_grad": mode}  # fmt: skip
                res = benchmark._spawn(spec, timeout=3600)
                if "error" in res:
                    sys.exit(f"{config} {mode}: {res['error']}")
                kinds = {k: v / 1e9 for k, v in res["flops"]["by_kind"].items()}
                runs.append({"round": r, "config": config, "mode": mode,
                             "step_s": res["step_s"], "times_s": res["step_times_s"],
                             "gflop_by_kind": kinds,
                             "peak_rss_mib": res["peak_rss_mib"]})  # fmt: skip
                print(f"round {r} {config} {mode}: {res['step_s']:.3f} s/step, "
                      f"RSS {res['peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
    summary = {}
    for config in a.configs:
        for mode in a.modes:
            times = [
                x["step_s"] for x in runs if (x["config"], x["mode"]) == (config, mode)
            ]
            summary[f"{config} {mode}"] = statistics.median(times)
            print(f"{config} {mode}: median {statistics.median(times):.3f} s over "
                  f"{len(times)} ({', '.join(f'{t:.3f}' for t in times)})")  # fmt: skip
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"runs": runs, "median_step_s": summary}, f, indent=1)


if __name__ == "__main__":
    main()
