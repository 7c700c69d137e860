"""The Spark standalone master as a cluster manager: drivers submitted with ``spark-submit --deploy-mode cluster``.

``spark-submit`` prints the driver's id (``Driver successfully submitted as driver-...``, or the REST gateway's
``"submissionId" : "driver-..."``). The master's REST submission server (``spark.master.rest.enabled=true``,
port 6066 by default) answers the driver's state (``GET /v1/submissions/status/<id>``) and kills it
(``POST /v1/submissions/kill/<id>``). The driver's logs are on the worker that ran it: the master's web UI
(``/json/``) names each worker's web UI, which serves ``/log/?driverId=<id>&logType=stdout|stderr``.

Config (the cluster's ``config``, as the engine passes it): ``master`` (``spark://host:port``), ``rest_url``
(default ``http://<master host>:6066``), ``ui_url`` (the master's web UI, default ``http://<master host>:8080``),
``timeout`` (seconds per request, default 10), ``log_max_bytes`` (the tail of each log kept, default 8 MiB).
Checked against Spark 4.3.0 (docs/guides/spark.md, "Cluster mode on a standalone master"). Why it works this
way: docs/adr/0015-spark-standalone-cluster-mode.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from headwater.jobs.drivers.base import AppState, AppStatus, ClusterManager, ManagerError, register

__all__ = ["DRIVER_STATES", "SparkStandaloneManager", "parse_log_page", "status_of"]

# The master's DriverState values, as Headwater sees them. RELAUNCHING: a supervised driver restarting; ERROR:
# the driver could not be started at all (a missing jar, a worker that failed to launch it).
DRIVER_STATES: dict[str, AppState] = {
    "SUBMITTED": AppState.SUBMITTED,
    "RUNNING": AppState.RUNNING,
    "RELAUNCHING": AppState.SUBMITTED,
    "UNKNOWN": AppState.UNKNOWN,
    "FINISHED": AppState.SUCCEEDED,
    "FAILED": AppState.FAILED,
    "ERROR": AppState.FAILED,
    "KILLED": AppState.KILLED,
}
DEFAULT_LOG_MAX_BYTES = 8 * 1024 * 1024
_LOG_CHUNK = 1024 * 1024
# "==== Bytes 0-100 of 10286 of /work/driver-.../stderr ====": the first line of every answer of the worker's /log/.
_LOG_HEADER = re.compile(rb"^==== Bytes (\d+)-(\d+) of (\d+) of .* ====\r?\n")


def _one_line(text: object, limit: int = 500) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def status_of(answer: dict[str, Any]) -> AppStatus:
    """The status a ``SubmissionStatusResponse`` of the master's REST server says (raises ManagerError for an id
    the master does not know)."""
    raw = answer.get("driverState")
    if not isinstance(raw, str):
        message = _one_line(answer.get("message")) or "no driverState in the answer"
        raise ManagerError(f"the master does not know driver {answer.get('submissionId')!r}: {message}")
    state = DRIVER_STATES.get(raw, AppState.UNKNOWN)
    # "message" holds the driver's exception when it failed (Spark puts the exception's text there).
    return AppStatus(
        state=state, raw=raw, detail=_one_line(answer.get("message")), where=str(answer.get("workerHostPort") or "")
    )


def parse_log_page(body: bytes) -> tuple[int, int, int, bytes]:
    """(start, end, total length, bytes) of one answer of a worker's ``/log/`` page."""
    match = _LOG_HEADER.match(body)
    if match is None:
        raise ManagerError(f"the worker's log page answered no byte range: {body[:200]!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), body[match.end() :]


@register
class SparkStandaloneManager(ClusterManager):
    """A Spark standalone master: drivers in cluster deploy mode, followed and killed through its REST server."""

    name = "spark-standalone"
    app_id_pattern = re.compile(r"driver-\d{14}-\d{4,10}")
    noun = "driver"
    # What the engine adds to spark-submit (see :meth:`submit_confs`).
    SUBMIT_CONFS = {"spark.standalone.submit.waitAppCompletion": "false"}
    # The legacy client ("Driver successfully submitted as driver-...") and the REST client ("submissionId").
    submission_id = re.compile(r"(?:submitted as |\"submissionId\"\s*:\s*\")(driver-[0-9]+-[0-9]+)")

    def __init__(self, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> None:
        super().__init__(config, http=http)
        master = str(self.config.get("master") or "")
        host = urlsplit(master).hostname if master.startswith("spark://") else None
        if "," in master:  # spark://a:7077,b:7077 (ZooKeeper recovery): the REST server of the first, unless told
            host = master.removeprefix("spark://").split(",")[0].split(":")[0]
        rest_url = self.config.get("rest_url") or (f"http://{host}:6066" if host else None)
        ui_url = self.config.get("ui_url") or (f"http://{host}:8080" if host else None)
        if not rest_url:
            raise ManagerError(
                f"spark-standalone needs config rest_url, or a master spark://host:port (got {master!r})"
            )
        self.rest_url = str(rest_url).rstrip("/")
        self.ui_url = str(ui_url).rstrip("/") if ui_url else None
        self.log_max_bytes = int(self.config.get("log_max_bytes", DEFAULT_LOG_MAX_BYTES))

    @classmethod
    def submit_confs(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """spark-submit returns once the master accepted the driver: the supervisor, not it, follows the driver."""
        return dict(cls.SUBMIT_CONFS)

    # ------------------------------------------------------------------------------------ REST

    def _call(self, method: str, url: str, **options: Any) -> httpx.Response:
        """One request; every way it can fail to reach the server is a ManagerError naming the URL."""
        try:
            return self.http.request(method, url, **options)
        except httpx.HTTPError as exc:
            raise ManagerError(f"could not reach {url}: {exc}") from exc
        except Exception as exc:
            # An egress-checked client (the worker's, the reaper's) says "could not reach" or "refused" its own way.
            if type(exc).__module__ == "headwater.egress" or isinstance(exc, OSError):
                raise ManagerError(f"could not reach {url}: {exc}") from exc
            raise

    def _json(self, method: str, url: str) -> dict[str, Any]:
        response = self._call(method, url)
        try:
            answer = response.json()
        except ValueError:
            raise ManagerError(f"{url} answered {response.status_code}, not JSON: {response.text[:200]!r}") from None
        if not isinstance(answer, dict):
            raise ManagerError(f"{url} answered {response.status_code}: {response.text[:200]!r}")
        return answer

    def status(self, app_id: str) -> AppStatus:
        """The driver's state, from the master's REST submission server."""
        return status_of(self._json("GET", f"{self.rest_url}/v1/submissions/status/{app_id}"))

    def kill(self, app_id: str) -> None:
        """Ask the master to kill the driver; a driver already ended (or unknown) is no error."""
        answer = self._json("POST", f"{self.rest_url}/v1/submissions/kill/{app_id}")
        # success=false is what the master answers for a driver that "has already finished or does not exist".
        if answer.get("success") is not True and "finished or does not exist" not in str(answer.get("message")):
            raise ManagerError(f"the master refused to kill {app_id}: {_one_line(answer.get('message'))}")

    # ------------------------------------------------------------------------------------ logs

    def worker_ui(self, host_port: str) -> str:
        """The web UI of the worker at ``host_port`` (as the driver's status names it), from the master's UI."""
        if not self.ui_url:
            raise ManagerError("no master web UI known (config ui_url) to find the driver's worker in")
        answer = self._json("GET", f"{self.ui_url}/json/")
        for worker in answer.get("workers") or []:
            if f"{worker.get('host')}:{worker.get('port')}" == host_port and worker.get("webuiaddress"):
                return str(worker["webuiaddress"]).rstrip("/")
        raise ManagerError(f"the master lists no worker {host_port} (it may have left the cluster)")

    def fetch_logs(self, app_id: str, dest: Path) -> list[Path]:
        """The driver's stdout and stderr (their last ``log_max_bytes`` each) from the worker that ran it."""
        where = self.status(app_id).where
        if not where:
            return []  # never placed on a worker: there are no logs
        base = self.worker_ui(where)
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for stream in ("stdout", "stderr"):
            target = dest / stream
            self._copy_log(f"{base}/log/", app_id, stream, target)
            written.append(target)
        return written

    def _copy_log(self, url: str, app_id: str, stream: str, target: Path) -> None:
        """Copy the tail of one log, a chunk per request (the page answers at most what byteLength asks)."""

        def page(offset: int | None, length: int) -> tuple[int, int, int, bytes]:
            params: dict[str, Any] = {"driverId": app_id, "logType": stream, "byteLength": length}
            if offset is not None:
                params["offset"] = offset
            response = self._call("GET", url, params=params)
            if response.status_code != 200:
                raise ManagerError(f"{url} answered {response.status_code} for the {stream} of {app_id}")
            return parse_log_page(response.content)

        start, end, total, data = page(None, min(_LOG_CHUNK, self.log_max_bytes))  # the tail, and the total
        offset = max(0, total - self.log_max_bytes)
        with target.open("wb") as out:
            if offset >= start:  # the whole kept tail came in the first answer
                out.write(data[offset - start :])
                return
            while offset < total:
                start, end, total, data = page(offset, min(_LOG_CHUNK, total - offset))
                if end <= start:
                    break
                out.write(data)
                offset = end
