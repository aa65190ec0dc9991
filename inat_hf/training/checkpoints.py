"""Checkpoints that are either complete or ignored: the completion marker, rotation, resume and a full disk.

transformers' ``Trainer._save_checkpoint`` is not atomic: a kill or a full disk mid-save leaves a ``checkpoint-N``
folder that looks resumable. ``InatTrainer`` writes :data:`COMPLETE_MARKER` last, resumes only from marked folders
and rotates old checkpoints only once the new one is marked.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..files import disk_full_text

logger = logging.get_logger(__name__)

COMPLETE_MARKER = "inat_hf_checkpoint_complete.json"


def checkpoint_steps(output_dir: str) -> list[int]:
    """Steps of the ``checkpoint-N`` folders in ``output_dir``, complete or not, in increasing order."""
    if not os.path.isdir(output_dir):
        return []
    names = (re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", n) for n in os.listdir(output_dir))
    return sorted(int(m.group(1)) for m in names if m and os.path.isdir(os.path.join(output_dir, m.group(0))))


def _complete(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, COMPLETE_MARKER))


def mark_checkpoint_complete(folder: str, global_step: int, epoch: float | None) -> None:
    """The LAST file written into a checkpoint (temp file + fsync + rename): a folder without it was interrupted."""
    tmp = os.path.join(folder, COMPLETE_MARKER + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"global_step": global_step, "epoch": epoch}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, COMPLETE_MARKER))


def latest_complete_checkpoint(output_dir: str) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` that was written completely, or None."""
    folders = [os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}") for step in checkpoint_steps(output_dir)]
    complete = [f for f in folders if _complete(f)]
    return complete[-1] if complete else None


def rotate_checkpoints(output_dir: str, save_total_limit: int | None, best_model_checkpoint: str | None) -> list[str]:
    """Delete old checkpoints once the newest one is complete; returns the folders deleted.

    transformers' rule (keep the newest ``save_total_limit``, never the newest or the best one) over *complete*
    checkpoints only, so the last complete one outlives the next one's save. Incomplete folders older than the newest
    complete checkpoint (left by a kill mid-save) can never be resumed from and are deleted too.
    """
    if save_total_limit is None or save_total_limit <= 0:
        return []
    folder = {s: os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{s}") for s in checkpoint_steps(output_dir)}
    complete = [step for step, path in folder.items() if _complete(path)]
    if not complete:
        return []
    ordered = [folder[step] for step in complete]
    protected = {ordered[-1]}  # the newest complete one, to resume from
    if best_model_checkpoint:
        protected |= {p for p in ordered if os.path.normpath(p) == os.path.normpath(best_model_checkpoint)}
    keep = max(save_total_limit, len(protected))
    doomed = [path for path in ordered if path not in protected][: max(0, len(ordered) - keep)]
    doomed += [path for step, path in folder.items() if step < complete[-1] and step not in complete]
    for path in doomed:
        logger.info(f"Deleting older checkpoint {path} (save_total_limit={save_total_limit})")
        shutil.rmtree(path, ignore_errors=True)
    return doomed


class CheckpointError(ValueError):
    """``resume_from_checkpoint`` names something that cannot be resumed from (the message says what and why)."""


def resolve_resume(value: str | None, output_dir: str) -> str | None:
    """``latest``/``true`` → the newest *complete* checkpoint in ``output_dir`` (none: start from scratch); a path must
    be a checkpoint folder (``trainer_state.json``), else :class:`CheckpointError` saying what it is instead."""
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() in ("latest", "true"):
        found = latest_complete_checkpoint(output_dir)
        if found is None:
            logger.warning(f"No complete checkpoint in {output_dir}: starting from scratch.")
        else:
            logger.info(f"Resuming from {found}")
        return found
    expected = "expected a checkpoint-N folder written by train.py (with trainer_state.json), or 'latest'"
    if not os.path.exists(value):
        raise CheckpointError(f"resume_from_checkpoint: no such checkpoint directory: {value}; {expected}.")
    if not os.path.isdir(value):
        raise CheckpointError(f"resume_from_checkpoint: {value} is a file, not a folder; {expected}.")
    if not os.path.isfile(os.path.join(value, TRAINER_STATE_NAME)):
        newest = latest_complete_checkpoint(value)
        if newest:  # a run's output folder
            found = f"a run folder, not a checkpoint: its newest complete checkpoint is {newest}"
        elif os.listdir(value):
            found = f"not a checkpoint: it has no {TRAINER_STATE_NAME}"
        else:
            found = "an empty folder"
        raise CheckpointError(f"resume_from_checkpoint: {value} is {found}; {expected}.")
    return value


class CheckpointDiskFullError(OSError):
    """The disk filled up while a checkpoint was being written."""


def disk_full_error(run_dir: str, folder: str) -> CheckpointDiskFullError:
    """What the user reads when ``folder`` (already removed) could not be written: where, what is kept, what next."""
    kept = latest_complete_checkpoint(run_dir)
    kept = f"the last complete checkpoint {kept} is kept" if kept else "no complete checkpoint exists yet"
    return CheckpointDiskFullError(
        errno.ENOSPC,
        f"{disk_full_text(run_dir)} while writing checkpoint {folder}. The incomplete checkpoint was removed; "
        f"{kept}. Free some space (or lower save_total_limit, or choose another output_dir) and rerun with "
        "--resume_from_checkpoint latest.",
    )
