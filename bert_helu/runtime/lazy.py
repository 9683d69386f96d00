"""Names a package exports without importing them until first use: ``import bert_helu.data`` (a
corpus cache hit, say) must not pay for loading torch and transformers."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, **modules: str):
    """``(__getattr__, __all__)`` of ``package``, which exports the names of each of its modules
    given as ``module="name name ..."`` (a module of a subpackage as ``"sub.module"`` in a dict)."""
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)
