"""Register the model with transformers' Auto classes once they are imported, not at ``import inat_hf``.

Importing the model classes costs torch + timm + transformers (seconds, ~1 GB), which the command-line tools must
not pay before parsing their arguments and which ``prepare_data.py`` never needs. Every way to the Auto classes
(``from transformers import AutoModelForImageClassification``, ``AutoConfig``, ``pipeline``, ``Trainer``) imports
``transformers.models.auto``; merely importing ``transformers`` (or its ``HfArgumentParser``) does not.

So ``import inat_hf`` puts a small finder on ``sys.meta_path`` that watches the imports of transformers' modules.
The Auto package is often loaded in the middle of another transformers import (``modeling_utils`` → quantizers →
Auto), when registering would hit half-initialised modules; so the finder registers when the *outermost*
transformers import in progress has finished and the Auto package is loaded, by importing :mod:`inat_hf.models`
(whose import registers), and then removes itself. If the Auto package is already loaded when ``inat_hf`` is
imported, the registration happens at once. ``tests/test_package.py`` checks the import orders users write.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading

AUTO_MODULE = "transformers.models.auto"
_nesting = threading.local()  # depth of transformers imports in progress, per thread


def _register() -> None:
    _remove_hook()
    importlib.import_module("inat_hf.models")


def _remove_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _TransformersImportWatcher)]


class _CountingLoader(importlib.abc.Loader):
    """Runs the real loader of a transformers module, counting nesting; registers after the outermost one."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        _nesting.depth = getattr(_nesting, "depth", 0) + 1
        try:
            self._loader.exec_module(module)
        finally:
            _nesting.depth -= 1
        if _nesting.depth == 0 and AUTO_MODULE in sys.modules:
            _register()

    def __getattr__(self, name):  # is_package, get_resource_reader, … of the real loader
        return getattr(self._loader, name)


class _TransformersImportWatcher(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "transformers" and not fullname.startswith("transformers."):
            return None
        for finder in sys.meta_path:  # the spec the other finders would give, with a counting loader
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _CountingLoader(spec.loader)
                return spec
        return None


def register_when_auto_classes_load() -> None:
    if AUTO_MODULE in sys.modules:
        _register()
    elif not any(isinstance(finder, _TransformersImportWatcher) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TransformersImportWatcher())
