"""The self-contained architecture source shipped in a bioimage.io package.

bioimage.io tools rebuild a ``pytorch_state_dict`` model by importing one Python file
and calling a function in it. That file must not need napari-unet-studio, so it carries
the network's own modules: :mod:`core.model` and every ``core`` module it imports at
the top (config, decoders, and whatever the engine adds), verbatim, each as a string.
At import the file serves them to Python's import system under a private package name
(``unet_studio_arch_<sha>.core.*``), so their relative imports work unchanged and the
rebuilt network is exactly the one this installation trains and predicts with.

Only torch, numpy and the standard library are needed to import it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

__all__ = ["CALLABLE", "FILE_NAME", "architecture_source", "core_modules"]

CALLABLE = "build_unet"
FILE_NAME = "unet_studio_architecture.py"

_CORE = Path(__file__).resolve().parent.parent / "core"

_TEMPLATE = '''"""U-Net of napari-unet-studio {version}: the architecture of this package.

``{callable}(**kwargs)`` builds the network; ``kwargs`` are the ``ModelConfig`` fields
listed under ``weights.pytorch_state_dict.architecture.kwargs`` in ``rdf.yaml``.

The network's modules from napari_unet_studio/core ({names}) are kept verbatim
in ``SOURCES`` and imported as the private package ``{package}``: the network
rebuilt here is the one the plugin trained. Needs torch and numpy only.
"""

import importlib
import importlib.abc
import importlib.util
import sys

PACKAGE = "{package}"

SOURCES = {{
{sources}
}}


class _SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``SOURCES`` (and the two package levels) to the import system."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in (PACKAGE, PACKAGE + ".core"):
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if fullname.startswith(PACKAGE + ".core.") and fullname.rsplit(".", 1)[1] in SOURCES:
            return importlib.util.spec_from_loader(fullname, self, is_package=False)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        if name in (PACKAGE, PACKAGE + ".core"):
            module.__path__ = []
            return
        code = compile(SOURCES[name.rsplit(".", 1)[1]], name.replace(".", "/") + ".py", "exec")
        exec(code, module.__dict__)


if not any(isinstance(f, _SourceFinder) and getattr(f, "package", None) == PACKAGE
           for f in sys.meta_path):
    _finder = _SourceFinder()
    _finder.package = PACKAGE
    sys.meta_path.append(_finder)


def {callable}(**kwargs):
    """Build the U-Net (random weights) from the ``ModelConfig`` fields ``kwargs``."""
    model = importlib.import_module(PACKAGE + ".core.model")
    return model.build_model(dict(kwargs))
'''


def _relative_imports(source: str) -> list[str]:
    """Names of the sibling modules a core module imports at its top level."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            names.append(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            raise ValueError("the network's modules import from outside napari_unet_studio/core")
    return names


def core_modules(root: str = "model") -> dict[str, str]:
    """Source of ``core/<root>.py`` and of every core module it imports, transitively.

    Returns
    -------
    dict of str to str
        Module name (``"model"``, ``"config"``...) to its source text, sorted by name.
    """
    found: dict[str, str] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _CORE / f"{name}.py"
        if not path.is_file():
            raise ValueError(f"core module {name!r} is not a single file; cannot ship it")
        found[name] = path.read_text(encoding="utf-8")
        todo.extend(_relative_imports(found[name]))
    return dict(sorted(found.items()))


def _literal(text: str) -> str:
    """A readable string literal of ``text`` (a raw triple-quoted one where possible)."""
    if "'''" not in text and not text.endswith("\\") and "\r" not in text:
        return "r'''" + text + "'''"
    return repr(text)


def architecture_source(version: str = "") -> str:
    """The text of the architecture file (see the module docstring).

    Parameters
    ----------
    version : str
        napari-unet-studio version written in the file's docstring.
    """
    modules = core_modules()
    digest = hashlib.sha256(
        "\0".join(f"{k}\0{v}" for k, v in modules.items()).encode("utf-8")).hexdigest()
    package = f"unet_studio_arch_{digest[:16]}"
    sources = "\n".join(f"    {name!r}: {_literal(text)}," for name, text in modules.items())
    return _TEMPLATE.format(version=version, callable=CALLABLE, names=", ".join(modules),
                            package=package, sources=sources)
