"""Trainer callbacks: the training-metrics CSV and curves, complete-checkpoint markers."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..inference.files import atomic_write

logger = logging.get_logger(__name__)

COMPLETE_MARKER = "inat_hf_checkpoint_complete.json"


# ---------------------------------------------------------------------------------------------- metrics CSV
CSV_COLUMNS = (
    "epoch",
    "step",
    "kind",
    "train_loss",
    "eval_loss",
    "eval_top1",
    "eval_top3",
    "eval_top5",
    "images_per_second",
    "grad_norm",
)
METRICS_FILE = "training_metrics.csv"
CURVES_FILE = "training_curves.png"


class TrainingMetricsCallback(TrainerCallback):
    """Writes ``training_metrics.csv`` (one row per log event) and ``training_curves.png`` at the end.

    Columns: epoch, step, kind (``train``, ``eval``, or ``final_eval``: the evaluation after training of the model
    that is saved -- the restored best checkpoint with ``load_best_model_at_end``, the EMA weights with EMA), train_loss,
    eval_loss, eval_top1/3/5, images_per_second (training throughput since the previous training log, all processes
    together, over whole steps with data loading; the time of evaluations and checkpoint saves is left out), grad_norm,
    then ``lr_<group>`` for every optimizer parameter group that has weight decay (its ``_no_decay`` twin has the same
    LR), as ``InatTrainer.log`` reports them: a stage that is frozen at the time shows an effective LR of 0.

    A resumed run first cuts the file back to the checkpoint's step: the rows logged after it are logged again by
    the replayed steps, and would otherwise appear twice (in the CSV and in the curves drawn from it).
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
        if not state.is_world_process_zero or not os.path.isfile(self.path):
            return
        if state.global_step == 0:
            os.remove(self.path)  # a fresh run in an old output dir
        else:
            truncate_metrics(self.path, state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._tick is not None:
            self._window[0] += now - self._tick
            self._window[1] += 1
        self._tick = now

    def _pause(self, *args, **kwargs):
        self._tick = None  # the interval to the next step's end would include this pause: not counted

    on_evaluate = on_save = _pause

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero or not ({"loss", "eval_loss"} & set(logs)):
            return
        kind = "train" if "loss" in logs else ("final_eval" if self._training_done else "eval")
        row = {
            "epoch": round(state.epoch or 0.0, 4),
            "step": state.global_step,
            "kind": kind,
            "train_loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "eval_top1": logs.get("eval_top1"),
            "eval_top3": logs.get("eval_top3"),
            "eval_top5": logs.get("eval_top5"),
            "grad_norm": logs.get("grad_norm"),
        }
        if kind == "train":
            seconds, steps = self._window
            if steps and seconds > 0:
                row["images_per_second"] = round(steps * self.images_per_step / seconds, 2)
            self._window = [0.0, 0]
        lrs = {k: v for k, v in logs.items() if k.startswith("lr_")}
        if self._columns is None:
            existing = None
            if os.path.isfile(self.path):
                with open(self.path, newline="") as f:
                    existing = next(csv.reader(f), None)
            self._columns = existing or [*CSV_COLUMNS, *lrs]
            if existing is None:
                with open(self.path, "w", newline="") as f:
                    csv.writer(f).writerow(self._columns)
        row.update(lrs)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore").writerow(row)
        if kind == "final_eval":
            plot_training_curves(self.path, self.curves_path)  # again, with the final evaluation marked

    def on_train_end(self, args, state, control, **kwargs):
        self._training_done = True
        if state.is_world_process_zero and os.path.isfile(self.path):
            plot_training_curves(self.path, self.curves_path)


def truncate_metrics(path: str, global_step: int) -> None:
    """Keep the header and the rows of ``path`` up to ``global_step`` (atomically)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    step = header.index("step")
    kept = [r for r in body if len(r) > step and r[step] and int(float(r[step])) <= global_step]
    with atomic_write(path, newline="") as f:
        csv.writer(f).writerows([header, *kept])


def plot_training_curves(csv_path: str, png_path: str) -> None:
    """Loss, top-k accuracy and learning rates against epochs, from ``training_metrics.csv``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    final = df["kind"].eq("final_eval") if "kind" in df else pd.Series(False, index=df.index)
    train = df[df["train_loss"].notna()]
    evals, finals = df[df["eval_loss"].notna() & ~final], df[df["eval_loss"].notna() & final]
    axes[0].plot(train["epoch"], train["train_loss"], label="train")
    axes[0].plot(evals["epoch"], evals["eval_loss"], "o-", label="eval")
    axes[0].plot(finals["epoch"], finals["eval_loss"], "*", markersize=12, label="final (saved model)")
    axes[0].set(title="loss", xlabel="epoch")
    for k in (1, 3, 5):
        col = f"eval_top{k}"
        if col in evals and evals[col].notna().any():
            (line,) = axes[1].plot(evals["epoch"], evals[col], "o-", label=f"top-{k}")
            axes[1].plot(
                finals["epoch"],
                finals[col],
                "*",
                markersize=12,
                color=line.get_color(),
                label=f"top-{k}, final (saved model)" if len(finals) else None,
            )
    axes[1].set(title="eval accuracy", xlabel="epoch", ylim=(0, 1))
    lr_columns = [c for c in df.columns if c.startswith("lr_")]
    for col in lr_columns:
        rows = df[df[col].notna()]
        axes[2].plot(rows["epoch"], rows[col], label=col[3:])
    axes[2].set(title="learning rate (0 = frozen)", xlabel="epoch")
    lr_max = df[lr_columns].max().max() if lr_columns else 1
    axes[2].set_yscale("symlog", linthresh=max(float(lr_max), 1e-12) * 1e-3)  # log scale that still shows 0
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- checkpoints
def checkpoint_steps(output_dir: str) -> list[int]:
    """Steps of the ``checkpoint-N`` folders in ``output_dir``, complete or not, in increasing order."""
    if not os.path.isdir(output_dir):
        return []
    steps = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append(int(match.group(1)))
    return sorted(steps)


def mark_checkpoint_complete(folder: str, global_step: int, epoch: float | None) -> None:
    """Write the completion marker of a checkpoint: the LAST file written into it (temp file + fsync + rename),
    so a folder without the marker is one that a kill or a full disk interrupted."""
    tmp = os.path.join(folder, COMPLETE_MARKER + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"global_step": global_step, "epoch": epoch}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, COMPLETE_MARKER))


def rotate_checkpoints(output_dir: str, save_total_limit: int | None, best_model_checkpoint: str | None) -> list[str]:
    """Delete old checkpoints, called once the newest one is complete; returns the folders deleted.

    transformers' rule (keep the newest ``save_total_limit``, never deleting the newest or the best one), applied
    to *complete* checkpoints only, so the last complete checkpoint is never deleted before the next one is
    complete. Incomplete folders older than the newest complete checkpoint (left by a kill mid-save) can never be
    resumed from and are deleted too.
    """
    if save_total_limit is None or save_total_limit <= 0:
        return []
    folder = {
        step: os.path.normpath(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}"))
        for step in checkpoint_steps(output_dir)
    }
    complete = [step for step, path in folder.items() if os.path.isfile(os.path.join(path, COMPLETE_MARKER))]
    if not complete:
        return []
    ordered = [folder[step] for step in complete]
    protected = {ordered[-1]}  # the newest complete one, to resume from
    if best_model_checkpoint:
        protected.add(os.path.normpath(best_model_checkpoint))
    keep = max(save_total_limit, len(protected & set(ordered)))
    doomed = [path for path in ordered if path not in protected][: max(0, len(ordered) - keep)]
    doomed += [path for step, path in folder.items() if step < complete[-1] and step not in complete]
    for path in doomed:
        logger.info(f"Deleting older checkpoint {path} (save_total_limit={save_total_limit})")
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written completely, or None."""
    folders = [os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}") for step in checkpoint_steps(output_dir)]
    complete = [f for f in folders if os.path.isfile(os.path.join(f, COMPLETE_MARKER))]
    return complete[-1] if complete else None


# ---------------------------------------------------------------------------------------------- EMA
EMA_FILE = "ema.safetensors"


class EmaCallback(TrainerCallback):
    """Exponential moving average of the weights (timm ``ModelEmaV3``), updated after every optimizer step.

    ``InatTrainer`` evaluates with the EMA weights and the run's final model is the EMA (of the best checkpoint
    when ``load_best_model_at_end``). Checkpoints keep the raw weights — resuming must continue the raw
    trajectory — plus ``ema.safetensors`` (written by ``InatTrainer`` before the completion marker), which a
    resume loads back. Every rank updates its own EMA from identical weights, so the EMAs stay identical too.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.ema = ModelEmaV3(model, decay=decay)  # a copy on the model's device

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.ema.module.state_dict().items()}

    def load(self, path: str) -> None:
        self.ema.module.load_state_dict(load_file(path, device=str(next(self.ema.module.parameters()).device)))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def save(self, folder: str) -> None:
        save_file(self.state_dict(), os.path.join(folder, EMA_FILE))


# ---------------------------------------------------------------------------------------------- replicas
def replica_checksums(model: nn.Module) -> list[float]:
    """Per-rank checksum of all parameters and buffers (one float64 per process; a single entry when not
    distributed). Equal entries mean the ranks hold identical weights."""
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for i, tensor in enumerate(list(model.parameters()) + list(model.buffers())):
            # position-weighted: a permutation of equal tensors still changes the sum
            total += (i + 1) * tensor.detach().double().sum().cpu()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [total.item()]
    device = next(model.parameters()).device
    gathered = [torch.zeros((), dtype=torch.float64, device=device) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, total.to(device))
    return [t.item() for t in gathered]


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics), as DDP does before each forward.

    DDP (``broadcast_buffers=True``) syncs buffers at the *start* of a forward, so after the last training step each
    rank still holds the statistics of its own last batch; rank 0's are the ones that get saved.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer.data, src=0)
