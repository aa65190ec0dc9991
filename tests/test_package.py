"""`import inat_hf` is light and has no import hook; `import inat_hf.models` registers the Auto classes.

Each case runs in a fresh interpreter: what is imported, and in which order, is the point.
"""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_inat_hf_imports_neither_torch_nor_transformers():
    out = _python(
        """
        import sys
        heavy = ("torch", "transformers", "timm", "torchvision")
        import inat_hf, inat_hf.data
        print(sorted(m for m in heavy if m in sys.modules))
        # The commands parse with transformers' HfArgumentParser (no torch); the rest loads after parsing.
        import inat_hf.commands.prepare, inat_hf.commands.predict, inat_hf.commands.evaluate
        import inat_hf.commands.train_geo, inat_hf.commands.app
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out.splitlines() == ["[]", "['transformers']"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from inat_hf.models import InatConfig, InatForImageClassification

    path = tmp_path_factory.mktemp("ckpt")
    config = InatConfig(backbone="resnet10t", num_labels=3, head_hidden_sizes=[], image_size=32)
    model = InatForImageClassification(config)
    model.save_pretrained(path)
    model.create_image_processor().save_pretrained(path)
    return path


@pytest.mark.parametrize(
    "order",
    [
        "import inat_hf.models\nfrom transformers import AutoModelForImageClassification",
        "from transformers import AutoModelForImageClassification\nimport inat_hf.models",
        "import inat_hf\nfrom transformers import Trainer, AutoModelForImageClassification\nimport inat_hf.models",
        "from inat_hf.models import InatForImageClassification\nfrom transformers import AutoModelForImageClassification",
    ],
    ids=["models-first", "transformers-first", "trainer-first", "from-import"],
)
def test_auto_classes_resolve_inat_checkpoints_after_import_inat_hf_models(order, tiny_checkpoint):
    out = _python(
        order
        + f"""
model = AutoModelForImageClassification.from_pretrained({str(tiny_checkpoint)!r})
print(type(model).__name__, type(model).__module__)
"""
    )
    assert out.strip() == "InatForImageClassification inat_hf.models.modeling_inat"


def test_no_import_magic(tiny_checkpoint):
    """``import inat_hf`` registers nothing and hooks nothing: transformers is untouched until inat_hf.models is
    imported; a checkpoint still loads without inat_hf through its ``auto_map`` (trust_remote_code)."""
    out = _python(
        f"""
        import sys
        import inat_hf
        from transformers import AutoConfig, AutoModelForImageClassification, Trainer
        hooks = [f for f in sys.meta_path if type(f).__module__.startswith("inat_hf")]
        print(hooks == [], "inat_hf.models" in sys.modules, "timm" in sys.modules)
        try:
            AutoConfig.for_model("inat")
        except ValueError:
            print("not registered")
        model = AutoModelForImageClassification.from_pretrained({str(tiny_checkpoint)!r}, trust_remote_code=True)
        print(type(model).__name__, "inat_hf.models" in sys.modules)
        """
    )
    assert out.splitlines() == ["True False False", "not registered", "InatForImageClassification False"]


def test_library_loaders_register_what_they_load(tiny_checkpoint):
    """The library's own loaders (predict.py, evaluate.py, app.py) need no import from their caller."""
    out = _python(
        f"""
        from inat_hf.inference.predictor import Predictor
        print(type(Predictor.from_pretrained({str(tiny_checkpoint)!r}).model).__name__)
        """
    )
    assert out.strip() == "InatForImageClassification"


def test_pipeline_after_import_inat_hf_models(tiny_checkpoint):
    out = _python(
        f"""
        import inat_hf.models
        from PIL import Image
        from transformers import pipeline
        result = pipeline("image-classification", model={str(tiny_checkpoint)!r})(Image.new("RGB", (40, 40)))
        print(len(result), type(result[0]["score"]).__name__)
        """
    )
    assert out.strip() == "3 float"


def test_lazy_attributes():
    out = _python(
        """
        import sys
        import inat_hf
        print("torch" in sys.modules, inat_hf.InatConfig.model_type, inat_hf.InatForImageClassification.__name__)
        try:
            inat_hf.nope
        except AttributeError as err:
            print("AttributeError", err)
        """
    )
    assert out.splitlines() == [
        "False inat InatForImageClassification",
        "AttributeError module 'inat_hf' has no attribute 'nope'",
    ]


def test_preparing_data_never_imports_torch(demo_root, tmp_path):
    """The whole prepare command, run for real on the demo data, in a process that must not load torch."""
    out = _python(
        f"""
        import sys
        from inat_hf.commands.prepare import main
        code = main(["--data_dir", {str(demo_root)!r}, "--output_dir", {str(tmp_path / "out")!r},
                     "--cache_dir", {str(tmp_path / "cache")!r}, "--preprocessing_num_workers", "1"])
        print("exit", code, "torch" in sys.modules)
        """
    )
    assert out.strip().splitlines()[-1] == "exit 0 False"
