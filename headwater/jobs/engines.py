"""Job engines: each turns a resolved job (cluster + command + request) into an argv and environment.

Arguments are always an argv list handed to the operating system, never a shell string.

A command's first element names the engine's front-end; the engine swaps it for the cluster's installation:

* Spark clusters: ``spark-submit`` or ``spark-sql`` (``-e <sql>`` / ``-f <file>``) from ``spark_home``, else
  from the installed pyspark. Config: ``spark_home``, ``master`` (default ``local[2]``), ``conf`` (``--conf``s),
  ``local_ip``, ``proxy_user`` (``true``: ``--proxy-user <the job's user>``, so the cluster enforces who it is;
  off by default, since the worker's own Hadoop user must be allowed to impersonate).
* Flink clusters: ``flink`` (``flink run``: ``-py job.py ...`` for PyFlink, ``[-c Main] app.jar ...`` for jars)
  or ``flink-sql`` (Headwater's SQL-script runner, ``-f <file>`` / ``-e <sql>``, run by ``flink run -py``; pip's
  PyFlink carries no SQL gateway jars, so its ``sql-client.sh`` cannot start). Config: ``flink_home`` (else
  ``$FLINK_HOME``), ``jobmanager`` (``host:port`` of a session cluster's REST endpoint: ``flink run -m``; without it
  the job runs on a local mini-cluster, ``flink run -t local``; a job killed or timed out is also cancelled there, by
  the JobIDs its ``flink run`` printed: :func:`cancel_flink_jobs`), ``conf_dir`` (``FLINK_CONF_DIR``; see
  :func:`write_local_flink_conf`), ``python`` (the interpreter with pyflink, for ``-py`` jobs; found beside a pip
  installed ``flink_home`` when absent), ``conf`` (``-D`` options), ``openlineage_url``.

Lineage: a job's run id is its OpenLineage run id. Spark gets ``spark.openlineage.parentJobNamespace`` /
``parentJobName`` / ``parentRunId``, so events of the OpenLineage Spark listener attach to the job's run, and a
``spark-submit`` gets Headwater's PySpark lineage hook on its ``PYTHONPATH`` (:mod:`.lineage_hook`; cluster config
``pyspark_lineage: false`` turns it off; ``lineage_namespace`` names the namespace of the tables it reports). Flink's
OpenLineage listener (Flink 2's ``execution.job-status-changed-listeners``) cannot be given a parent run or a run
id, so Flink gets what it can use: ``openlineage.job.namespace`` / ``openlineage.job.name`` (its events land on the
job Headwater records) and ``openlineage.run.tags`` holding ``headwater_run_id:<run id>``; with the cluster's
``openlineage_url``, ``openlineage.transport.*`` points its HTTP transport at Headwater's ``/api/v1/lineage``.
The listener itself (the openlineage-flink jar) is the installation's business: list its factory in ``conf``.
A ``flink run -py`` job gets the same hook directory on its ``PYTHONPATH``: in the PyFlink client it records the
SQL statements and Table API writes it runs, which the worker analyses as ``flink-sql``'s SQL (cluster config
``pyflink_lineage: false`` turns it off).
"""

from __future__ import annotations

import abc
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.jobs.lineage_hook import EVENTS_FILE, EVENTS_FILE_ENV, HOOK_DIR, NAMESPACE_CONF
from headwater.jobs.models import ClusterType

__all__ = [
    "FLINK_SQL_RUNNER",
    "EngineError",
    "FlinkEngine",
    "JobContext",
    "JobEngine",
    "Launch",
    "ShellEngine",
    "SparkEngine",
    "cancel_flink_jobs",
    "cluster_manager_of",
    "engine_for",
    "find_flink_home",
    "spark_manager",
    "find_spark_submit",
    "write_local_flink_conf",
]

log = logging.getLogger("headwater.jobs.engines")

LINEAGE_NAMESPACE = "headwater"
SPARK_PROGRAMS = ("spark-submit", "spark-sql")


class EngineError(Exception):
    """The job cannot be launched on this engine (missing installation, unsupported type)."""


@dataclass
class Launch:
    """What to start: the argv and the extra environment; ``cancel``, when set, is called with the job's directory
    as the job is killed (before its process group is signalled), to end what it started outside its processes."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cancel: Callable[[Path], object] | None = None


@dataclass(frozen=True)
class JobContext:
    """What an engine needs to know about the job."""

    job_id: str
    job_name: str
    run_uuid: str
    args: list[str]
    command: list[str]
    cluster_config: dict[str, Any]
    user: str = ""  # who submitted it (the job's user)


class JobEngine(abc.ABC):
    """Builds the process launch of one job."""

    @abc.abstractmethod
    def launch(self, job: JobContext) -> Launch:
        """The argv and environment that run ``job``."""


class ShellEngine(JobEngine):
    """The command's executable and default arguments, then the job's arguments."""

    def launch(self, job: JobContext) -> Launch:
        """Run the command directly."""
        return Launch(argv=[*job.command, *job.args])


def find_spark_submit(config: dict[str, Any], program: str = "spark-submit") -> Path:
    """``program`` (spark-submit, spark-sql) of the cluster's ``spark_home``, else of the installed pyspark, else on PATH."""
    home = config.get("spark_home")
    if isinstance(home, str) and home:
        candidate = Path(home) / "bin" / program
        if candidate.is_file():
            return candidate
        raise EngineError(f"cluster config spark_home={home!r} holds no bin/{program}")
    spec = importlib.util.find_spec("pyspark")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / program
        if candidate.is_file():
            return candidate
    found = shutil.which(program)
    if found:
        return Path(found)
    raise EngineError(f"no {program} found: set the cluster's config spark_home, or install pyspark")


# Which cluster manager follows a cluster-mode driver, by the master URL's form.
_MANAGER_OF_MASTER = (("spark://", "spark-standalone"), ("k8s://", "kubernetes"), ("yarn", "yarn"))
# spark-submit's options that take no value (SparkSubmitOptionParser's switches); every other option takes one.
_SPARK_SWITCHES = frozenset({"--help", "-h", "--supervise", "--usage-error", "--verbose", "-v", "--version"})
# The JVM main class that runs a Python driver: what spark-submit itself uses for a .py application, named
# explicitly for a standalone master, where spark-submit refuses a .py application in cluster deploy mode.
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"


def spark_manager(config: dict[str, Any]) -> str:
    """The cluster manager of a cluster-mode Spark cluster: config ``cluster_manager``, else by its ``master``."""
    named = config.get("cluster_manager")
    if isinstance(named, str) and named:
        return named
    master = str(config.get("master", ""))
    for prefix, manager in _MANAGER_OF_MASTER:
        if master.startswith(prefix):
            return manager
    raise EngineError(
        f"deploy_mode cluster needs a master spark://..., yarn or k8s://... (or config cluster_manager); got {master!r}"
    )


def cluster_manager_of(cluster_type: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The cluster manager a cluster's jobs run on and its config, from the cluster's own row (the only source the
    worker and the reaper trust), or None when its jobs run in their own processes."""
    if cluster_type == ClusterType.SPARK.value and config.get("deploy_mode") == "cluster":
        try:
            return spark_manager(config), {k: v for k, v in config.items() if k != "conf"}
        except EngineError:
            return None
    if cluster_type == ClusterType.FLINK.value and config.get("mode") == "application":
        return "flink-application", {}
    return None


def _cluster_manager(config: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The cluster manager's name, its config and the ``--conf``s it needs, checked now: a manager unknown or
    misconfigured fails the job at once with its reason, not later in the supervisor."""
    from headwater.jobs.drivers import ManagerError, manager_for

    name = spark_manager(config)
    # The manager's own keys (rest_url, ui_url...) sit beside the engine's; Spark's --conf values stay out.
    manager_config = {k: v for k, v in config.items() if k != "conf"}
    try:
        manager = manager_for(name, manager_config)  # builds it only: no request is made
    except ManagerError as exc:
        raise EngineError(f"cluster manager {name}: {exc}") from None
    try:
        return name, manager_config, manager.submit_confs(manager_config)
    finally:
        manager.close()


def _primary_resource(args: list[str]) -> int | None:
    """The index of spark-submit's application (the first argument that is neither an option nor its value)."""
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-"):
            return index
        index += 1 if arg in _SPARK_SWITCHES or "=" in arg else 2
    return None


def _python_runner(args: list[str], jar: str) -> list[str]:
    """``args`` with a ``.py`` application run by :data:`PYTHON_RUNNER` from ``jar`` (its arguments: the script,
    the ``--py-files``, then the application's own)."""
    index = _primary_resource(args)
    if index is None or not args[index].endswith(".py"):
        return args
    options = args[:index]
    py_files = next((options[i + 1] for i in range(len(options) - 1) if options[i] == "--py-files"), "")
    return [*options, "--class", PYTHON_RUNNER, jar, args[index], py_files, *args[index + 1 :]]


class SparkEngine(JobEngine):
    """``spark-submit`` with the cluster's master, the job's id as the OpenLineage parent run, then the command.

    With ``deploy_mode: cluster`` the driver runs on the cluster: the job's process is the supervisor
    (:mod:`headwater.jobs.drivers.supervise`), which submits it, follows it through the cluster manager until it
    ends and fetches its logs. Config ``poll_interval``, ``kill_wait`` and ``lost_after`` tune it (seconds);
    ``python_runner_jar`` is the jar a Python driver is run from on a standalone master (default: the
    installation's spark-tags jar, which must be at the same path on the cluster's workers)."""

    def launch(self, job: JobContext) -> Launch:
        """spark-submit --master <master> [--deploy-mode cluster] --conf ... <command args> <job args>."""
        config = job.cluster_config
        # A Spark command reads ["spark-submit" | "spark-sql", default args...]: the program is this cluster's.
        program = Path(job.command[0]).name
        front_end = program if program in SPARK_PROGRAMS else "spark-submit"
        command = job.command[1:] if program in SPARK_PROGRAMS else job.command
        deploy_mode = config.get("deploy_mode", "client")
        if deploy_mode not in {"client", "cluster"}:
            raise EngineError(f"deploy_mode must be client or cluster, not {deploy_mode!r}")
        submit = find_spark_submit(config, front_end)
        argv = [str(submit), "--master", str(config.get("master", "local[2]"))]
        manager = _cluster_manager(config) if deploy_mode == "cluster" else None
        if manager is not None:
            argv += ["--deploy-mode", "cluster"]
        confs: dict[str, str] = {"spark.ui.enabled": "false"}
        confs.update({str(k): str(v) for k, v in (config.get("conf") or {}).items()})
        confs.update(
            {
                "spark.openlineage.parentJobNamespace": LINEAGE_NAMESPACE,
                "spark.openlineage.parentJobName": job.job_name,
                "spark.openlineage.parentRunId": job.run_uuid,
            }
        )
        if isinstance(config.get("lineage_namespace"), str):
            confs[NAMESPACE_CONF] = config["lineage_namespace"]
        if manager is not None:
            # After the cluster's own: spark-submit must return once the driver is accepted, for the supervisor
            # (not spark-submit) to follow it.
            confs.update(manager[2])
        for key, value in confs.items():
            argv += ["--conf", f"{key}={value}"]
        if config.get("proxy_user") is True and job.user:
            # Genie's way: Spark (and HDFS, YARN, the metastore) act as the job's user, checked by the cluster.
            argv += ["--proxy-user", job.user]
        env = {"SPARK_LOCAL_IP": str(config.get("local_ip", "127.0.0.1"))}
        if manager is not None:
            return self._cluster_launch(manager[0], manager[1], [*argv, *command, *job.args], env, submit)
        if front_end == "spark-submit" and config.get("pyspark_lineage", True) is not False:
            # A PySpark driver imports the hook's sitecustomize; its events land in the job's directory (the
            # driver's working directory, resolved there), which the worker ingests as the job ends.
            env["PYTHONPATH"] = str(HOOK_DIR)
            env[EVENTS_FILE_ENV] = EVENTS_FILE
        return Launch(argv=[*argv, *command, *job.args], env=env)

    @staticmethod
    def _cluster_launch(
        manager: str, config: dict[str, Any], argv: list[str], env: dict[str, str], submit: Path
    ) -> Launch:
        """The supervisor over ``argv``: the driver runs on the cluster, followed through its manager. The PySpark
        lineage hook is not put on the driver's path: its events file would stay on the cluster's worker."""
        from headwater.jobs.drivers import SPEC_ENV, cancel_cluster_app, supervise

        if manager == "spark-standalone":
            # Any jar will do (PythonRunner is on every driver's classpath): the worker copies it into each driver's
            # directory, so the installation's smallest, spark-tags (16 KB, in every Spark distribution).
            jar = config.get("python_runner_jar") or next(
                (str(path) for path in sorted(submit.parent.parent.glob("jars/spark-tags_*.jar"))), None
            )
            if jar:
                argv = argv[:1] + _python_runner(argv[1:], str(jar))
        spec = {"manager": manager, "config": config}
        timing = {key: float(config[key]) for key in ("kill_wait", "lost_after") if key in config}
        supervisor = supervise.command(argv, poll=float(config.get("poll_interval", 2.0)), **timing)
        # The kill uses this config, the cluster's: never the manager or config in the job's record, which the job
        # can write (it would aim the worker's requests elsewhere).
        cancel = functools.partial(cancel_cluster_app, manager=manager, config=config)
        return Launch(argv=supervisor, env={**env, SPEC_ENV: json.dumps(spec)}, cancel=cancel)


# ------------------------------------------------------------------------------------------------- Flink

FLINK_PROGRAMS = ("flink", "flink-sql")
# Headwater's runner of Flink SQL scripts (plain PyFlink, run by the cluster's own Python): shipped as package data.
FLINK_SQL_RUNNER = Path(__file__).with_name("runners") / "flink_sql.py"


def find_flink_home(config: dict[str, Any] | None = None) -> Path:
    """The cluster's ``flink_home``, else ``$FLINK_HOME``; it must hold ``bin/flink``."""
    home = (config or {}).get("flink_home") or os.environ.get("FLINK_HOME")
    if not isinstance(home, str) or not home:
        raise EngineError("no Flink installation: set the cluster's config flink_home (or FLINK_HOME for the worker)")
    path = Path(home)
    if not (path / "bin" / "flink").is_file():
        raise EngineError(f"flink_home={home!r} holds no bin/flink")
    return path


def _flink_python(config: dict[str, Any], home: Path) -> str | None:
    """The interpreter that has pyflink: the config's ``python``, else the one of the venv a pip install lives in."""
    python = config.get("python")
    if isinstance(python, str) and python:
        return python
    # pip puts Flink at <venv>/lib/pythonX.Y/site-packages/pyflink; that venv's python can run PyFlink jobs.
    if home.name == "pyflink" and home.parent.name == "site-packages":
        candidate = home.parents[3] / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return None


# What `flink run` prints for each job it submits (to its stdout), attached or detached.
_FLINK_JOB_SUBMITTED = re.compile(rb"Job has been submitted with JobID ([0-9a-f]{32})")
_CANCEL_SCAN_LIMIT = 64 * 1024 * 1024  # the line comes before a job's own output; a huge log is not read to its end


def cancel_flink_jobs(jobmanager: str, work_dir: Path, *, timeout: float = 5.0) -> list[str]:
    """Cancel, on the session cluster at ``jobmanager``, every Flink job the job in ``work_dir`` submitted.

    Killing ``flink run`` ends only the client: the job it submitted goes on running on the cluster. The JobIDs
    are read from the client's stdout, and each is cancelled through the JobManager's REST API
    (``PATCH /jobs/<id>?mode=cancel``); a job already finished answers an error, which is logged and ignored.
    Returns the JobIDs found.
    """
    import httpx

    found: list[str] = []
    try:
        with (work_dir / "stdout").open("rb") as handle:
            for line in handle:
                match = _FLINK_JOB_SUBMITTED.search(line)
                if match and match.group(1).decode() not in found:
                    found.append(match.group(1).decode())
                if handle.tell() > _CANCEL_SCAN_LIMIT:
                    break
    except OSError as exc:
        log.warning("cannot read %s/stdout for Flink JobIDs to cancel: %s", work_dir, exc)
        return found
    base = jobmanager if "://" in jobmanager else f"http://{jobmanager}"
    for job_id in found:
        try:
            response = httpx.patch(f"{base.rstrip('/')}/jobs/{job_id}", params={"mode": "cancel"}, timeout=timeout)
        except httpx.HTTPError as exc:
            log.warning("cancelling Flink job %s at %s failed: %s", job_id, jobmanager, exc)
            continue
        if response.status_code >= 400:
            log.info(
                "Flink job %s at %s not cancelled (%s): %s",
                job_id,
                jobmanager,
                response.status_code,
                response.text[:300],
            )
    return found


def write_local_flink_conf(
    flink_home: Path, target: Path, *, rest_port: int | None = None, rpc_port: int | None = None
) -> Path:
    """A copy of ``flink_home``'s conf directory in ``target`` with every bind and advertised address on 127.0.0.1
    (:func:`headwater.jobs.drivers.flink_conf.write_local_flink_conf`, which the application clusters use too)."""
    from headwater.jobs.drivers import flink_conf

    try:
        return flink_conf.write_local_flink_conf(flink_home, target, rest_port=rest_port, rpc_port=rpc_port)
    except flink_conf.FlinkConfError as exc:
        raise EngineError(str(exc)) from exc


class FlinkEngine(JobEngine):
    """``flink run`` on the cluster's JobManager (``-m``) or a local mini-cluster (``-t local``)."""

    def launch(self, job: JobContext) -> Launch:
        """flink run <target> -D ... [-pyclientexec/-pyexec] <command args> <job args>."""
        config = job.cluster_config
        home = find_flink_home(config)
        program = Path(job.command[0]).name
        command = job.command[1:] if program in FLINK_PROGRAMS else job.command
        if config.get("mode") == "application":
            return self._application(job, home, program, [*command, *job.args])
        if config.get("mode") is not None:
            raise EngineError(f"Flink cluster config mode={config['mode']!r}: the only mode is 'application'")
        jobmanager = config.get("jobmanager")
        argv = [str(home / "bin" / "flink"), "run"]
        argv += ["-m", str(jobmanager)] if jobmanager else ["-t", "local"]
        for key, value in self._options(job).items():
            argv += ["-D", f"{key}={value}"]
        tail = [*command, *job.args]
        if program == "flink-sql":
            # "--" ends flink's own options: its CLI would otherwise take the runner's -e as its --executor.
            tail = ["-py", str(FLINK_SQL_RUNNER), "--", *tail]
        python_job = any(arg in {"-py", "--python", "-pym", "--pyModule"} for arg in tail)
        python = _flink_python(config, home)
        if python and python_job:
            argv += ["-pyclientexec", python, "-pyexec", python]
        env = {"FLINK_HOME": str(home)}
        if program == "flink" and python_job and config.get("pyflink_lineage", True) is not False:
            # The PyFlink client (on this host, for a session cluster too) imports the hook's sitecustomize and
            # records the statements it runs in the job's directory; flink-sql's SQL is read from its arguments.
            env["PYTHONPATH"] = str(HOOK_DIR)
            env[EVENTS_FILE_ENV] = EVENTS_FILE
        if config.get("conf_dir"):
            env["FLINK_CONF_DIR"] = str(config["conf_dir"])
        if jobmanager:
            # The job itself runs on the cluster, out of reach of a kill of the client's process group.
            return Launch(argv=[*argv, *tail], env=env, cancel=functools.partial(cancel_flink_jobs, str(jobmanager)))
        # In a local deployment PyFlink otherwise starts its "loopback" gRPC worker pool, which listens on every
        # interface ([::]); "process" mode runs Python functions in child processes and binds nothing.
        env["_python_worker_execution_mode"] = "process"
        return Launch(argv=[*argv, *tail], env=env)

    def _application(self, job: JobContext, home: Path, program: str, tail: list[str]) -> Launch:
        """The supervisor of a per-job application cluster (:mod:`headwater.jobs.drivers.flink_application`)."""
        from headwater.jobs.drivers import SPEC_ENV, flink_application, supervise

        config = job.cluster_config
        if config.get("jobmanager"):
            raise EngineError("a Flink cluster has either jobmanager (a session cluster) or mode: application")
        restore = config.get("restore")
        if tail[:1] in (["-s"], ["--fromSavepoint"]) and len(tail) > 1:
            restore, tail = tail[1], tail[2:]  # the job asks: "-s latest" or "-s <savepoint>", flink run's flag
        if program == "flink-sql":
            tail = ["-py", str(FLINK_SQL_RUNNER), *tail]
        python_job = any(arg in {"-py", "--python", "-pym", "--pyModule"} for arg in tail)
        argv = [str(home / "bin" / "standalone-job.sh"), "start-foreground"]
        jars: list[str] = []
        if python_job:
            argv += ["--job-classname", flink_application.PYTHON_DRIVER]
        else:  # [-c Main] app.jar args...: the jar goes on the user classpath (usrlib/), the rest to its main
            if tail[:1] in (["-c"], ["--class"]) and len(tail) > 1:
                argv += ["--job-classname", tail[1]]
                tail = tail[2:]
            if not tail or not tail[0].endswith(".jar"):
                raise EngineError("a Flink application is a PyFlink program (-py job.py) or a jar ([-c Main] app.jar)")
            jars, tail = [tail[0]], tail[1:]
        try:
            flink_job_id = uuid.UUID(job.run_uuid).hex  # the Flink job id is the job's run id
        except ValueError:
            flink_job_id = uuid.uuid5(uuid.NAMESPACE_URL, f"headwater:{job.job_id}:{job.run_uuid}").hex
        argv += ["--job-id", flink_job_id]
        options = self._options(job)
        python = _flink_python(config, home)
        if python and python_job:
            options.update({"python.client.executable": python, "python.executable": python})
        options.setdefault("jobmanager.memory.process.size", str(config.get("jobmanager_memory", "768m")))
        argv += [f"-D{key}={value}" for key, value in options.items()]
        taskmanager = {str(k): str(v) for k, v in (config.get("conf") or {}).items()}
        taskmanager.setdefault("taskmanager.memory.process.size", str(config.get("taskmanager_memory", "1024m")))
        spec = {
            "manager": flink_application.FlinkApplicationManager.name,
            "config": {
                "flink_home": str(home), "conf_dir": config.get("conf_dir"), "job_id": flink_job_id,
                "job_name": job.job_name, "python_job": python_job, "jars": jars, "taskmanager_conf": taskmanager,
                "savepoint_dir": config.get("savepoint_dir"), "restore": restore,
                "allow_non_restored_state": config.get("allow_non_restored_state", False),
                "kill_timeout": config.get("kill_timeout", 20.0),
            },
        }  # fmt: skip
        env = {SPEC_ENV: json.dumps(spec), "FLINK_HOME": str(home)}
        if python_job and program == "flink" and config.get("pyflink_lineage", True) is not False:
            # The PyFlink program runs in the JobManager, a child of the supervisor in the job's directory: the
            # PythonDriver keeps this PYTHONPATH (after its own entries), so the hook records there as it does
            # for flink run's client.
            env["PYTHONPATH"] = str(HOOK_DIR)
            env[EVENTS_FILE_ENV] = EVENTS_FILE
        # Polled often: REST calls to a JobManager of its own are cheap, and a kill's grace is short.
        supervisor = supervise.command([*argv, *tail], poll=0.5, kill_wait=float(config.get("kill_timeout", 20.0)))
        # No kill from the worker: the application cluster is the job's own processes, which the kill of its
        # process group ends (the supervisor cancels or stops with a savepoint first, within the grace).
        return Launch(argv=supervisor, env=env)

    @staticmethod
    def _options(job: JobContext) -> dict[str, str]:
        config = job.cluster_config
        options = {str(k): str(v) for k, v in (config.get("conf") or {}).items()}
        options.update(
            {
                "openlineage.job.namespace": LINEAGE_NAMESPACE,
                "openlineage.job.name": job.job_name,
                "openlineage.run.tags": f"headwater_run_id:{job.run_uuid};headwater_job_id:{job.job_id}",
            }
        )
        url = config.get("openlineage_url")
        if url:
            options.update(
                {
                    "openlineage.transport.type": "http",
                    "openlineage.transport.url": str(url).rstrip("/"),
                    "openlineage.transport.endpoint": "/api/v1/lineage",
                }
            )
        return options


def engine_for(cluster_type: str) -> JobEngine:
    """The engine of a cluster type."""
    if cluster_type == ClusterType.SHELL.value:
        return ShellEngine()
    if cluster_type == ClusterType.SPARK.value:
        return SparkEngine()
    if cluster_type == ClusterType.FLINK.value:
        return FlinkEngine()
    raise EngineError(f"no engine for cluster type {cluster_type!r}")
