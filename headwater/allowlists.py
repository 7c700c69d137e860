"""The server's allowlists, read one way everywhere: the entry checks the settings run on each entry, and the one
rule for whether a local file lies inside allowed directories.

Below :mod:`headwater.settings`, :mod:`headwater.egress`, :mod:`headwater.secrets` and :mod:`headwater.api.crosssite`:
the settings validate their entries here, and the modules that enforce the allowlists read them with the same
functions, so no module that reads the settings is imported by them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "ALLOWED_ENV_SETTING",
    "ALLOW_SETTING",
    "Address",
    "RESERVED_ENV_PREFIX",
    "check_allow_entry",
    "check_env_allowlist_entry",
    "check_host_pattern",
    "host_name",
    "parse_address",
    "path_inside",
]

ALLOW_SETTING = "HEADWATER_EGRESS_ALLOW"
ALLOWED_ENV_SETTING = "HEADWATER_SECRETS_ALLOWED_ENV"
# The server's own settings (database URL, Elasticsearch password, the secrets key) never resolve.
RESERVED_ENV_PREFIX = "HEADWATER_"
_ENV_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\*?$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# ------------------------------------------------------------------------------------- egress


def parse_address(host: str) -> Address | None:
    """``host`` as an IP address (brackets and an IPv6 zone dropped), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_allow_entry(entry: str) -> str:
    """One entry of HEADWATER_EGRESS_ALLOW: an address, a network (CIDR) or a host name."""
    value = entry.strip().lower()
    if not value:
        raise ValueError(f"{ALLOW_SETTING}: an entry is empty")
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{ALLOW_SETTING}: {entry!r} is not a network such as 10.0.0.0/8") from None
        return value
    if parse_address(value) is not None:
        return value.strip("[]")
    if any(char in value for char in " :@?#") or value.startswith(".") or value.endswith("."):
        raise ValueError(f"{ALLOW_SETTING}: {entry!r} is neither an address, a network nor a host name")
    return value


# ------------------------------------------------------------------------------------ secrets


def check_env_allowlist_entry(entry: str) -> str:
    """One entry of HEADWATER_SECRETS_ALLOWED_ENV: a variable name, or a prefix ending in ``*`` or ``_``."""
    if not _ENV_ENTRY.match(entry) or entry == "*":
        raise ValueError(
            f"{ALLOWED_ENV_SETTING}: {entry!r} is neither a variable name nor a prefix such as ICEBERG_* "
            "(allowing every variable would hand the server's environment to whoever creates a source)"
        )
    if entry.upper().startswith(RESERVED_ENV_PREFIX):
        raise ValueError(f"{ALLOWED_ENV_SETTING}: {entry!r} names Headwater's own settings, which never resolve")
    return entry


# ------------------------------------------------------------------------------------- hosts


def host_name(host: str) -> str | None:
    """The name of a Host header or an allowed-host entry, lower case, IPv6 without brackets (no port)."""
    try:
        parts = urlsplit("//" + host.strip())
        _ = parts.port  # a port that is not a number makes the header invalid
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname


def check_host_pattern(pattern: str) -> str:
    """An entry of HEADWATER_ALLOWED_HOSTS, lower case, or ValueError saying what is wrong with it."""
    entry = pattern.strip().lower()
    if entry == "*":
        return entry
    name = entry.removeprefix("*.")
    try:
        parts = urlsplit("//" + name)
        has_port = parts.port is not None or parts.netloc.endswith(":")
    except ValueError:
        has_port = True
    if has_port or "*" in name or any(c.isspace() for c in name) or host_name(name) is None:
        raise ValueError(
            f"{pattern!r} is not a host name: write a name or address without port (example.com, 10.0.0.5, [::1]), "
            "*.example.com for its subdomains, or * for any"
        )
    return entry


# ------------------------------------------------------------------------------------- files


def _within(path: str, directory: str, *, directory_itself: bool) -> bool:
    return Path(path).is_relative_to(directory) and (directory_itself or path != directory)


def path_inside(raw: str, directories: Iterable[str | os.PathLike[str]], *, directory_itself: bool) -> Path | None:
    """The real path of ``raw`` if it lies inside one of ``directories``, else None.

    The rule egress (``HEADWATER_EGRESS_FILE_DIRS``) and secrets (``HEADWATER_SECRETS_ALLOWED_DIRS``) share:
    ``raw`` must be absolute and free of NUL bytes; the path as written (``..`` collapsed) must lie inside a
    directory, as given or with its symlinks resolved, so a path outside every directory never touches the file
    system; and the real path (symlinks and ``..`` resolved, in that order, as the kernel would) must lie inside
    a directory's real path. ``directory_itself`` says whether a directory counts as inside itself (an Iceberg
    warehouse may be an allowed directory; a secret file never is).
    """
    if not raw or "\x00" in raw or not os.path.isabs(raw):
        return None
    dirs = [(os.path.normpath(d), os.path.realpath(d)) for d in directories]
    lexical = os.path.normpath(raw)
    if not any(_within(lexical, d, directory_itself=directory_itself) for pair in dirs for d in pair):
        return None
    real = os.path.realpath(raw)
    if not any(_within(real, real_dir, directory_itself=directory_itself) for _, real_dir in dirs):
        return None
    return Path(real)
