"""InatTrainer end to end on the tiny demo data: outputs, unfreezing, early stopping, NaN, TTA, round trip."""

import csv
import json
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, pipeline

from inat_hf.data import load_prepared
from inat_hf.data.array_preset import eval_kwargs_from_image_processor
from inat_hf.data.transforms import EvalPreset, TTAPreset
from inat_hf.inference.tta import tta_logits
from inat_hf.models.losses import focal_loss
from inat_hf.training.metrics_log import CSV_COLUMNS
from inat_hf.training.recipe import parse_recipe
from inat_hf.training.run import run_training
from inat_hf.training.unfreezing import ProgressiveUnfreezingCallback

# Training only: no evaluation, no checkpoints (the tests below look at the training steps).
NO_EVAL_NO_SAVE = ("--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_strategy", "no")


def train(recipe_path, *overrides):
    return run_training(parse_recipe([str(recipe_path), *overrides]))


def _manual_eval(model, split, preset, tta: bool):
    """Top-1 and the training objective over a split, computed outside the Trainer."""
    model = model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for row in split:
            x = preset(row["image"])[None]
            logits.append(tta_logits(model, x) if tta else model(x).logits)
            labels.append(row["label"])
    logits, labels = torch.cat(logits), torch.tensor(labels)
    c = model.config
    loss = focal_loss(logits, labels, gamma=c.focal_gamma, alpha=c.focal_alpha, label_smoothing=c.label_smoothing)
    return float((logits.argmax(-1) == labels).float().mean()), float(loss)


def test_train_save_reload_predict_round_trip(write_recipe, prepared_demo):
    run = train(write_recipe(), "--per_device_eval_batch_size", "5")  # 16 val images: batches 5, 5, 5, 1
    out = run.output_dir
    names = {p.name for p in __import__("pathlib").Path(out).iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "run_config.yaml",
        "training_metrics.csv",
        "training_curves.png",
        "modeling_inat.py",
    } <= names
    assert "eval_top5" in run.metrics and "train_loss" in run.metrics
    # the reported top-1 and eval_loss are those of the final model on every validation image
    val = load_prepared(prepared_demo).dataset["val"]
    preset = EvalPreset(**eval_kwargs_from_image_processor(run.trainer.processing_class))
    top1, loss = _manual_eval(run.trainer.model, val, preset, tta=False)
    assert run.metrics["eval_top1"] == pytest.approx(top1, abs=1e-6)
    assert run.metrics["eval_loss"] == pytest.approx(loss, rel=1e-4)

    # drop_last is for training batches only: evaluation sees every validation image
    assert run.trainer.predict(run.trainer.eval_dataset).label_ids.shape == (16,)

    # training_metrics.csv: the documented columns, LR per stage group, train and eval rows
    with open(f"{out}/training_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0])
    assert columns[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert {"lr_head", "lr_attention", "lr_layer4", "lr_layer3"} <= set(columns)
    assert any(r["train_loss"] for r in rows) and any(r["eval_top1"] for r in rows)
    epoch0 = [r for r in rows if r["train_loss"] and float(r["epoch"]) < 1]
    assert epoch0 and all(float(r["lr_layer4"]) == 0.0 for r in epoch0)  # frozen in epoch 0: effective LR 0
    epoch1 = [r for r in rows if r["train_loss"] and 1 < float(r["epoch"]) < 2]
    assert epoch1 and all(float(r["lr_layer4"]) > 0 for r in epoch1)  # unfrozen at epoch 1

    # from_pretrained through the Auto classes, then predict on a validation image like the pipeline does
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    assert model.config.num_labels == 8 and model.config.taxonomy["rank"] == "species"
    assert model.config.id2label[0] == "Parus major"
    val = load_prepared(prepared_demo).dataset["val"]
    image = val[0]["image"]
    pixel_values = EvalPreset(image_size=32, crop_pct=model.config.crop_pct, interpolation=model.config.interpolation)(
        image
    )
    with torch.no_grad():
        logits = model(pixel_values[None]).logits
    classifier = pipeline("image-classification", model=out)
    top = classifier(image, top_k=1)[0]
    assert top["label"] == model.config.id2label[int(logits.argmax())]

    # the saved weights are the ones the trainer ended with (best model restored)
    saved = load_file(f"{out}/model.safetensors")
    final = run.trainer.model.state_dict()
    assert all(torch.equal(saved[k], final[k]) for k in saved)


def test_unfreezing_schedule_toggles_exactly_the_named_stages():
    cb = ProgressiveUnfreezingCallback(
        ["stem", "layer1", "layer2", "layer3", "layer4"], {"layer4": 1, "layer3": 2, "layer2": 3}
    )
    assert cb.permanently_frozen == ("stem", "layer1")
    state = types.SimpleNamespace(epoch=0.0)
    expected = {
        0.0: {"stem", "layer1", "layer2", "layer3", "layer4"},
        0.99: {"stem", "layer1", "layer2", "layer3", "layer4"},
        1.0: {"stem", "layer1", "layer2", "layer3"},
        2.0: {"stem", "layer1", "layer2"},
        2.5: {"stem", "layer1", "layer2"},  # resumed mid-epoch 2
        3.0: {"stem", "layer1"},
        7.0: {"stem", "layer1"},
    }
    for epoch, frozen in expected.items():
        state.epoch = epoch
        cb.on_epoch_begin(None, state, None)
        assert cb.frozen == frozen, epoch
    with pytest.raises(ValueError, match=r"unfreeze schedule names stages \['head'\] that are not frozen"):
        ProgressiveUnfreezingCallback(["layer4"], {"head": 1})


def _backbone_state(model, stages):
    names = [n for stage_names in model.stage_parameter_names(stages).values() for n in stage_names]
    state = model.state_dict()
    prefixes = tuple(n.rsplit(".", 1)[0] for n in names)
    # parameters and the BN buffers (running mean/var) of those modules
    return {k: v.clone() for k, v in state.items() if k.startswith(prefixes)}


def test_frozen_stages_keep_weights_and_bn_statistics(write_recipe):
    recipe = parse_recipe(
        [
            str(write_recipe()),
            "--num_train_epochs",
            "1",
            "--unfreeze_schedule",
            "layer4:5",
            "--eval_strategy",
            "no",
            "--load_best_model_at_end",
            "false",
        ]
    )
    from inat_hf.training import run as run_module

    captured = {}
    original = run_module.build_model

    def build_and_capture(*args, **kwargs):
        model = original(*args, **kwargs)
        captured["before"] = _backbone_state(model, ["stem", "layer1", "layer2", "layer3", "layer4"])
        captured["head"] = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
        return model

    run_module.build_model = build_and_capture
    try:
        result = run_training(recipe)
    finally:
        run_module.build_model = original
    model = result.trainer.model
    after = _backbone_state(model, ["stem", "layer1", "layer2", "layer3", "layer4"])
    assert any("running_mean" in k for k in after)
    for key, value in captured["before"].items():
        assert torch.equal(value, after[key]), f"frozen tensor changed: {key}"
    head_now = model.state_dict()
    assert any(not torch.equal(v, head_now[k]) for k, v in captured["head"].items()), "the head did not train"


def test_early_stopping_stops_and_tensorboard_logs(write_recipe):
    # with an impossible improvement threshold, every evaluation after the first counts as "no improvement"
    run = train(
        write_recipe(),
        "--num_train_epochs",
        "6",
        "--early_stopping_patience",
        "1",
        "--early_stopping_threshold",
        "10",
        "--report_to",
        "tensorboard",
    )
    assert run.trainer.state.epoch == pytest.approx(2.0)
    with open(f"{run.output_dir}/trainer_state.json") as f:
        assert json.load(f)["epoch"] == pytest.approx(2.0)
    assert list(__import__("pathlib").Path(run.output_dir, "runs").rglob("events.out.tfevents.*"))


def test_nan_loss_stops_with_an_error_naming_the_step(write_recipe, monkeypatch, tmp_path):
    from inat_hf.models import modeling_inat

    original = modeling_inat.focal_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(modeling_inat, "focal_loss", poisoned)
    with pytest.raises(FloatingPointError, match=r"training loss is nan \(not finite\) at step 3\b"):
        train(write_recipe(), "--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_steps", "2",
              "--save_strategy", "steps")  # fmt: skip
    # stopped at the next logging step (4), before its checkpoint: no checkpoint holds NaN weights
    assert sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*")) == ["checkpoint-2"]


def test_evaluation_with_tta(write_recipe, prepared_demo):
    run = train(
        write_recipe(),
        "--num_train_epochs",
        "1",
        "--eval_tta_views",
        "3",
        "--save_strategy",
        "no",
        "--load_best_model_at_end",
        "false",
    )
    val = load_prepared(prepared_demo).dataset["val"]
    kwargs = eval_kwargs_from_image_processor(run.trainer.processing_class)
    top1, loss = _manual_eval(run.trainer.model, val, TTAPreset(num_views=3, **kwargs), tta=True)
    plain_top1, plain_loss = _manual_eval(run.trainer.model, val, EvalPreset(**kwargs), tta=False)
    # evaluation used the 3 views (their averaged probabilities), and eval_loss is the training objective on them
    assert run.metrics["eval_top1"] == pytest.approx(top1, abs=1e-6)
    assert run.metrics["eval_loss"] == pytest.approx(loss, rel=2e-6)
    # after one epoch the views still disagree by more than that tolerance: one view could not pass the check
    assert abs(loss - plain_loss) > 5 * 2e-6 * loss


def test_tta_eval_loss_is_the_training_objective(tmp_path):
    """eval_loss means one thing: with V identical views the TTA loss equals the single-view (focal) loss."""
    from inat_hf import InatConfig, InatForImageClassification
    from inat_hf.training.recipe import InatTrainingArguments
    from inat_hf.training.trainer import InatTrainer

    torch.manual_seed(0)
    config = InatConfig(backbone="resnet10t", head_hidden_sizes=[8], num_labels=5, image_size=32, focal_gamma=2.0)
    model = InatForImageClassification(config).eval()
    args = InatTrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        frozen_stages=[],
        unfreeze_schedule="",
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
    )
    trainer = InatTrainer(model=model, args=args)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 4])
    views = x[:, None].expand(4, 3, 3, 32, 32).contiguous()
    loss, logits, labels = trainer.prediction_step(model, {"pixel_values": views, "labels": y}, False)
    with torch.no_grad():
        expected = model(x, labels=y).loss
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_drop_last_drops_training_batches_only(tmp_path):
    """Guard for transformers applying `dataloader_drop_last` to every loader: evaluation and prediction still see
    every item, training gets only full batches."""
    from inat_hf import InatConfig, InatForImageClassification
    from inat_hf.training.recipe import InatTrainingArguments
    from inat_hf.training.trainer import InatTrainer

    model = InatForImageClassification(InatConfig(backbone="resnet10t", num_labels=3, image_size=32))
    args = InatTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to=[], frozen_stages=[], unfreeze_schedule="",
        per_device_train_batch_size=2, per_device_eval_batch_size=2, dataloader_drop_last=True,
        dataloader_num_workers=0,
    )  # fmt: skip
    items = [{"pixel_values": torch.zeros(3, 32, 32), "labels": i % 3} for i in range(5)]
    trainer = InatTrainer(model=model, args=args, train_dataset=items, eval_dataset=items)
    assert len(trainer.get_train_dataloader()) == 2
    assert len(trainer.get_eval_dataloader()) == 3
    assert len(trainer.get_test_dataloader(items)) == 3
    assert trainer.args.dataloader_drop_last  # restored


def test_logged_learning_rate_is_the_classifiers_and_every_group_is_logged(write_recipe):
    run = train(
        write_recipe(),
        "--backbone_learning_rate",
        "1e-3",
        *NO_EVAL_NO_SAVE,
    )
    logs = [entry for entry in run.trainer.state.log_history if "learning_rate" in entry]
    assert logs
    for entry in logs:
        assert entry["learning_rate"] == entry["lr_head"] == entry["lr_attention"]
        assert {"lr_layer4", "lr_layer3"} <= set(entry)
    epoch0 = [e for e in logs if e["epoch"] < 1]
    epoch1 = [e for e in logs if e["epoch"] > 1]
    assert all(e["lr_layer4"] == 0.0 for e in epoch0)  # frozen: effective LR 0
    assert all(0 < e["lr_layer4"] < e["learning_rate"] for e in epoch1)  # backbone LR 1e-3 < classifier 3e-3


def test_no_host_sync_in_the_training_step(write_recipe, monkeypatch):
    """The non-finite-loss guard must not read the loss back every step (a GPU pipeline stall): no .item(),
    bool() or float() of a tensor inside the training step; the check happens once per logging step."""
    from inat_hf.training.trainer import InatTrainer

    inside, syncs = {"on": False}, []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            if inside["on"]:
                syncs.append(name)
            return original(self, *args, **kwargs)

        return wrapper

    for name in ("item", "__bool__", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    original_step = InatTrainer.training_step

    def step(self, *args, **kwargs):
        inside["on"] = True
        try:
            return original_step(self, *args, **kwargs)
        finally:
            inside["on"] = False

    monkeypatch.setattr(InatTrainer, "training_step", step)
    run = train(
        write_recipe(),
        "--num_train_epochs",
        "1",
        *NO_EVAL_NO_SAVE,
    )
    assert run.trainer.state.global_step == 4
    assert syncs == []


def test_label_mismatch_with_a_checkpoint_is_an_error_before_training(write_recipe, tmp_path):
    from inat_hf import InatConfig, InatForImageClassification

    other = tmp_path / "other"
    InatForImageClassification(
        InatConfig(backbone="resnet10t", head_hidden_sizes=[16], num_labels=3, image_size=32)
    ).save_pretrained(other)
    with pytest.raises(
        ValueError, match=r"has 3 labels and the dataset 8, and they differ .*--ignore_mismatched_sizes true"
    ):
        train(write_recipe(), "--init_checkpoint", str(other))
    # with the flag, a new classifier is created for the 8 labels and training runs
    run = train(
        write_recipe(),
        "--init_checkpoint",
        str(other),
        "--ignore_mismatched_sizes",
        "true",
        "--num_train_epochs",
        "1",
        *NO_EVAL_NO_SAVE,
    )
    assert run.trainer.model.config.num_labels == 8


def test_unlabeled_split_cannot_be_trained_on(write_recipe):
    with pytest.raises(ValueError, match=r"split 'public_test' has unlabeled images \(label -1"):
        train(write_recipe(), "--train_split", "public_test")
    with pytest.raises(
        ValueError,
        match=r"split 'test' not found in .*; available: train, val, public_test",
    ):
        train(write_recipe(), "--eval_split", "test")


def test_ema_is_evaluated_and_becomes_the_final_model(write_recipe):
    run = train(write_recipe(), "--ema_decay", "0.5", "--num_train_epochs", "2")
    best = run.trainer.state.best_model_checkpoint
    assert best is not None
    ema = load_file(f"{best}/ema.safetensors")
    raw = load_file(f"{best}/model.safetensors")
    final = load_file(f"{run.output_dir}/model.safetensors")
    assert all(torch.equal(final[k], ema[k]) for k in final)  # the final model is the best checkpoint's EMA
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)  # which differs from its raw weights
    assert np.isfinite(run.metrics["eval_loss"])
