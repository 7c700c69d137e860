"""The Kafka connector: topics from the Kafka admin API, their schemas from a Schema Registry.

Topics, partitions, replication and configs come from confluent-kafka's ``AdminClient``; key and value
schemas from any Confluent-compatible Schema Registry through ``confluent_kafka.schema_registry``'s
``SchemaRegistryClient``, by the TopicNameStrategy (subjects ``<topic>-key`` and ``<topic>-value``).
Avro, JSON Schema and Protobuf are parsed into nested fields (:mod:`.kafka_schemas`).

A dataset's fields are the value schema's fields at the top level — the names lineage events use —
and the key schema's under one top-level ``_key`` field. Every registered version of either subject is
schema history: the two subjects' versions are merged into one timeline (a version sorts by the
highest schema id its subject had reached, ids being handed out in registration order), and each step
of it is a schema whose ``source_schema_id`` reads ``key:<version>/value:<version>`` (0: none yet).

The listing reads the topic metadata once, then per page one ``describe_configs`` for the page's
topics and the version list of each topic's subjects; their hash is the version token, so an
incremental sync loads only topics whose partitions, configs or schemas changed. Datasets follow
OpenLineage naming: namespace ``kafka://<first bootstrap server>``, name = the topic.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from headwater.catalog.connectors.base import Connector, ConnectorConfig, ConnectorError, unreachable
from headwater.catalog.connectors.kafka_schemas import (
    Node,
    SchemaParseError,
    flatten_nodes,
    parse_avro,
    parse_json_schema,
    parse_protobuf,
)
from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset
from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot, HistoricalSchema
from headwater.egress import EgressPolicy

__all__ = ["KEY_FIELD", "KafkaConfig", "KafkaConnector"]

log = logging.getLogger("headwater.sync.kafka")

KEY_FIELD = "_key"
_PARTS = ("key", "value")


class KafkaConfig(ConnectorConfig):
    """How to reach the brokers and the Schema Registry; passwords come from the source's secrets
    ``sasl_password`` and ``schema_registry_password``."""

    bootstrap_servers: str = Field(
        min_length=3, max_length=4096, pattern=r"^[^\s,]+:\d+(,[^\s,]+:\d+)*$", description="host:port[,host:port]"
    )
    schema_registry_url: str | None = Field(
        default=None, max_length=4096, pattern=r"^https?://", description="Confluent-compatible Schema Registry URL."
    )
    schema_registry_user: str | None = Field(default=None, max_length=255, description="Registry basic-auth user.")
    topic_pattern: str | None = Field(default=None, max_length=1000, description="Only topics matching this regex.")
    include_internal: bool = Field(default=False, description="Also list internal topics (names starting with _).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = Field(default=None, max_length=255)
    timeout_seconds: float = Field(default=15.0, gt=0, le=300, description="Longest wait for one admin request.")
    properties: dict[str, str] = Field(default_factory=dict, description="Further librdkafka client properties.")

    @field_validator("properties")
    @classmethod
    def _safe_properties(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.lower() in REFUSED_PROPERTIES:
                raise ValueError(
                    f"the librdkafka property {key!r} is refused: it loads code, runs a command or names the brokers "
                    "(use bootstrap_servers)"
                )
        return value

    @field_validator("topic_pattern")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


@dataclass
class _Topic:
    """What the listing learnt about one topic."""

    name: str
    partitions: int
    replication: int
    configs: dict[str, str]
    subjects: dict[str, list[int]] = field(default_factory=dict)  # "key"/"value" -> registered versions

    def version(self) -> str:
        payload = [self.partitions, self.replication, sorted(self.configs.items()), sorted(self.subjects.items())]
        return hashlib.sha256(orjson.dumps(payload)).hexdigest()


@dataclass
class _Registered:
    """One registered version of a subject, parsed."""

    part: str
    version: int
    schema_id: int
    schema_type: str
    nodes: list[Node]
    description: str | None


# librdkafka properties a source may not set: they load shared libraries or run commands on the server, or name
# brokers past the egress check of bootstrap_servers. Properties naming files (*.location, *.file, *keytab) are
# read only from HEADWATER_EGRESS_FILE_DIRS; ones naming URLs (*.url) are checked like any endpoint.
REFUSED_PROPERTIES = frozenset(
    {
        "plugin.library.paths",
        "sasl.kerberos.kinit.cmd",
        "ssl.engine.location",
        "ssl.engine.id",
        "ssl_engine_callback_data",
        "ssl.providers",
        "bootstrap.servers",
        "metadata.broker.list",
        "client.dns.lookup",
    }
)


def _file_property(key: str) -> bool:
    key = key.lower()
    return key.endswith((".location", ".file", "keytab", ".stores"))


def _error(what: str, exc: BaseException) -> ConnectorError:
    text = str(exc).strip().splitlines()
    return ConnectorError(f"{what}: {text[0] if text else type(exc).__name__}")


class KafkaConnector(Connector):
    """Reads topics from Kafka brokers and their schemas from a Schema Registry."""

    kind = "kafka"
    Config = KafkaConfig
    extra = "kafka"
    requires = ("confluent_kafka", "fastavro")
    # The brokers, the registry, and how the password is sent; properties can name other endpoints.
    endpoint_keys = ("bootstrap_servers", "schema_registry_url", "security_protocol", "sasl_mechanism", "properties")
    config: KafkaConfig

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        first = self.config.bootstrap_servers.split(",")[0]
        self.namespace = f"kafka://{first}"
        self._admin: Any = None
        self._registry: Any = None
        self._page: dict[str, _Topic] = {}

    # ---------------------------------------------------------------------------------- clients

    @property
    def admin(self) -> Any:
        """The Kafka admin client (librdkafka connects lazily)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            conf: dict[str, Any] = {
                **self.config.properties,
                "bootstrap.servers": self.config.bootstrap_servers,
                "client.id": "headwater-sync",
                "socket.timeout.ms": int(self.config.timeout_seconds * 1000),
                "logger": log,  # librdkafka's connection errors go to logging, not stderr
            }
            if self.config.security_protocol:
                conf["security.protocol"] = self.config.security_protocol
            if self.config.sasl_mechanism:
                conf["sasl.mechanism"] = self.config.sasl_mechanism
                conf["sasl.username"] = self.config.sasl_username or ""
                conf["sasl.password"] = self.secrets.get("sasl_password", "")
            try:
                self._admin = AdminClient(conf)
            except Exception as exc:
                raise _error("invalid Kafka client settings", exc) from exc
        return self._admin

    @property
    def registry(self) -> Any:
        """The Schema Registry client, or None without a registry URL."""
        if self._registry is None and self.config.schema_registry_url:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            conf: dict[str, Any] = {
                "url": self.config.schema_registry_url,
                "timeout": self.config.timeout_seconds,
                "max.retries": 1,
            }
            if self.config.schema_registry_user:
                password = self.secrets.get("schema_registry_password", "")
                conf["basic.auth.user.info"] = f"{self.config.schema_registry_user}:{password}"
            self._registry = SchemaRegistryClient(conf)
        return self._registry

    def _registry_call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.registry, method)(*args, **kwargs)
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 404:
                raise LookupError(what) from exc
            raise _error(f"cannot {what} from the Schema Registry at {self.config.schema_registry_url}", exc) from exc

    @property
    def _registry_url(self) -> str:
        return str(self.config.schema_registry_url)

    @property
    def where(self) -> str:
        """The brokers, for messages."""
        return f"Kafka at {self.config.bootstrap_servers}"

    @classmethod
    def check_egress(cls, config: KafkaConfig, policy: EgressPolicy) -> None:
        """The brokers, the registry, and the URLs and files the properties name must be allowed (librdkafka
        resolves the brokers' names itself: see docs/security/egress.md)."""
        for server in config.bootstrap_servers.split(","):
            host, _, port = server.rpartition(":")
            policy.check_host(host.strip("[]"), int(port))
        if config.schema_registry_url:
            policy.check_url(config.schema_registry_url)
        for key, value in config.properties.items():
            if _file_property(key):
                policy.check_file(value)
            elif key.lower().endswith(".url"):
                policy.check_url(value)

    def check(self) -> None:
        """Reach the brokers and, when configured, the Schema Registry; a failure to reach either is "could not
        reach" whatever the cause (an open port must look like a closed one)."""
        try:
            self._metadata()
        except ConnectorError as exc:
            raise unreachable(self.where, exc) from None
        if self.registry is not None:
            try:
                self.registry.get_subjects()
            except Exception as exc:
                if getattr(exc, "http_status_code", None) in (401, 403):  # a registry refused the credentials
                    raise _error(f"cannot list subjects from the Schema Registry at {self._registry_url}", exc) from exc
                raise unreachable(f"the Schema Registry at {self._registry_url}", exc) from None

    def close(self) -> None:
        """Drop the clients (librdkafka closes its connections when the client is released)."""
        self._admin = None
        self._registry = None
        self._page = {}
        super().close()

    # ---------------------------------------------------------------------------------- listing

    def _metadata(self, topic: str | None = None) -> Any:
        try:
            return self.admin.list_topics(topic=topic, timeout=self.config.timeout_seconds)
        except ConnectorError:
            raise
        except Exception as exc:
            raise _error(f"cannot list the topics of {self.where}", exc) from exc

    def _wanted(self, name: str) -> bool:
        if not self.config.include_internal and name.startswith("_"):
            return False
        pattern = self.config.topic_pattern
        return pattern is None or re.fullmatch(pattern, name) is not None

    def _configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        """Topic configs of a page's topics in one request; a topic deleted meanwhile is left out."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import ConfigResource, ResourceType

        futures = self.admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, name) for name in names],
            request_timeout=self.config.timeout_seconds,
        )
        out: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise _error(f"cannot read the configs of topic {resource.name!r} on {self.where}", exc) from exc
            except Exception as exc:
                raise _error(f"cannot read the configs of topic {resource.name!r} on {self.where}", exc) from exc
            out[resource.name] = {
                name: str(entry.value)
                for name, entry in entries.items()
                if entry.value is not None and not entry.is_sensitive
            }
        return out

    def _subject_versions(self, topic: str, subjects: set[str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for part in _PARTS:
            subject = f"{topic}-{part}"
            if subject not in subjects:
                continue
            try:
                versions = self._registry_call(f"list the versions of {subject!r}", "get_versions", subject)
            except LookupError:
                continue  # deleted since the subject list was read
            if versions:
                found[part] = sorted(int(v) for v in versions)
        return found

    def _describe(self, metadata: Any, name: str, configs: dict[str, str], subjects: set[str]) -> _Topic:
        partitions = metadata.partitions
        replication = max((len(p.replicas) for p in partitions.values()), default=0)
        topic = _Topic(name=name, partitions=len(partitions), replication=replication, configs=configs)
        if subjects:
            topic.subjects = self._subject_versions(name, subjects)
        return topic

    def list_pages(self) -> Iterator[ListingPage]:
        """Every topic, page by page, with a hash of partitions, configs and schema versions as its version."""
        metadata = self._metadata()
        topics = metadata.topics
        names = sorted(name for name in topics if self._wanted(name))
        subjects: set[str] = set()
        if self.registry is not None:
            subjects = set(self._registry_call("list subjects", "get_subjects"))
        size = self.config.page_size
        for start in range(0, len(names), size):
            chunk = names[start : start + size]
            configs = self._configs(chunk)
            self._page = {
                name: self._describe(topics[name], name, configs[name], subjects) for name in chunk if name in configs
            }
            refs = [
                DatasetRef(namespace=self.namespace, name=name, version=topic.version(), kind=DatasetKind.TOPIC)
                for name, topic in self._page.items()
            ]
            if refs:
                yield ListingPage(refs=refs)
        self._page = {}

    # ---------------------------------------------------------------------------------- loading

    def load(self, ref: DatasetRef) -> LoadedDataset:
        """One topic with its key and value schemas and their history."""
        topic = self._page.get(ref.name)
        if topic is None:
            metadata = self._metadata(ref.name).topics.get(ref.name)
            if metadata is None or metadata.error is not None:
                raise ConnectorError(f"topic {ref.name!r} disappeared while it was read")
            configs = self._configs([ref.name])
            if ref.name not in configs:
                raise ConnectorError(f"topic {ref.name!r} disappeared while it was read")
            subjects: set[str] = set()
            if self.registry is not None:
                subjects = set(self._registry_call("list subjects", "get_subjects"))
            topic = self._describe(metadata, ref.name, configs[ref.name], subjects)
        return LoadedDataset(snapshot=self._snapshot(topic), version=topic.version())

    def _registered(self, topic: str, part: str, version: int) -> _Registered | None:
        subject = f"{topic}-{part}"
        try:
            found = self._registry_call(f"read {subject!r} version {version}", "get_version", subject, version)
        except LookupError:
            return None
        schema = found.schema
        schema_type = (schema.schema_type or "AVRO").upper()
        text = schema.schema_str or ""
        try:
            if schema_type == "AVRO":
                references = [self._reference_text(ref) for ref in schema.references or []]
                nodes, description = parse_avro(text, references)
            elif schema_type == "JSON":
                nodes, description = parse_json_schema(text)
            elif schema_type == "PROTOBUF":
                nodes, description = parse_protobuf(text)
            else:
                raise SchemaParseError(f"unknown schema type {schema_type!r}")
        except SchemaParseError as exc:
            raise ConnectorError(f"{subject!r} version {version}: {exc}") from exc
        return _Registered(part, int(found.version), int(found.schema_id), schema_type, nodes, description)

    def _reference_text(self, reference: Any) -> str:
        found = self._registry_call(
            f"read referenced schema {reference.subject!r}", "get_version", reference.subject, reference.version
        )
        return str(found.schema.schema_str)

    @staticmethod
    def _fields(state: dict[str, _Registered]) -> list[FlatField]:
        """The value's fields at the top level, the key's under ``_key``; a plain value is ``_value``."""
        value = state.get("value")
        nodes: list[Node] = []
        if value is not None:
            if len(value.nodes) == 1 and value.nodes[0].name == "":  # not a record, e.g. a string
                plain = value.nodes[0]
                nodes.append(Node("_value", plain.type, plain.nullable, "the message value", plain.children))
            else:
                nodes.extend(value.nodes)
        key = state.get("key")
        if key is not None:
            taken = {node.name for node in nodes}
            name = KEY_FIELD
            while name in taken:  # a value field already has that name
                name = f"_{name}"
            if len(key.nodes) == 1 and key.nodes[0].name == "":
                plain = key.nodes[0]
                nodes.append(Node(name, plain.type, plain.nullable, "the message key", plain.children))
            else:
                nodes.append(Node(name, "struct", False, "the message key", key.nodes))
        return flatten_nodes(nodes)

    def _snapshot(self, topic: _Topic) -> DatasetSnapshot:
        timeline: list[tuple[int, int, int, _Registered]] = []
        for order, part in enumerate(_PARTS):
            highest = 0
            for version in topic.subjects.get(part, []):
                registered = self._registered(topic.name, part, version)
                if registered is None:
                    continue
                highest = max(highest, registered.schema_id)
                timeline.append((highest, order, version, registered))
        timeline.sort(key=lambda item: item[:3])
        state: dict[str, _Registered] = {}
        history: list[HistoricalSchema] = []
        for _, _, _, registered in timeline:
            if state:
                history.append(HistoricalSchema(fields=self._fields(state), source_schema_id=self._state_id(state)))
            state[registered.part] = registered
        properties = {
            "kafka.partitions": str(topic.partitions),
            "kafka.replication_factor": str(topic.replication),
            **{f"kafka.config.{name}": value for name, value in topic.configs.items()},
        }
        for part, registered in state.items():
            properties[f"kafka.{part}.subject"] = f"{topic.name}-{part}"
            properties[f"kafka.{part}.schema_type"] = registered.schema_type.lower()
            properties[f"kafka.{part}.schema_id"] = str(registered.schema_id)
            properties[f"kafka.{part}.version"] = str(registered.version)
        value = state.get("value")
        return DatasetSnapshot(
            namespace=self.namespace,
            name=topic.name,
            kind=DatasetKind.TOPIC,
            fields=self._fields(state),
            format=value.schema_type.lower() if value else "kafka",
            description=value.description if value else None,
            properties=properties,
            source_schema_id=self._state_id(state) if state else None,
            schema_history=history,
        )

    @staticmethod
    def _state_id(state: dict[str, _Registered]) -> str:
        return "/".join(f"{part}:{state[part].version if part in state else 0}" for part in _PARTS)
