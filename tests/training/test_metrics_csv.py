"""training_metrics.csv: throughput per window without evaluation/save pauses; the final evaluation is marked."""

from types import SimpleNamespace
from unittest import mock

import pandas as pd
from transformers import TrainerControl, TrainerState

from inat_hf.training.metrics_log import CURVES_FILE, METRICS_FILE, TrainingMetricsCallback

ARGS = SimpleNamespace(load_best_model_at_end=False)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_throughput_leaves_out_pauses_and_final_evaluation_is_marked(tmp_path):
    clock, state, control = _Clock(), TrainerState(), TrainerControl()
    callback = TrainingMetricsCallback(str(tmp_path), images_per_step=8)
    with mock.patch("inat_hf.training.metrics_log.time.perf_counter", clock):
        callback.on_train_begin(None, state, control)

        def steps(n, seconds_each):
            for _ in range(n):
                clock.now += seconds_each
                state.global_step += 1
                callback.on_step_end(None, state, control)

        steps(4, 0.5)  # 4 steps x 8 images in 2 s: 16 images/s
        state.epoch = 1.0
        callback.on_log(ARGS, state, control, logs={"loss": 1.0, "lr_head": 0.1})
        clock.now += 30  # a long evaluation
        callback.on_evaluate(None, state, control)
        callback.on_log(ARGS, state, control, logs={"eval_loss": 0.9, "eval_top1": 0.5})
        steps(1, 0.25)  # this interval holds the end of the evaluation: not counted
        steps(2, 0.25)  # 2 steps x 8 images in 0.5 s: 32 images/s
        callback.on_log(ARGS, state, control, logs={"loss": 0.8, "lr_head": 0.1})
        callback.on_train_end(None, state, control)
        callback.on_log(ARGS, state, control, logs={"eval_loss": 0.85, "eval_top1": 0.55})

    df = pd.read_csv(tmp_path / METRICS_FILE)
    assert df["kind"].tolist() == ["train", "eval", "train", "final_eval"]
    assert df["images_per_second"].tolist()[0] == 16.0 and df["images_per_second"].tolist()[2] == 32.0
    assert df.loc[df["kind"] == "final_eval", "eval_top1"].item() == 0.55
    assert (tmp_path / CURVES_FILE).is_file()


def test_the_star_marks_the_epoch_that_was_saved(tmp_path):
    """With load_best_model_at_end the saved model is the best checkpoint (epoch 1 here), not the last epoch."""
    state, control, args = TrainerState(), TrainerControl(), SimpleNamespace(load_best_model_at_end=True)
    callback = TrainingMetricsCallback(str(tmp_path), images_per_step=8)
    callback.on_train_begin(args, state, control)
    for epoch, top1 in ((1, 0.6), (2, 0.4)):
        state.global_step, state.epoch = 4 * epoch, float(epoch)
        logs = {"eval_loss": 1.0, "eval_top1": top1, "epoch": float(epoch), "step": state.global_step}
        state.log_history.append(logs)
        callback.on_log(args, state, control, logs=logs)
    state.best_global_step = 4
    callback.on_train_end(args, state, control)
    callback.on_log(args, state, control, logs={"eval_loss": 1.0, "eval_top1": 0.6})

    df = pd.read_csv(tmp_path / METRICS_FILE)
    assert df.loc[df["kind"] == "final_eval", "epoch"].item() == 1.0
    callback.on_train_begin(args, state, control)  # a resume: the run has not finished, the final row goes
    assert "final_eval" not in pd.read_csv(tmp_path / METRICS_FILE)["kind"].tolist()
