"""The CLI reference (``docs/reference/cli.md``), generated from the Typer command tree of ``headwater.cli:app``.

Every command and group, in the order the CLI lists them, with its help, usage, arguments and options. Typer
builds a click-style command tree (its own vendored click); this reads it by duck typing (``commands``,
``params``, ``opts``), so no click internals are imported.
"""

from __future__ import annotations

import enum
import inspect
import typing
from pathlib import Path
from typing import Any

import typer

from headwater.cli import app

__all__ = ["cli_reference"]

HEADER = """# CLI reference

<!-- Generated from headwater/cli by scripts/gen-reference.py: do not edit by hand. -->

Every command of `headwater`, as `headwater COMMAND --help` shows it. Each command opens its own transaction and
reports a domain error as one line and exit status 1.
"""


def _type_name(param: Any) -> str:
    annotation = param.type_descriptor.annotation
    if typing.get_origin(annotation) is list:  # a repeatable option, or an argument taking the rest
        (annotation,) = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(param: Any) -> str:
    if param.required:
        return "required"
    if param.default is None or param.default == [] or callable(param.default):
        return ""
    value = param.default.value if isinstance(param.default, enum.Enum) else param.default
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _name(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`" + (" …" if param.nargs == -1 else "")
    names = " / ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
    return names + (" (repeatable)" if param.multiple else "")


def _kind(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    return _type_name(param)


def _usage(path: list[str], command: Any) -> str:
    pieces = [" ".join(path)]
    if getattr(command, "commands", None):
        pieces.append("COMMAND")
    if any(p.param_type_name == "option" for p in command.params):
        pieces.insert(1, "[OPTIONS]")
    for param in command.params:
        if param.param_type_name == "argument":
            word = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(word if param.required else f"[{word}]")
    return " ".join(pieces)


def _command(path: list[str], command: Any) -> list[str]:
    lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", ""]
    if command.help:
        lines += [inspect.cleandoc(command.help), ""]
    lines += ["```", _usage(path, command), "```", ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| Argument or option | Type | Default | Meaning |", "|---|---|---|---|"]
        for param in params:
            meaning = " ".join((getattr(param, "help", None) or "").split()).replace("|", "\\|")
            lines.append(f"| {_name(param)} | {_kind(param)} | {_default(param)} | {meaning} |")
        lines.append("")
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not getattr(sub, "hidden", False):
            lines += _command([*path, name], sub)
    return lines


def cli_reference() -> str:
    """The Markdown page of every command, argument and option of the ``headwater`` CLI."""
    root = typer.main.get_command(app)
    return HEADER + "\n" + "\n".join(_command(["headwater"], root)).rstrip() + "\n"
