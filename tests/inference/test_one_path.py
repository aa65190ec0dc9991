"""One inference path: the Trainer's evaluation, evaluate.py (``evaluate_split``) and predict.py
(``Predictor.predict``, also the web page's) give IDENTICAL top-k on the same images, with TTA and a location prior."""

import datasets
import numpy as np
from transformers import AutoModelForImageClassification, TrainingArguments

from inat_hf.data import load_prepared
from inat_hf.data.collate import ImageClassificationCollator
from inat_hf.data.torch_dataset import ImageClassificationDataset
from inat_hf.geo.fusion import GeoFusion, Location, split_locations
from inat_hf.inference.evaluator import evaluate_split
from inat_hf.inference.predictor import Predictor
from inat_hf.training.trainer import InatTrainer

VIEWS, BATCH, K = 3, 5, 5  # 16 val images: batches of 5, 5, 5, 1


def test_trainer_evaluate_and_predict_give_identical_top_k(trained_model_dir, prepared_demo, demo_prior, tmp_path):
    split = load_prepared(prepared_demo).dataset["val"]
    predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    geo = GeoFusion.from_pretrained(demo_prior, predictor.taxonomy.labels)
    records = split_locations(split, "val split")

    # evaluate.py
    runs = evaluate_split(
        predictor, split, num_views=VIEWS, batch_size=BATCH, k=K, progress=False, geo=geo, locations=records
    ).runs
    evaluate = {name: (runs[run].indices, runs[run].probs) for name, run in (("image", "tta"), ("fused", "fused"))}

    # predict.py: the split's encoded images and their locations as predict.py's inputs
    images = split.cast_column("image", datasets.Image(decode=False))["image"]
    locations = [Location(*row) for row in zip(split["latitude"], split["longitude"], split["date"])]
    predict = {}
    for name, fusion in (("image", {}), ("fused", dict(geo=geo, locations=locations))):
        preds = list(predictor.predict(images, top_k=K, num_views=VIEWS, batch_size=BATCH, **fusion))
        predict[name] = (np.stack([p.indices for p in preds]), np.stack([p.probs for p in preds]))

    # the Trainer's evaluation (InatTrainer(geo=...), as train.py --geo_prior --eval_tta_views 3)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=BATCH,
        report_to=[],
        use_cpu=True,
        dataloader_drop_last=True,
    )
    trainer = InatTrainer(
        model=AutoModelForImageClassification.from_pretrained(trained_model_dir),
        args=args,
        eval_dataset=ImageClassificationDataset(split, predictor.transform(VIEWS)),
        data_collator=ImageClassificationCollator(),
        geo=geo,
        locations=records,
    )
    trainer_runs = trainer.predict(trainer.eval_dataset).predictions  # {run: (indices, probs)}
    assert len(trainer_runs["image"][0]) == len(split) == 16

    for name in ("image", "fused"):
        for other in (predict, {name: trainer_runs[name]}):
            np.testing.assert_array_equal(other[name][0], evaluate[name][0], err_msg=name)
            np.testing.assert_allclose(other[name][1], evaluate[name][1], rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(trainer_runs["prior"][0], runs["geo_prior"].indices)
    np.testing.assert_allclose(trainer_runs["prior"][1], runs["geo_prior"].probs, rtol=0, atol=1e-6)
    # a meaningful comparison: the prior moves the answer, and TTA is not view 0 alone
    assert np.abs(evaluate["fused"][1] - evaluate["image"][1]).max() > 1e-2
    one_view = evaluate_split(predictor, split, batch_size=BATCH, k=K, progress=False).runs["no_tta"]
    assert np.abs(one_view.probs - evaluate["image"][1]).max() > 1e-3
