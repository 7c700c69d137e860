"""A stand-in for the ``yarn`` CLI (no YARN can run here): prints the recorded outputs of yarn_recorded.py.

    python yarn_standin.py --state STATE.json application -status|-kill ID
    python yarn_standin.py --state STATE.json logs -applicationId ID [...]

STATE.json says what the stand-in ResourceManager knows:
``{"app_id": ..., "states": [[state, final, diagnostics, aggregation], ...], "logs": "aggregated"|"missing"|"custom",
"custom_logs": TEXT,
"unreachable": false, "hang": false}``. Each ``-status`` answers with the first entry and drops it while more
follow (so an application moves through its states one reading at a time); ``-kill`` of an application not
ended makes the next readings KILLED. Every call's arguments are appended to ``calls`` in the file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yarn_recorded as recorded

FINAL = {"FINISHED", "FAILED", "KILLED"}


def main(argv: list[str]) -> int:
    """Answer one yarn command from the state file."""
    if argv[:1] != ["--state"]:
        print("usage: yarn_standin.py --state FILE ARGS...", file=sys.stderr)
        return 2
    path, args = Path(argv[1]), argv[2:]
    state = json.loads(path.read_text())
    state.setdefault("calls", []).append(args)
    try:
        return answer(state, args)
    finally:
        path.write_text(json.dumps(state))


def answer(state: dict, args: list[str]) -> int:
    """Print what yarn prints for ``args``; the exit code."""
    sys.stderr.write(recorded.CLI_STDERR)
    if state.get("hang"):
        time.sleep(60)
    if state.get("unreachable"):
        sys.stderr.write(recorded.CLI_UNREACHABLE)
        return 1
    app_id = state["app_id"]
    if args[:2] == ["application", "-status"] or args[:2] == ["application", "-kill"]:
        if args[2] != app_id:
            template = recorded.STATUS_NOT_FOUND if args[1] == "-status" else recorded.KILL_NOT_FOUND
            sys.stdout.write(template.format(app_id=args[2]))
            return 255  # ApplicationCLI returns -1
        current = state["states"][0]
        if args[1] == "-kill":
            if current[0] in FINAL:
                sys.stdout.write(recorded.KILL_FINISHED.format(app_id=app_id))
            else:
                sys.stdout.write(recorded.KILL_RUNNING.format(app_id=app_id))
                state["states"] = [["KILLED", "KILLED", "Application killed by user.", current[3]]]
            return 0
        name, final, diagnostics, aggregation = current
        sys.stdout.write(
            recorded.application_report(
                app_id, state=name, final=final, diagnostics=diagnostics, aggregation=aggregation,
                am_host="worker-2.example.com" if name not in {"NEW", "NEW_SAVING", "SUBMITTED"} else "N/A",
            )
        )  # fmt: skip
        if len(state["states"]) > 1:
            state["states"].pop(0)
        return 0
    if args[:1] == ["logs"]:
        if state.get("logs") == "aggregated":
            text = recorded.AGGREGATED_LOGS
            if "-size" in args:
                size = int(args[args.index("-size") + 1])
                text = recorded.tail_each_file(text, -size) if size < 0 else text
            sys.stdout.write(text)
            return 0
        if state.get("logs") == "custom":
            sys.stdout.write(state["custom_logs"])
            return 0
        sys.stdout.write(recorded.LOGS_NOT_AGGREGATED)
        return 255
    print(f"Invalid Command Usage : {args}", file=sys.stderr)
    return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
