"""schemathesis over every operation of the OpenAPI document, on both databases: no answer may be a server error
(5xx) or break the document (an undeclared status code, content type or header, or a body that does not match its
schema).

The run is reproducible: a fixed seed, derandomized generation and a fixed number of examples per operation and
generation mode (positive: data the document allows; negative: data it forbids). The catalog is seeded first
(the demo platform and its lineage, a dataset without columns, a cluster, a command and an application) so that
generated ids and names find real rows. The job worker is off: submissions are fuzzed and stored, but no process
is started for them (a fuzzer must not run arbitrary commands on the test machine). The sync scheduler is off for
the same reason (sources' URIs are generated).

``HEADWATER_FUZZ_EXAMPLES`` (per operation and mode, default 60) and ``HEADWATER_FUZZ_SEED`` scale the run; the
longer run for releases is in docs/security/fuzz.md. With ``-s``, pytest prints the figures of each database.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from live_http import serve_in_thread
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.api.crosssite import CLIENT_HEADER
from headwater.app import create_app
from headwater.db import make_sessionmaker
from headwater.settings import Settings

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "60"))
SEED = int(os.environ.get("HEADWATER_FUZZ_SEED", "20261205"))


@dataclass
class FuzzReport:
    """What one run found: cases sent, server errors, and every failed check by its distinct cause."""

    operations: int = 0
    cases: int = 0
    server_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    failure_counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seconds: float = 0.0
    unfuzzable: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The figures, then one line per distinct failure."""
        lines = [
            f"{self.operations} operations, {self.cases} cases, {self.server_errors} server errors, "
            f"{len(self.failures)} distinct failures, {self.seconds:.0f} s; statuses {dict(sorted(self.statuses.items()))}"
        ]
        for key, example in sorted(self.failures.items()):
            lines.append(f"  {self.failure_counts[key]:4d} x {key[0]} [{key[1]}] {key[2]}\n        {example}")
        return "\n".join(lines)


def _checks() -> list[object]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


def run_fuzz(app: FastAPI, base_url: str, *, examples: int = EXAMPLES, seed: int = SEED) -> FuzzReport:
    """Fuzz every operation of ``app``'s OpenAPI document, served at ``base_url``; collect failures instead of stopping
    at the first."""
    import requests
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(app.openapi())
    http = requests.Session()
    report = FuzzReport()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(
                    operation, mode, base_url=base_url, http=http, report=report, examples=examples, seed=seed
                )
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (no parameters, no body): no negative cases.
                report.unfuzzable.append(f"{operation.label} ({mode.value})")
    report.seconds = time.monotonic() - started
    return report


def _fuzz_operation(
    operation: Any, mode: Any, *, base_url: str, http: Any, report: FuzzReport, examples: int, seed: int
) -> None:
    """Send ``examples`` cases of one operation in one generation mode; record what the checks find."""
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.core.failures import Failure, FailureGroup

    checks = _checks()
    headers = {CLIENT_HEADER: "fuzz"}

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(base_url=base_url, session=http, headers=headers)
        report.cases += 1
        report.statuses[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (FailureGroup, Failure) as exc:
            for failure in exc.exceptions if isinstance(exc, FailureGroup) else (exc,):
                key = (operation.label, getattr(failure, "title", type(failure).__name__), str(response.status_code))
                report.failure_counts[key] += 1
                body = response.text[:300].replace("\n", " ")
                report.failures.setdefault(key, f"{case.as_curl_command(headers=headers)} -> {body}")

    hypothesis.seed(seed)(one)()


@pytest.fixture(scope="module")
def fuzz_app(app_settings: Settings, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The application on the suite's database, seeded, with no job worker and no sync scheduler."""
    from test_fuzz_regressions import seed_fuzz_targets

    from headwater.demo.platform import load_demo

    settings = app_settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp("fuzz-data"),
            "sync_scheduler_enabled": False,
            "jobs_worker_enabled": False,
        }
    )
    empty_tables(engine)
    with make_sessionmaker(engine)() as session:
        load_demo(session)
        seed_fuzz_targets(session)
        session.commit()
    yield create_app(settings, prepare=False)
    empty_tables(engine)


def test_fuzzing_every_operation_finds_no_server_error_and_no_schema_violation(
    fuzz_app: FastAPI, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(fuzz_app) as base_url:
        report = run_fuzz(fuzz_app, base_url)
    with capsys.disabled():
        print(f"\nfuzz on {db_url.split(':', 1)[0]}: {report.summary()}")
    assert report.operations >= 60, report.summary()
    assert report.server_errors == 0, report.summary()
    assert not report.failures, report.summary()
