"""Trainer callbacks: progressive unfreezing, the training-metrics CSV and curves, complete-checkpoint markers."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file
from timm.utils import ModelEmaV3
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

logger = logging.get_logger(__name__)

COMPLETE_MARKER = "inat_hf_checkpoint_complete.json"


# ---------------------------------------------------------------------------------------------- unfreezing
class ProgressiveUnfreezingCallback(TrainerCallback):
    """Unfreeze the model's named stages by epoch (seed recipe: layer4 at epoch 1, layer3 at 2, layer2 at 3).

    A frozen stage keeps its weights *and* its batch-norm statistics: its norm layers are put back in eval mode
    before every training forward (``Trainer.training_step`` calls ``model.train()`` each step, so setting
    ``requires_grad=False`` alone would still update the running means).

    Correct under DDP by construction. DDP decides at wrap time which parameters it synchronises; flipping
    ``requires_grad`` afterwards leaves the newly trainable parameters un-synchronised and the ranks drift apart
    silently. So:

    * stages frozen for the *whole* run get ``requires_grad=False`` in :meth:`setup`, before the model is wrapped
      (no backward through them: that is where freezing saves compute);
    * stages that unfreeze later keep ``requires_grad=True`` from the start, so DDP reduces their gradients on
      every rank; while frozen, the Trainer drops those gradients after backward (:meth:`discard_frozen_grads`),
      so AdamW neither moves them nor builds up moment estimates for them (it skips parameters whose grad is None).

    Unfreezing is then only "stop discarding", decided from ``state.epoch``, which every rank shares.
    """

    def __init__(self, frozen_stages: Sequence[str], schedule: Mapping[str, int]):
        unknown = sorted(set(schedule) - set(frozen_stages))
        if unknown:
            raise ValueError(f"unfreeze schedule names stages {unknown} that are not frozen ({list(frozen_stages)}).")
        self.initially_frozen = tuple(frozen_stages)
        self.schedule = dict(schedule)
        self.frozen: set[str] = set(frozen_stages)
        self._stage_params: dict[str, list[nn.Parameter]] = {}
        self._stage_norms: dict[str, list[nn.Module]] = {}

    @property
    def permanently_frozen(self) -> tuple[str, ...]:
        return tuple(s for s in self.initially_frozen if s not in self.schedule)

    def setup(self, model: nn.Module) -> None:
        """Call once, before the model is wrapped for distributed training."""
        for stage in self.initially_frozen:
            self._stage_params[stage] = model.stage_parameters([stage])[stage]
            modules = model.stage_modules([stage])[stage]
            self._stage_norms[stage] = [
                m for root in modules for m in root.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
            ]
        for stage in self.permanently_frozen:
            for param in self._stage_params[stage]:
                param.requires_grad_(False)

    def frozen_at(self, epoch: int) -> set[str]:
        return {s for s in self.initially_frozen if s not in self.schedule or self.schedule[s] > epoch}

    def _update(self, epoch: float) -> None:
        current = math.floor(epoch + 1e-9)
        frozen = self.frozen_at(current)
        if frozen != self.frozen:
            opened = sorted(self.frozen - frozen, key=self.initially_frozen.index)
            still = [s for s in self.initially_frozen if s in frozen]
            logger.info(
                f"Epoch {current}: unfreezing {', '.join(opened)} (still frozen: {', '.join(still) or 'none'})"
            )
        self.frozen = frozen

    def on_train_begin(self, args, state, control, **kwargs):
        self._update(state.epoch or 0.0)  # on resume, state.epoch comes from the checkpoint

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._update(state.epoch or 0.0)

    def prepare_step(self) -> None:
        """Before a training forward: frozen stages' norm layers to eval mode (their statistics stay put)."""
        for stage in self.frozen:
            for module in self._stage_norms[stage]:
                module.eval()

    def discard_frozen_grads(self) -> None:
        """After backward: forget the (already all-reduced) gradients of temporarily frozen stages."""
        for stage in self.frozen:
            for param in self._stage_params[stage]:
                param.grad = None


# ---------------------------------------------------------------------------------------------- metrics CSV
CSV_COLUMNS = (
    "epoch",
    "step",
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

    Columns: epoch, step, train_loss, eval_loss, eval_top1/3/5, images_per_second (training throughput since the
    previous training log, all processes together), grad_norm, then ``lr_<group>`` for every optimizer parameter
    group that has weight decay (its ``_no_decay`` twin has the same LR); a stage that is frozen at the time shows
    an effective LR of 0.
    """

    def __init__(self, output_dir: str, images_per_step: int, unfreezing: ProgressiveUnfreezingCallback | None = None):
        self.unfreezing = unfreezing  # frozen stages are logged with an effective LR of 0
        self.path = os.path.join(output_dir, METRICS_FILE)
        self.curves_path = os.path.join(output_dir, CURVES_FILE)
        self.images_per_step = images_per_step
        self._columns: list[str] | None = None
        self._last: tuple[float, int] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), state.global_step)
        if state.is_world_process_zero and os.path.isfile(self.path) and state.global_step == 0:
            os.remove(self.path)  # a fresh run in an old output dir; a resumed run appends

    def on_log(self, args, state, control, logs=None, optimizer=None, **kwargs):
        logs = logs or {}
        if not state.is_world_process_zero or not ({"loss", "eval_loss"} & set(logs)):
            return
        row = {
            "epoch": round(state.epoch or 0.0, 4),
            "step": state.global_step,
            "train_loss": logs.get("loss"),
            "eval_loss": logs.get("eval_loss"),
            "eval_top1": logs.get("eval_top1"),
            "eval_top3": logs.get("eval_top3"),
            "eval_top5": logs.get("eval_top5"),
            "grad_norm": logs.get("grad_norm"),
        }
        if "loss" in logs and self._last is not None:
            now = time.perf_counter()
            then, step = self._last
            if state.global_step > step and now > then:
                row["images_per_second"] = round((state.global_step - step) * self.images_per_step / (now - then), 2)
            self._last = (now, state.global_step)
        lrs = {}
        if optimizer is not None:
            for i, group in enumerate(optimizer.param_groups):
                name = group.get("name", str(i))
                if not name.endswith("_no_decay"):
                    frozen = self.unfreezing is not None and name in self.unfreezing.frozen
                    lrs[f"lr_{name}"] = 0.0 if frozen else group["lr"]
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

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and os.path.isfile(self.path):
            plot_training_curves(self.path, self.curves_path)


def plot_training_curves(csv_path: str, png_path: str) -> None:
    """Loss, top-k accuracy and learning rates against epochs, from ``training_metrics.csv``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    train, evals = df[df["train_loss"].notna()], df[df["eval_loss"].notna()]
    axes[0].plot(train["epoch"], train["train_loss"], label="train")
    axes[0].plot(evals["epoch"], evals["eval_loss"], "o-", label="eval")
    axes[0].set(title="loss", xlabel="epoch")
    for k in (1, 3, 5):
        col = f"eval_top{k}"
        if col in evals and evals[col].notna().any():
            axes[1].plot(evals["epoch"], evals[col], "o-", label=f"top-{k}")
    axes[1].set(title="eval accuracy", xlabel="epoch", ylim=(0, 1))
    for col in [c for c in df.columns if c.startswith("lr_")]:
        rows = df[df[col].notna()]
        axes[2].plot(rows["epoch"], rows[col], label=col[3:])
    axes[2].set(title="learning rate (0 = frozen)", xlabel="epoch")
    lr_max = (
        df[[c for c in df.columns if c.startswith("lr_")]].max().max() if any(df.columns.str.startswith("lr_")) else 1
    )
    axes[2].set_yscale("symlog", linthresh=max(float(lr_max), 1e-12) * 1e-3)  # log scale that still shows 0
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- checkpoints
class CompleteCheckpointCallback(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it.

    ``on_save`` fires after ``Trainer._save_checkpoint`` returns (model, optimizer, scheduler, RNG and trainer
    state are on disk); the marker is written atomically (temp file + rename). A process killed mid-write leaves
    a folder without marker, which :func:`latest_complete_checkpoint` skips.
    """

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if os.path.isdir(folder):
            tmp = os.path.join(folder, COMPLETE_MARKER + ".tmp")
            with open(tmp, "w") as f:
                json.dump({"global_step": state.global_step, "epoch": state.epoch}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(folder, COMPLETE_MARKER))


def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written completely, or None."""
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", name)
        if match and os.path.isfile(os.path.join(output_dir, name, COMPLETE_MARKER)):
            steps.append(int(match.group(1)))
    return os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{max(steps)}") if steps else None


# ---------------------------------------------------------------------------------------------- EMA
EMA_FILE = "ema.safetensors"


class EmaCallback(TrainerCallback):
    """Exponential moving average of the weights (timm ``ModelEmaV3``), updated after every optimizer step.

    ``InatTrainer`` evaluates with the EMA weights and the run's final model is the EMA (of the best checkpoint
    when ``load_best_model_at_end``). Checkpoints keep the raw weights — resuming must continue the raw
    trajectory — plus ``ema.safetensors``, which a resume loads back. Every rank updates its own EMA from
    identical weights, so the EMAs stay identical too.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.ema = ModelEmaV3(model, decay=decay)  # a copy on the model's device

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.contiguous() for k, v in self.ema.module.state_dict().items()}

    def load(self, path: str) -> None:
        self.ema.module.load_state_dict(load_file(path, device=str(next(self.ema.module.parameters()).device)))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update(model, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(folder):
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
