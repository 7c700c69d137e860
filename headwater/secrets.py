"""Source secrets: which ``env:``/``file:`` references may resolve, encryption at rest, and scrubbing.

A source's ``secrets`` are literal values or references resolved on the server at sync time: ``env:NAME``
(an environment variable) or ``file:/path`` (a file's content, trailing newline removed); ``literal:...``
keeps a value that itself starts with ``env:`` or ``file:``. A reference resolves only where the server's
settings allow it (``HEADWATER_SECRETS_ALLOWED_ENV``, ``HEADWATER_SECRETS_ALLOWED_DIRS``, both empty by
default). It is checked by name when a source is written, without resolving anything, so the answer never
tells whether a variable or file exists; and again at every sync, since the settings may have narrowed.

Stored values are Fernet tokens. The key ring is ``HEADWATER_SECRETS_KEY`` (keys separated by commas) or
``HEADWATER_SECRETS_KEY_FILE`` (one key a line): the first key encrypts, every key decrypts. The embedded
development database gets a generated key file, ``<data_dir>/secrets.key`` (mode 0600).

A sync masks every value it resolved (each line of it, its stripped and escaped forms) in every message it
stores or logs, through one :class:`Scrubber`. How to configure and rotate keys: docs/security/secrets.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from headwater.allowlists import ALLOWED_ENV_SETTING, RESERVED_ENV_PREFIX, path_inside
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.settings import Settings

__all__ = [
    "ALLOWED_DIRS_SETTING",
    "ALLOWED_ENV_SETTING",
    "KEY_FILE_SETTING",
    "KEY_SETTING",
    "KeyRing",
    "ReferencePolicy",
    "Scrubber",
    "SecretReferenceRefused",
    "SecretUnresolved",
    "SecretVault",
    "SecretsKeyError",
    "SecretsRequired",
    "generate_key",
]

log = logging.getLogger("headwater.secrets")

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"
LITERAL_PREFIX = "literal:"
MAX_FILE_BYTES = 64 * 1024
DEV_KEY_FILE = "secrets.key"
ALLOWED_DIRS_SETTING = "HEADWATER_SECRETS_ALLOWED_DIRS"
KEY_SETTING = "HEADWATER_SECRETS_KEY"
KEY_FILE_SETTING = "HEADWATER_SECRETS_KEY_FILE"


class SecretReferenceRefused(HeadwaterError, status_code=422, code="secret_reference_refused"):
    """An ``env:`` or ``file:`` reference the server's settings do not allow; nothing was resolved."""


class SecretsRequired(HeadwaterError, status_code=422, code="secrets_required"):
    """A change of where a source's credentials go, sent without the credentials again."""


class SecretUnresolved(HeadwaterError, status_code=422, code="secret_unresolved"):
    """An allowed reference could not be resolved at sync time (variable not set, file unreadable)."""


class SecretsKeyError(HeadwaterError, status_code=503, code="secrets_key_error"):
    """No key to encrypt with, an unusable key, or a stored secret that no configured key decrypts."""


def generate_key() -> str:
    """A new Fernet key (32 random bytes, url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


# --------------------------------------------------------------------------------- references


def _env_allowed(name: str, allowed: Sequence[str]) -> bool:
    if name.upper().startswith(RESERVED_ENV_PREFIX):
        return False
    for entry in allowed:
        if entry.endswith("*"):
            if name.startswith(entry[:-1]):
                return True
        elif entry.endswith("_"):
            if name.startswith(entry):
                return True
        elif name == entry:
            return True
    return False


@dataclass(frozen=True)
class ReferencePolicy:
    """Which ``env:`` and ``file:`` references may resolve on this server (none by default)."""

    allowed_env: tuple[str, ...] = ()
    allowed_dirs: tuple[Path, ...] = ()

    def check(self, secrets: Mapping[str, str]) -> None:
        """Refuse the first reference outside the allowlists, by name alone: nothing is read or looked up."""
        for key, value in secrets.items():
            self._allowed(key, value)

    def resolve(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """The values the secrets stand for, each reference checked against the allowlists again first."""
        resolved: dict[str, str] = {}
        for key, value in secrets.items():
            path = self._allowed(key, value)
            if value.startswith(ENV_PREFIX):
                name = value[len(ENV_PREFIX) :]
                if name not in os.environ:
                    raise SecretUnresolved(
                        f"secret {key!r} refers to environment variable {name!r}, which is not set on the server",
                        detail={"field": f"secrets.{key}"},
                    )
                resolved[key] = os.environ[name]
            elif path is not None:
                resolved[key] = _read_secret_file(key, path)
            else:
                resolved[key] = value.removeprefix(LITERAL_PREFIX)
        return resolved

    def _allowed(self, key: str, value: str) -> Path | None:
        """The real path of an allowed file reference (None for other values); refuses what is not allowed."""
        field = f"secrets.{key}"
        if value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :]
            if not _env_allowed(name, self.allowed_env):
                raise SecretReferenceRefused(
                    f"{field}: environment variable {name!r} may not be used as a secret on this server; send the "
                    f"value itself, or have an operator allow the name (or a prefix such as NAME_*) in "
                    f"{ALLOWED_ENV_SETTING}",
                    detail={"field": field, "setting": ALLOWED_ENV_SETTING},
                )
            return None
        if value.startswith(FILE_PREFIX):
            return self._allowed_path(field, value[len(FILE_PREFIX) :])
        return None

    def _allowed_path(self, field: str, raw: str) -> Path:
        refused = SecretReferenceRefused(
            f"{field}: file {raw!r} is not inside a directory the server allows secrets to be read from; send the "
            f"value itself, or have an operator add its directory to {ALLOWED_DIRS_SETTING}",
            detail={"field": field, "setting": ALLOWED_DIRS_SETTING},
        )
        real = path_inside(raw, self.allowed_dirs, directory_itself=False)
        if real is None:
            raise refused
        return real


def _read_secret_file(key: str, path: Path) -> str:
    """A secret file's text; errors name the file and the reason, never a byte of its content."""
    where = f"secret {key!r} refers to file {str(path)!r}"
    detail = {"field": f"secrets.{key}"}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretUnresolved(f"{where}, which cannot be read: {exc.strerror}", detail=detail) from None
    try:
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SecretUnresolved(f"{where}, which is not a regular file", detail=detail)
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretUnresolved(f"{where}, which cannot be read: {exc.strerror}", detail=detail) from None
    if len(data) > MAX_FILE_BYTES:
        raise SecretUnresolved(f"{where}, which is larger than {MAX_FILE_BYTES} bytes", detail=detail)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretUnresolved(f"{where}, which is not UTF-8 text", detail=detail) from None
    return text.rstrip("\r\n")


# ------------------------------------------------------------------------------------- keys


def _parse_keys(lines: Iterable[str], where: str) -> list[str]:
    keys = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise SecretsKeyError(f"{where} holds no key; make one with `headwater secrets generate-key`")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretsKeyError(
                f"{where}: key {number} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with `headwater secrets generate-key`"
            ) from None
    return keys


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file at ``path`` with ``keys`` (first one encrypts), atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    text = "# Headwater secrets keys: the first encrypts, every one decrypts (docs/security/secrets.md)\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "".join(f"{key}\n" for key in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _create_key_file(path: Path) -> None:
    """Generate a key file unless one exists; two processes racing end with the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write_key_file(temporary, [generate_key()])
    try:
        os.link(temporary, path)  # fails if the file exists: never overwrite a key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    log.warning("generated a secrets key file at %s for the embedded database; back it up with the database", path)


class KeyRing:
    """The Fernet keys secrets are encrypted with: the first one encrypts, every one decrypts.

    Keys come from a setting (fixed) or a key file, read again whenever it changes, so a running server
    follows ``headwater secrets rotate-key``.
    """

    def __init__(self, *, text: str | None = None, path: Path | None = None, generate: bool = False) -> None:
        if (text is None) == (path is None):
            raise ValueError("a key ring reads keys from text or from a file")
        self.path = path
        self.generate = generate
        self._stamp: tuple[int, int, int] | None = None
        self._keys: list[str] = []
        self._fernet: MultiFernet | None = None
        if text is not None:
            self._set(_parse_keys(text.split(","), KEY_SETTING))

    @property
    def setting(self) -> str:
        """What an operator changes to fix a key problem, for error messages."""
        if self.path is None:
            return KEY_SETTING
        if self.generate:
            return f"the generated key file {self.path} (or set {KEY_SETTING} / {KEY_FILE_SETTING})"
        return f"{KEY_FILE_SETTING} ({self.path})"

    @property
    def from_file(self) -> bool:
        """Whether the keys live in a file (which rotate-key can write)."""
        return self.path is not None

    def keys(self) -> list[str]:
        """The keys, the one that encrypts first."""
        self._load()
        return list(self._keys)

    def encrypt(self, value: str) -> str:
        """``value`` encrypted with the first key."""
        return self._load().encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The value a token holds; raises InvalidToken when no key decrypts it."""
        return self._load().decrypt(token.encode("ascii")).decode("utf-8")

    def rotate(self, token: str) -> str:
        """The token re-encrypted with the first key; raises InvalidToken when no key decrypts it."""
        return self._load().rotate(token.encode("ascii")).decode("ascii")

    def first_key_decrypts(self, token: str) -> bool:
        """Whether the first key alone decrypts the token (so older keys can be retired)."""
        try:
            Fernet(self.keys()[0]).decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def _set(self, keys: list[str]) -> None:
        self._keys = keys
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def _load(self) -> MultiFernet:
        if self.path is None:
            assert self._fernet is not None
            return self._fernet
        try:
            info = self.path.stat()
        except FileNotFoundError:
            if not self.generate:
                raise SecretsKeyError(f"{KEY_FILE_SETTING} names {self.path}, which does not exist") from None
            _create_key_file(self.path)
            info = self.path.stat()
        except OSError as exc:
            raise SecretsKeyError(f"{self.setting} cannot be read: {exc.strerror}") from None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._stamp or self._fernet is None:
            try:
                text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
                raise SecretsKeyError(f"{self.setting} cannot be read: {reason}") from None
            if info.st_mode & 0o077:
                log.warning("the secrets key file %s can be read by other users; chmod 600 it", self.path)
            self._set(_parse_keys(text.splitlines(), self.setting))
            self._stamp = stamp
        assert self._fernet is not None
        return self._fernet


# ------------------------------------------------------------------------------------ the vault


class SecretVault:
    """A server's handling of source secrets: the reference policy and the key ring, from its settings."""

    def __init__(self, *, policy: ReferencePolicy | None = None, keys: KeyRing | None = None) -> None:
        self.policy = policy or ReferencePolicy()
        self.key_ring = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretVault:
        """The vault a server with ``settings`` uses (the development key file is made on first use)."""
        keys: KeyRing | None = None
        if settings.secrets_key is not None and settings.secrets_key_file is not None:
            # Checked here, not by the settings model, whose errors would quote the key.
            raise SecretsKeyError(f"set {KEY_SETTING} or {KEY_FILE_SETTING}, not both")
        if settings.secrets_key is not None:
            keys = KeyRing(text=settings.secrets_key.get_secret_value())
        elif settings.secrets_key_file is not None:
            keys = KeyRing(path=settings.secrets_key_file)
        elif settings.is_embedded_database:
            keys = KeyRing(path=settings.data_dir / DEV_KEY_FILE, generate=True)
        policy = ReferencePolicy(
            allowed_env=tuple(settings.secrets_allowed_env), allowed_dirs=tuple(settings.secrets_allowed_dirs)
        )
        return cls(policy=policy, keys=keys)

    @property
    def keys(self) -> KeyRing:
        """The key ring; SecretsKeyError naming the settings when none is configured."""
        if self.key_ring is None:
            raise SecretsKeyError(
                f"no key to encrypt source secrets with: set {KEY_SETTING} (make one with "
                f"`headwater secrets generate-key`) or {KEY_FILE_SETTING}"
            )
        return self.key_ring

    def check_keys(self) -> None:
        """Load the keys now (making the development key file), so a bad key stops the server at start."""
        if self.key_ring is not None:
            self.key_ring.keys()

    def seal(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """Secrets as stored: references checked against the policy (never resolved), every value encrypted."""
        self.policy.check(secrets)
        if not secrets:
            return {}
        keys = self.keys
        return {key: keys.encrypt(value) for key, value in secrets.items()}

    def unseal(self, stored: Mapping[str, str], *, source: str) -> dict[str, str]:
        """Stored secrets decrypted back to what was given (literals and references)."""
        if not stored:
            return {}
        return self._each_token(stored, source, self.keys.decrypt)

    def resolve(self, stored: Mapping[str, str], *, source: str) -> dict[str, str]:
        """The values a source's stored secrets stand for, references checked again and resolved."""
        return self.policy.resolve(self.unseal(stored, source=source))

    def rotate(self, stored: Mapping[str, str], *, source: str) -> dict[str, str]:
        """Stored secrets re-encrypted with the first key."""
        return self._each_token(stored, source, self.keys.rotate)

    def _each_token(self, stored: Mapping[str, str], source: str, apply: Callable[[str], str]) -> dict[str, str]:
        # Either way a token no configured key decrypts is named by its key, never shown.
        out: dict[str, str] = {}
        for key, token in stored.items():
            try:
                out[key] = apply(token)
            except (InvalidToken, UnicodeError):
                raise self._undecryptable(key, source) from None
        return out

    def _undecryptable(self, key: str, source: str) -> SecretsKeyError:
        keys = self.keys
        return SecretsKeyError(
            f"secret {key!r} of source {source!r} cannot be decrypted with the keys in {keys.setting}; "
            "the key it was encrypted with is missing (list it after the current key) or the value was altered",
            detail={"field": f"secrets.{key}", "setting": KEY_FILE_SETTING if keys.from_file else KEY_SETTING},
        )


# ---------------------------------------------------------------------------------- scrubbing


class Scrubber:
    """Masks every form of some secret values in text before it is stored, logged or shown.

    Each value is masked whole, stripped, line by line (lines of fewer than four characters carry no secret
    on their own and are left alone), and in its JSON-escaped, Python-escaped and URL-encoded spellings.
    """

    MASK = "[secret]"
    MIN_LINE = 4

    def __init__(self, values: Iterable[str] = ()) -> None:
        needles: set[str] = set()
        for value in values:
            forms = {value, value.strip()}
            for line in value.splitlines():
                if len(line.strip()) >= self.MIN_LINE:
                    forms.update((line, line.strip()))
            for form in forms:
                if form.strip():
                    needles.update(
                        (form, json.dumps(form)[1:-1], form.encode("unicode_escape").decode("ascii"), quote(form, ""))
                    )
        ordered = sorted(needles, key=len, reverse=True)  # longest first: no piece of a value survives
        self._pattern = re.compile("|".join(re.escape(n) for n in ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        """``text`` with every secret form replaced by ``[secret]``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self.MASK, text)
