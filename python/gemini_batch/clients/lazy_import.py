"""Importing one part of a large client library without running its package's ``__init__``.

google.cloud.aiplatform_v1's ``__init__`` imports every service and message type of
Vertex AI, 65 MB where the Job Service needs 7 (they are the ``__lazy_modules__`` it
declares, which Python 3.15 would leave unimported). A build with everything cached
never talks to Vertex AI, so its client is imported where a job is touched, and only
the part asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_lock = threading.Lock()


def _install_lazy_package(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__``: a
    submodule asked for is imported on its own; any other attribute (``__all__``, a
    name the package re-exports) runs the real ``__init__`` first, so other code in the
    process sees the whole package as usual. A package already imported is left as it is.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        importlib.import_module(name)  # not a package we know: the usual import, or its error
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    state = {"loaded": False}
    load_lock = threading.Lock()

    def lazy_attribute(attribute: str) -> object:
        if not attribute.startswith("__") and importlib.util.find_spec(
            f"{name}.{attribute}"
        ) is not None:
            return importlib.import_module(f"{name}.{attribute}")
        with load_lock:
            if not state["loaded"]:
                state["loaded"] = True
                loader.exec_module(package)
        if attribute in package.__dict__:
            return package.__dict__[attribute]
        raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

    package.__getattr__ = lazy_attribute  # type: ignore[method-assign]
    sys.modules[name] = package


def import_part(module: str, *lazy_packages: str) -> ModuleType:
    """``module`` imported with ``lazy_packages`` (its parents, outermost first) left
    uninitialised until something asks them for more than a submodule."""
    with _lock:
        for package in lazy_packages:
            _install_lazy_package(package)
    return importlib.import_module(module)


__all__ = ["import_part"]
