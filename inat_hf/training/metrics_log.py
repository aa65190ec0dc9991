"""``training_metrics.csv`` (one row per log event) and ``training_curves.png``, written during training."""

from __future__ import annotations

import csv
import os
import time

from transformers import TrainerCallback

from ..files import atomic_write

# then lr_<group>, one per optimizer group with weight decay
CSV_COLUMNS = ("epoch", "step", "kind", "train_loss", "eval_loss", "eval_top1", "eval_top3", "eval_top5")
CSV_COLUMNS += ("images_per_second", "grad_norm")
METRICS_FILE = "training_metrics.csv"
CURVES_FILE = "training_curves.png"


class TrainingMetricsCallback(TrainerCallback):
    """One CSV row per log event; the curves are drawn at the end of training and after the final evaluation.

    ``kind`` is ``train``, ``eval`` or ``final_eval`` (the evaluation after training of the model that is saved:
    the restored best checkpoint, or the EMA). ``images_per_second`` is the training throughput since the previous
    training log, all processes together, over whole steps with data loading; evaluation and save time is left out.
    ``lr_<group>`` is every weight-decay group's LR as ``InatTrainer.log`` reports it (0 while a stage is frozen).

    A resumed run first cuts the file back to the checkpoint's step: the replayed steps log those rows again.
    """

    def __init__(self, output_dir: str, images_per_step: int):
        self.path = os.path.join(output_dir, METRICS_FILE)
        self.curves_path = os.path.join(output_dir, CURVES_FILE)
        self.images_per_step = images_per_step
        self._columns: list[str] | None = None
        self._tick: float | None = None  # end of the previous step; None after a pause (evaluation, save)
        self._window = [0.0, 0]  # seconds and steps since the last training log
        self._training_done = False

    def on_train_begin(self, args, state, control, **kwargs):
        self._tick, self._window, self._training_done = time.perf_counter(), [0.0, 0], False
        if state.is_world_process_zero and os.path.isfile(self.path):
            if state.global_step:
                truncate_metrics(self.path, state.global_step)
            else:
                os.remove(self.path)  # a fresh run in an old output dir

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._tick is not None:
            self._window = [self._window[0] + now - self._tick, self._window[1] + 1]
        self._tick = now

    def _pause(self, *args, **kwargs):
        self._tick = None  # the interval to the next step's end would include this pause: not counted

    on_evaluate = on_save = _pause

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero or not ({"loss", "eval_loss"} & set(logs)):
            return
        kind = "train" if "loss" in logs else ("final_eval" if self._training_done else "eval")
        row = {k: logs.get(k) for k in ("eval_loss", "eval_top1", "eval_top3", "eval_top5", "grad_norm")}
        row |= {"epoch": round(state.epoch or 0.0, 4), "step": state.global_step, "kind": kind}
        if kind == "final_eval":  # the saved model: the restored best checkpoint, drawn where it was evaluated
            row["epoch"] = _saved_epoch(args, state, row["epoch"])
        row |= {"train_loss": logs.get("loss")} | {k: v for k, v in logs.items() if k.startswith("lr_")}
        if kind == "train":
            seconds, steps = self._window
            if steps and seconds > 0:
                row["images_per_second"] = round(steps * self.images_per_step / seconds, 2)
            self._window = [0.0, 0]
        if self._columns is None:
            if os.path.isfile(self.path):
                with open(self.path, newline="") as f:
                    self._columns = next(csv.reader(f), None)
            if not self._columns:
                self._columns = [*CSV_COLUMNS, *(k for k in row if k.startswith("lr_"))]
                with open(self.path, "w", newline="") as f:
                    csv.writer(f).writerow(self._columns)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore").writerow(row)
        if kind == "final_eval":
            plot_training_curves(self.path, self.curves_path)  # again, with the final evaluation marked

    def on_train_end(self, args, state, control, **kwargs):
        self._training_done = True
        if state.is_world_process_zero and os.path.isfile(self.path):
            plot_training_curves(self.path, self.curves_path)


def _saved_epoch(args, state, last_epoch: float) -> float:
    """The epoch of the weights that were saved: the best checkpoint's with ``load_best_model_at_end``, else the
    last one."""
    best = state.best_global_step if args.load_best_model_at_end else None
    epochs = [e["epoch"] for e in state.log_history if e.get("step") == best and "epoch" in e]
    return round(epochs[0], 4) if epochs else last_epoch


def truncate_metrics(path: str, global_step: int) -> None:
    """Keep the header and the rows of ``path`` up to ``global_step`` (atomically); a final evaluation's row goes
    too (the resumed run has not finished)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    step = header.index("step")
    kind = header.index("kind") if "kind" in header else None  # (files written before the column existed)
    kept = [
        r
        for r in body
        if len(r) > step and r[step] and int(float(r[step])) <= global_step
        and (kind is None or len(r) <= kind or r[kind] != "final_eval")
    ]  # fmt: skip
    with atomic_write(path, newline="") as f:
        csv.writer(f).writerows([header, *kept])


def plot_training_curves(csv_path: str, png_path: str) -> None:
    """Loss, top-k accuracy and learning rates against epochs, from ``training_metrics.csv``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    final = df["kind"].eq("final_eval") if "kind" in df else pd.Series(False, index=df.index)
    train = df[df["train_loss"].notna()]
    evals, finals = df[df["eval_loss"].notna() & ~final], df[df["eval_loss"].notna() & final]
    star = dict(marker="*", linestyle="", markersize=12)
    fig, (loss, accuracy, lr) = plt.subplots(1, 3, figsize=(15, 4))
    loss.plot(train["epoch"], train["train_loss"], label="train")
    loss.plot(evals["epoch"], evals["eval_loss"], "o-", label="eval")
    loss.plot(finals["epoch"], finals["eval_loss"], **star, label="saved model")
    for col in (f"eval_top{k}" for k in (1, 3, 5)):
        if col in evals and evals[col].notna().any():
            (line,) = accuracy.plot(evals["epoch"], evals[col], "o-", label=f"top-{col[-1]}")
            final_label = f"top-{col[-1]}, saved model" if len(finals) else None
            accuracy.plot(finals["epoch"], finals[col], **star, color=line.get_color(), label=final_label)
    lr_columns = [c for c in df.columns if c.startswith("lr_")]
    for col in lr_columns:
        lr.plot(df.loc[df[col].notna(), "epoch"], df.loc[df[col].notna(), col], label=col[3:])
    lr_max = df[lr_columns].max().max() if lr_columns else 1
    lr.set_yscale("symlog", linthresh=max(float(lr_max), 1e-12) * 1e-3)  # log scale that still shows 0
    loss.set(title="loss", xlabel="epoch")
    accuracy.set(title="eval accuracy", xlabel="epoch", ylim=(0, 1))
    lr.set(title="learning rate (0 = frozen)", xlabel="epoch")
    for ax in (loss, accuracy, lr):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
