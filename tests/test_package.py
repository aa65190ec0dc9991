"""`import inat_hf` is light, and still registers the model with the Auto classes where they are used.

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
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out.splitlines() == ["[]", "['transformers']"]


@pytest.mark.parametrize(
    "order",
    [
        "import inat_hf\nfrom transformers import AutoConfig, AutoModelForImageClassification",
        "from transformers import AutoConfig, AutoModelForImageClassification\nimport inat_hf",
        "import inat_hf\nfrom transformers import pipeline\nfrom transformers import AutoConfig",
        "import inat_hf.models\nfrom transformers import AutoConfig",
    ],
    ids=["inat_hf-first", "transformers-first", "pipeline", "models-directly"],
)
def test_auto_classes_resolve_inat_checkpoints_after_import_inat_hf(order, tmp_path):
    out = _python(
        order
        + f"""
from inat_hf.models import InatConfig
config = InatConfig(backbone="resnet10t", num_labels=3, head_hidden_sizes=[], image_size=32)
config.save_pretrained({str(tmp_path)!r})
print(type(AutoConfig.from_pretrained({str(tmp_path)!r})).__name__)
"""
    )
    assert out.strip() == "InatConfig"


def test_lazy_attributes():
    out = _python(
        """
        import inat_hf
        print(inat_hf.InatConfig.model_type, inat_hf.data.Taxonomy.__name__)
        try:
            inat_hf.nope
        except AttributeError as err:
            print("AttributeError", err)
        """
    )
    assert out.splitlines() == ["inat Taxonomy", "AttributeError module 'inat_hf' has no attribute 'nope'"]


def test_preparing_data_never_imports_torch(demo_root, tmp_path):
    """The whole prepare command, run for real on the demo data, in a process that must not load torch."""
    out = _python(
        f"""
        import sys
        from inat_hf.commands.prepare import main
        code = main(["--data_dir", {str(demo_root)!r}, "--output_dir", {str(tmp_path / "out")!r},
                     "--cache_dir", {str(tmp_path / "cache")!r}, "--num_workers", "1"])
        print("exit", code, "torch" in sys.modules)
        """
    )
    assert out.strip().splitlines()[-1] == "exit 0 False"
