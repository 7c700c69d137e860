"""Run at the start of every Python process whose ``PYTHONPATH`` holds this directory (Python's ``site`` imports
the first ``sitecustomize`` on the path): in a PySpark driver started by spark-submit, or a PyFlink client started
by ``flink run -py``, install Headwater's lineage hook of that library; then run the ``sitecustomize`` this one
shadows, if any, so an installation's own keeps working.

Never raises: a hook that cannot install leaves the job as it was.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _install() -> None:
    # Set only in the client process, by the Python driver of spark-submit or `flink run -py`: never in the
    # Python workers that executors or task managers start for UDFs.
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        module = "headwater_pyspark_lineage"
    elif os.environ.get("PYFLINK_GATEWAY_PORT"):
        module = "headwater_pyflink_lineage"
    else:
        return
    if not os.environ.get("HEADWATER_JOB_LINEAGE_FILE"):
        return
    # Relative to the job's directory (where the driver starts), whatever directory the job later changes to.
    base = os.environ.get("HEADWATER_JOB_DIR") or os.getcwd()
    os.environ["HEADWATER_JOB_LINEAGE_FILE"] = os.path.join(base, os.environ["HEADWATER_JOB_LINEAGE_FILE"])
    try:
        importlib.import_module(module).install()  # beside this file, on PYTHONPATH
    except Exception as exc:  # the job must run even when its lineage cannot be read
        print(f"headwater lineage hook not installed: {exc!r}", file=sys.stderr)


def _chain() -> None:
    """Execute the next ``sitecustomize`` on the path (the one this module hides)."""
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        print(f"sitecustomize {spec.origin}: {exc!r}", file=sys.stderr)


_install()
_chain()
