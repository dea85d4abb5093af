"""Learning curves of runs on the built-in dataset: a markdown table and a PNG plot.

  python -m dvdgan_tf.report --workdirs=workdirs/cpu_s0,workdirs/cpu_s1 \
      --out=docs/learning_curve.png

Reads every `WORKDIR/eval/<step>.json` (written by the evaluation callback, config
`eval.every`) and plots the built-in metrics against the run's training time: the
record's `run_seconds` (time spent training, summed over resumes; pauses between a
stop and a resume are not counted). Records written before `run_seconds` existed
fall back to their `wall_time` minus the `config.json` time, which is only right
for a run that was never resumed (a resume rewrites `config.json`). Needs matplotlib
(`pip install -e ".[report]"`).
"""

from __future__ import annotations

import glob
import json
import os

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags():
    """Defined only when run as a program: importing this module beside another
    absl main (benchmark also has --out) must not clash."""
    flags.DEFINE_list("workdirs", None, "Run directories to report.")
    flags.DEFINE_string("out", "learning_curve.png", "PNG path of the plot.")


KEYS = ("builtin/class_accuracy", "builtin/frechet", "builtin/diversity_ratio")

# The class-accuracy targets drawn on the plot: generation (issue 8) asks for 90% of
# samples in the asked class, future prediction (DVD-GAN-FP, issue 7) for 80% of
# predictions keeping the conditioning clip's class.
GENERATION_TARGET = 0.9
PREDICTION_TARGET = 0.8


def class_target(workdir: str) -> float:
    """The class-accuracy target of a run, by its saved config (FP or generation).

    Read with `checkpoints.load_workdir_config`, which maps renamed fields (older FP
    runs saved `conditional_frames`); imported here so `import report` stays TF-free.
    """
    from dvdgan_tf import checkpoints

    model = checkpoints.load_workdir_config(workdir).get("model", {})
    if model.get("conditioning_frames", 0) > 0:
        return PREDICTION_TARGET
    return GENERATION_TARGET


def load_curve(workdir: str) -> list[dict]:
    """[{step, minutes, metrics...}] sorted by step, for one run."""
    start = os.path.getmtime(os.path.join(workdir, "config.json"))
    rows = []
    for path in glob.glob(os.path.join(workdir, "eval", "*.json")):
        with open(path) as f:
            rec = json.load(f)
        if "run_seconds" in rec:
            seconds = rec["run_seconds"]
        else:
            seconds = rec.get("wall_time", os.path.getmtime(path)) - start
        rows.append({"step": rec["step"], "minutes": seconds / 60, **rec["metrics"]})
    return sorted(rows, key=lambda r: r["step"])


RAW = "raw/builtin/class_accuracy"  # Scored when config eval.raw_generator is set.
# The background shades' 25-75% range over the real clips' (low when G draws the shade
# from the class instead of z, BENCHMARKS.md); older records have no such key.
SPREAD = "builtin/background_spread_ratio"


def markdown_table(curves: dict[str, list[dict]]) -> str:
    """One row per evaluation: EMA generator metrics, and the raw G's accuracy.

    The background spread column shows "-" for records that predate the metric.
    """
    lines = [
        "| run | step | minutes | class acc. (raw G) | Fréchet (real-real) "
        "| diversity ratio | background spread ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in curves.items():
        for r in rows:
            raw = f" ({r[RAW]:.3f})" if RAW in r else ""
            spread = f"{r[SPREAD]:.2f}" if SPREAD in r else "-"
            lines.append(
                f"| {name} | {r['step']} | {r['minutes']:.1f} | "
                f"{r['builtin/class_accuracy']:.3f}{raw} | {r['builtin/frechet']:.1f} "
                f"({r['builtin/frechet_real_real']:.1f}) | "
                f"{r['builtin/diversity_ratio']:.2f} | {spread} |"
            )
    return "\n".join(lines)


def plot(
    curves: dict[str, list[dict]], out: str, targets: tuple[float, ...] = ()
) -> None:
    """Class accuracy, Fréchet distance, diversity and background spread ratios
    against minutes (the last panel only for runs whose records have it).

    targets: class-accuracy levels drawn as dashed lines (`class_target` per run).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "the plot needs matplotlib: pip install -e '.[report]'"
        ) from e
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for name, rows in curves.items():
        minutes = [r["minutes"] for r in rows]
        for ax, key in zip(axes, KEYS):
            line = ax.plot(minutes, [r[key] for r in rows], marker="o", label=name)[0]
        spread = [(r["minutes"], r[SPREAD]) for r in rows if SPREAD in r]
        if spread:
            axes[3].plot(*zip(*spread), marker="o", color=line.get_color(), label=name)
        raw = [(r["minutes"], r[RAW]) for r in rows if RAW in r]
        if raw:
            axes[0].plot(
                *zip(*raw), ls=":", color=line.get_color(), label=f"{name} (raw G)"
            )
    for target in sorted(set(targets)):
        axes[0].axhline(target, color="gray", ls="--", lw=0.8)
    axes[0].set_ylabel("asked class recognised")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("Fréchet distance (classifier features)")
    if curves:
        ref = [r["builtin/frechet_real_real"] for rows in curves.values() for r in rows]
        axes[1].axhline(2 * sum(ref) / len(ref), color="gray", ls="--", lw=0.8)
    axes[2].axhline(0.5, color="gray", ls="--", lw=0.8)
    axes[2].set_ylabel("diversity / real diversity")
    axes[3].axhline(1.0, color="gray", ls="--", lw=0.8)
    axes[3].set_ylabel("background shade range / real")
    for ax in axes:
        ax.set_xlabel("wall time (minutes, 2 CPU cores)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)


def main(argv):
    del argv
    curves = {os.path.basename(w.rstrip("/")): load_curve(w) for w in FLAGS.workdirs}
    print(markdown_table(curves))
    plot(curves, FLAGS.out, targets=tuple(class_target(w) for w in FLAGS.workdirs))
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    _define_flags()
    flags.mark_flag_as_required("workdirs")
    app.run(main)
