"""Run a Flink SQL script on PyFlink's TableEnvironment: Headwater's ``flink-sql`` command.

``flink run -py flink_sql.py (-f script.sql | -e "<sql>") [--streaming]``. Statements are separated by ``;``
(quotes, backticks and comments are respected) and run in order; each INSERT is waited for, so the job ends
when its data is written. ``SET 'key' = 'value'`` statements configure the session. Batch mode unless
``--streaming``. It exists because pip's PyFlink ships no SQL gateway jars, so ``sql-client.sh`` cannot start
from it; any Flink installation runs it the same way.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_SET = re.compile(r"^\s*SET\s+'([^']+)'\s*=\s*'([^']*)'\s*$", re.IGNORECASE | re.DOTALL)


def split_statements(text: str) -> list[str]:
    """The statements of a script: split on ``;`` outside quotes, backticks and comments."""
    statements: list[str] = []
    current: list[str] = []
    i, quote = 0, ""
    while i < len(text):
        char = text[i]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def main(argv: list[str]) -> int:
    """Run the script; a failing statement ends the job with exit code 1."""
    parser = argparse.ArgumentParser(prog="flink-sql", description="Run a Flink SQL script.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-f", "--file", type=Path, help="the SQL script")
    source.add_argument("-e", "--execute", help="the SQL itself")
    parser.add_argument("--streaming", action="store_true", help="streaming mode (default: batch)")
    options = parser.parse_args(argv)
    text = options.file.read_text() if options.file else options.execute

    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = EnvironmentSettings.in_streaming_mode() if options.streaming else EnvironmentSettings.in_batch_mode()
    env = TableEnvironment.create(settings)
    for number, statement in enumerate(split_statements(text), start=1):
        print(f"[{number}] {statement.splitlines()[0][:200]}", flush=True)
        setting = _SET.match(statement)
        if setting:
            env.get_config().set(setting.group(1), setting.group(2))
            continue
        result = env.execute_sql(statement)
        if result.get_job_client() is not None:
            result.wait()  # an INSERT: its job must finish before the next statement (and before we exit)
        elif statement.lstrip()[:6].upper() in {"SELECT", "SHOW", "DESCRI", "EXPLAI"}:
            result.print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
