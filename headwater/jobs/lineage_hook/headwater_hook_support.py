"""What Headwater's lineage hooks (PySpark, PyFlink) share: patching a library's modules as they are imported,
appending records to the job's lineage file, and telling stderr once about a problem.

Standard library only: it runs in the job's interpreter, where Headwater is not installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

__all__ = ["append_records", "now", "patch_on_import", "warn"]

_warned: set[str] = set()


def warn(what: str, exc: BaseException) -> None:
    """Tell the job's stderr, once per kind of problem, that lineage was not recorded."""
    if what not in _warned:
        _warned.add(what)
        print(f"headwater lineage hook: {what}: {exc!r} (the job goes on)", file=sys.stderr)


def now() -> str:
    """The time as OpenLineage writes it."""
    return datetime.now(timezone.utc).isoformat()  # noqa: UP017  (the job's Python may be older than 3.11)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches modules as they are first imported (importing the library here would slow every Python process)."""

    def __init__(self, targets: dict[str, Callable[[Any], None]]) -> None:
        self.targets = targets

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        patch = self.targets.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                original = spec.loader.exec_module

                def exec_module(module: Any, original: Callable[[Any], None] = original) -> None:
                    original(module)
                    try:
                        patch(module)
                    except Exception as exc:
                        warn(f"patching {fullname}", exc)

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


def patch_on_import(targets: dict[str, Callable[[Any], None]]) -> None:
    """Run each ``targets[module name](module)`` now if the module is imported already, else when it is."""
    for name, patch in targets.items():
        if name in sys.modules:
            patch(sys.modules[name])
    pending = {k: v for k, v in targets.items() if k not in sys.modules}
    if pending:
        sys.meta_path.insert(0, _Finder(pending))


def append_records(records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` as JSON lines to ``$HEADWATER_JOB_LINEAGE_FILE`` in one write (so lines never mix)."""
    data = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records).encode()
    fd = os.open(os.environ["HEADWATER_JOB_LINEAGE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
