"""Operators' own Python callables named in settings (``module:function``), imported once and checked."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["load_callable"]


def load_callable(spec: str) -> Callable[..., Any]:
    """The callable ``spec`` names as ``module:function`` (``function`` may be dotted); ValueError saying why not."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{spec!r}: module {module_name!r} cannot be imported: {exc}") from None
    found: object = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise ValueError(f"{spec!r}: {module_name!r} has no callable {attribute!r}")
    return found
