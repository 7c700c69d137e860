"""Flink's files on the worker's host: a configuration directory bound to loopback, and savepoint directories.

Used by the Flink engine (local mini-clusters and session-cluster conf dirs) and by the per-job application clusters
of :mod:`.flink_application`. It imports nothing of Headwater but :mod:`.base`, since the supervisor runs it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from headwater.jobs.drivers.base import ManagerError

__all__ = ["FlinkConfError", "conf_value", "latest_savepoint", "savepoint_target", "write_local_flink_conf"]

# Every address a local Flink binds or advertises, as config.yaml nests them.
_LOOPBACK_KEYS = (
    ("jobmanager", "bind-host"),
    ("jobmanager", "rpc", "address"),
    ("taskmanager", "bind-host"),
    ("taskmanager", "host"),
    ("rest", "address"),
    ("rest", "bind-address"),
)


class FlinkConfError(ManagerError):
    """The Flink installation's configuration cannot be used (no config.yaml: not Flink 2)."""


def write_local_flink_conf(
    flink_home: Path,
    target: Path,
    *,
    rest_port: int | None = None,
    rpc_port: int | None = None,
    source: Path | None = None,
    settings: Mapping[str, object] | None = None,
) -> Path:
    """A copy of ``source`` (default: ``flink_home``'s conf directory) in ``target`` with every bind and advertised
    address on 127.0.0.1.

    Point a cluster's ``conf_dir`` (``FLINK_CONF_DIR``) at it so a local Flink listens on loopback only. It also
    serves ``bin/start-cluster.sh`` / ``stop-cluster.sh`` for a local session cluster: ``rest_port`` and
    ``rpc_port`` set the JobManager's REST and RPC ports (defaults 8081 and 6123), ``masters`` and ``workers``
    name 127.0.0.1 (start-cluster.sh passes the port in ``masters`` over ``rest.port``), and the daemons' pid
    files and logs go to ``target/pid`` and ``target/log``, so clusters of different conf dirs never share a pid
    file and nothing is written into the installation. ``settings`` (dotted keys) are set last.
    """
    import yaml  # type: ignore[import-untyped]  # Flink 2 reads a nested config.yaml

    source = source or flink_home / "conf"
    if not (source / "config.yaml").is_file():
        raise FlinkConfError(f"{source} holds no config.yaml (Flink 2 or newer is needed)")
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)
    config = yaml.safe_load((source / "config.yaml").read_text()) or {}
    changes: list[tuple[tuple[str, ...], object]] = [(keys, "127.0.0.1") for keys in _LOOPBACK_KEYS]
    if rest_port is not None:
        changes.append((("rest", "port"), rest_port))
    if rpc_port is not None:
        changes.append((("jobmanager", "rpc", "port"), rpc_port))
    for name in ("pid", "log"):
        (target / name).mkdir(exist_ok=True)  # flink-daemon.sh writes its .out file there without creating it
        changes.append((("env", name, "dir"), str((target / name).resolve())))
    changes += [(tuple(key.split(".")), value) for key, value in (settings or {}).items()]
    for keys, value in changes:
        node = config
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):  # a flat "a.b: v" key in the source beside a nested one is replaced
                node[key] = child = {}
            node = child
        node[keys[-1]] = value
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (target / "masters").write_text(f"127.0.0.1:{config.get('rest', {}).get('port', 8081)}\n")
    (target / "workers").write_text("127.0.0.1\n")
    return target


def conf_value(conf_dir: Path, key: str) -> str:
    """The value of ``key`` (dotted) in ``conf_dir``'s config.yaml, nested or flat; "" when unset."""
    import yaml

    try:
        node: Any = yaml.safe_load((conf_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ""
    if key in node:
        return str(node[key])
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    return "" if isinstance(node, dict) else str(node)


def _local_path(location: str) -> Path | None:
    """A savepoint location as a path of this host (a path or a ``file:`` URI), or None (hdfs://, s3://...)."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else location)
    return None


def _safe_name(job_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", job_name) or "_"


def savepoint_target(savepoint_dir: str, job_name: str) -> str:
    """Where the savepoints of the jobs called ``job_name`` go: a directory of their own under ``savepoint_dir``."""
    return f"{savepoint_dir.rstrip('/')}/{_safe_name(job_name)}"


def latest_savepoint(savepoint_dir: str, job_name: str) -> str | None:
    """The newest complete savepoint a job called ``job_name`` left under ``savepoint_dir``, or None.

    Only a directory this host can list (a path or a ``file:`` URI): a shared filesystem mounted on every worker."""
    target = _local_path(savepoint_target(savepoint_dir, job_name))
    if target is None:
        raise ManagerError(
            f"restore: latest needs a savepoint_dir this worker can list (a path or file:// URI), not {savepoint_dir!r}"
        )
    found = [
        (metadata.stat().st_mtime, metadata.parent)
        for metadata in target.glob("savepoint-*/_metadata")
        if metadata.is_file()
    ]
    return max(found)[1].resolve().as_uri() if found else None
