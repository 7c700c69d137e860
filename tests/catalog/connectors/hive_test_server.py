"""A real Hive Metastore for the tests: Hive 2.3's Thrift server from pyspark's jars, filled by Spark.

Filling a metastore with Spark costs one JVM run (~30 s), so it happens once per test run: the first
xdist worker builds an *image* (an embedded Derby database plus a warehouse directory) under a lock
in the run's shared temporary directory, and every metastore the tests start — one per worker for the
read-only tests, one per fault test that changes or kills it — serves its own copy of that Derby
database from its own JVM (~5 s to listen). Servers bind 127.0.0.1 and are stopped by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spark_submit import spark_submit

HERE = Path(__file__).parent
LAUNCHER = HERE / "LocalMetastore.java"
FILL_JOB = HERE / "hive_fill_job.py"
# The JVMs here are short-lived: the C1 compiler alone starts them markedly faster.
FAST_START = "-XX:TieredStopAtLevel=1"
JAVA_OPTS = [
    "-Xmx512m",
    FAST_START,
    *(
        f"--add-opens=java.base/{package}=ALL-UNNAMED"
        for package in ("java.lang", "java.util", "java.net", "java.lang.reflect", "java.io", "sun.nio.ch")
    ),
]
START_TIMEOUT = 120.0

HIVE_SITE = """<?xml version="1.0"?>
<configuration>
  <property><name>javax.jdo.option.ConnectionURL</name><value>jdbc:derby:;databaseName={derby};create=true</value></property>
  <property><name>javax.jdo.option.ConnectionDriverName</name><value>org.apache.derby.jdbc.EmbeddedDriver</value></property>
  <property><name>datanucleus.schema.autoCreateAll</name><value>true</value></property>
  <property><name>hive.metastore.schema.verification</name><value>false</value></property>
  <property><name>datanucleus.connectionPoolingType</name><value>HikariCP</value></property>
  <property><name>hive.metastore.warehouse.dir</name><value>{warehouse}</value></property>
</configuration>
"""


class HiveUnavailable(Exception):
    """The metastore cannot be run here (no Java, no pyspark) or did not start."""


def pyspark_home() -> Path:
    """The installed pyspark package directory (it holds bin/spark-submit and jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise HiveUnavailable("pyspark is not installed (make test installs pyspark==4.3.0)")
    return Path(next(iter(spec.submodule_search_locations)))


def missing_tools() -> str | None:
    """Why a metastore cannot run on this machine, or None."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} (Java 17) is not on PATH"
    if importlib.util.find_spec("hive_metastore") is None:
        return "the Hive Thrift client is not installed: pip install 'headwater[hive]'"
    try:
        pyspark_home()
    except HiveUnavailable as exc:
        return str(exc)
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def compile_launcher(classes: Path) -> Path:
    """Compile LocalMetastore.java against pyspark's jars into ``classes``."""
    classes.mkdir(parents=True, exist_ok=True)
    jars = pyspark_home() / "jars"
    # Only the jars the launcher names: scanning all ~300 of pyspark's makes javac several times slower.
    needed = [
        str(jar)
        for pattern in (
            "hive-metastore-*.jar",
            "hive-common-*.jar",
            "hive-shims-common-*.jar",
            "libthrift-*.jar",
            "libfb303-*.jar",
            "hadoop-client-api-*.jar",
        )
        for jar in jars.glob(pattern)
    ]
    result = subprocess.run(
        ["javac", f"-J{FAST_START}", "-d", str(classes), "-cp", ":".join(needed), str(LAUNCHER)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise HiveUnavailable(f"cannot compile the metastore launcher: {result.stderr[-2000:]}")
    return classes


class Metastore:
    """One Hive Metastore Thrift server process serving a Derby database, on 127.0.0.1."""

    def __init__(self, root: Path, *, derby: Path, classes: Path, warehouse: str) -> None:
        self.root = root
        self.derby = derby
        self.classes = classes
        self.warehouse = warehouse
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The Thrift URI Spark and Hive clients use."""
        return f"thrift://127.0.0.1:{self.port}"

    def config(self, **extra: Any) -> dict[str, Any]:
        """The Headwater source config of this metastore."""
        return {"host": "127.0.0.1", "port": self.port, **extra}

    def start(self) -> Metastore:
        """Start the server and wait until it accepts connections."""
        conf = self.root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "hive-site.xml").write_text(HIVE_SITE.format(derby=self.derby, warehouse=self.warehouse))
        self.port = free_port()
        log = self.root / "metastore.log"
        jars = pyspark_home() / "jars"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "java",
                    *JAVA_OPTS,
                    f"-Dderby.system.home={self.root}",
                    "-cp",
                    f"{self.classes}:{conf}:{jars}/*",
                    "LocalMetastore",
                    str(self.port),
                ],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HiveUnavailable(f"the metastore exited with {self.process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.2)
        self.stop()
        raise HiveUnavailable(f"the metastore did not listen within {START_TIMEOUT:.0f} s:\n{_tail(log)}")

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), as a crash or a lost machine would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A Thrift client on this metastore (the same generated client the connector uses)."""
        from hive_metastore import ThriftHiveMetastore
        from thrift.protocol import TBinaryProtocol
        from thrift.transport import TSocket, TTransport

        transport = TTransport.TBufferedTransport(TSocket.TSocket("127.0.0.1", self.port))
        transport.open()
        try:
            yield ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
        finally:
            transport.close()


class HiveImage:
    """A Derby metastore database filled by Spark, and the warehouse its tables point at."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.derby = root / "derby" / "metastore"
        self.classes = root / "classes"
        self.warehouse = f"file://{root / 'warehouse'}"
        self.external = root / "external" / "raw_events"

    @property
    def ready(self) -> Path:
        return self.root / "READY"

    @property
    def failed(self) -> Path:
        return self.root / "FAILED"

    def build(self) -> None:
        """Compile the launcher, start a metastore on an empty Derby database and fill it with Spark."""
        compile_launcher(self.classes)
        self.external.mkdir(parents=True, exist_ok=True)
        (self.external / "part-0.csv").write_text("GET /,web\nGET /cart,app\n")
        server = Metastore(self.root / "builder", derby=self.derby, classes=self.classes, warehouse=self.warehouse)
        server.root.mkdir(parents=True, exist_ok=True)
        server.start()
        try:
            spark_dir = self.root / "spark"
            spark_dir.mkdir(exist_ok=True)
            command, env = spark_submit(FILL_JOB, server.uri, self.warehouse, str(self.external), derby_home=spark_dir)
            log = self.root / "spark-fill.log"
            with log.open("wb") as out:
                result = subprocess.run(
                    command, cwd=spark_dir, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600
                )
            if result.returncode != 0:
                raise HiveUnavailable(f"the Spark job filling the metastore failed:\n{_tail(log, 30)}")
        finally:
            server.stop()
        self.ready.touch()

    def serve(self, root: Path) -> Metastore:
        """Start a metastore on a private copy of the image's Derby database."""
        root.mkdir(parents=True, exist_ok=True)
        derby = root / "derby"
        shutil.copytree(self.derby, derby)
        return Metastore(root, derby=derby, classes=self.classes, warehouse=self.warehouse).start()


def shared_image(base: Path) -> HiveImage:
    """The run's image, built by whichever worker gets here first (the others wait for it)."""
    image = HiveImage(base / "hive-image")
    image.root.mkdir(parents=True, exist_ok=True)
    with (base / "hive-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if image.failed.exists():
                raise HiveUnavailable(image.failed.read_text())
            if not image.ready.exists():
                try:
                    image.build()
                except HiveUnavailable as exc:
                    image.failed.write_text(str(exc))
                    raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return image


def create_database(client: Any, name: str, **parameters: str) -> None:
    """Create a database through Thrift, as Hive's CREATE DATABASE does."""
    from hive_metastore.ttypes import Database

    client.create_database(Database(name=name, description=f"{name} (test)", parameters=parameters))


def create_table(
    client: Any,
    database: str,
    name: str,
    columns: list[tuple[str, str]],
    *,
    partition_keys: list[tuple[str, str]] | None = None,
    parameters: dict[str, str] | None = None,
) -> None:
    """Create a Parquet table through Thrift, the way Hive's CREATE TABLE records one."""
    from hive_metastore.ttypes import FieldSchema, SerDeInfo, StorageDescriptor, Table

    client.create_table(
        Table(
            tableName=name,
            dbName=database,
            owner="headwater-test",
            tableType="MANAGED_TABLE",
            parameters=parameters or {},
            partitionKeys=[FieldSchema(name=n, type=t) for n, t in partition_keys or []],
            sd=StorageDescriptor(
                cols=[FieldSchema(name=n, type=t) for n, t in columns],
                inputFormat="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                outputFormat="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                serdeInfo=SerDeInfo(serializationLib="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
            ),
        )
    )


def alter_columns(client: Any, database: str, name: str, columns: list[tuple[str, str]]) -> None:
    """Replace a table's columns through Thrift alter_table, as Hive's ALTER TABLE ... CHANGE COLUMN does."""
    from hive_metastore.ttypes import FieldSchema

    table = client.get_table(database, name)
    table.sd.cols = [FieldSchema(name=n, type=t) for n, t in columns]
    client.alter_table(database, name, table)


def add_partition(client: Any, database: str, name: str, values: list[str]) -> None:
    """Add a partition through Thrift, as Hive's ALTER TABLE ... ADD PARTITION does (no data files)."""
    import copy

    from hive_metastore.ttypes import Partition

    table = client.get_table(database, name)
    sd = copy.deepcopy(table.sd)
    spec = "/".join(f"{key.name}={value}" for key, value in zip(table.partitionKeys, values, strict=True))
    sd.location = f"{table.sd.location}/{spec}"
    client.add_partition(Partition(values=values, dbName=database, tableName=name, sd=sd, parameters={}))
