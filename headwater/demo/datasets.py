"""The demo platform's declarations: a small model of a video-streaming company's data (Kafka topics of
playback, UI and device events, an Iceberg lake of raw and curated tables, Hive analytics tables).

Everything is declared here as module-level data so later work (lineage, jobs) has one place to extend;
:mod:`headwater.demo.platform` loads it. No Kafka broker or Hive metastore runs for the demo, so those
sources stay ``manual`` and each says so in its description.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from headwater.catalog.models import DatasetKind, SourceKind
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner, PartitionField, SourceCreate
from headwater.demo.names import HIVE_NAMESPACE, ICEBERG_NAMESPACE, KAFKA_NAMESPACE, WAREHOUSE, DemoDataset

__all__ = ["DEMO_DATASETS", "DEMO_SOURCES", "LAKE_TABLES"]

DEMO_SOURCES = (
    SourceCreate(
        name="demo-kafka",
        kind=SourceKind.MANUAL,
        namespace=KAFKA_NAMESPACE,
        description=(
            "Client event streams of the demo platform. Registered by hand: the demo runs no Kafka broker; "
            "this becomes a live kafka source once the Kafka connector can reach one."
        ),
    ),
    SourceCreate(
        name="demo-iceberg",
        kind=SourceKind.MANUAL,
        namespace=ICEBERG_NAMESPACE,
        description=(
            "The demo lakehouse: raw and curated Iceberg tables. Registered by hand: pyiceberg is not "
            "installed, so the demo runs no Iceberg warehouse (pip install 'headwater[iceberg]' makes it live)."
        ),
    ),
    SourceCreate(
        name="demo-hive",
        kind=SourceKind.MANUAL,
        namespace=HIVE_NAMESPACE,
        description=(
            "Analytics tables in the Hive metastore. Registered by hand: the demo runs no metastore; "
            "this becomes a live hive source once the Hive connector can reach one."
        ),
    ),
)


# --------------------------------------------------------------------------------- building blocks


def _f(
    name: str, type_: str, doc: str | None = None, *fields: FieldIn, required: bool = False, tags: Sequence[str] = ()
) -> FieldIn:
    """One field; struct members, a list's ``element`` and a map's ``key`` / ``value`` come as ``fields``."""
    return FieldIn(name=name, type=type_, nullable=not required, description=doc, tags=list(tags), fields=list(fields))


def _with_ids(fields: Sequence[FieldIn]) -> list[FieldIn]:
    """Iceberg-style field ids, numbered depth first from 1.

    Iceberg gives a new column the next free id, so a later schema that only appends top-level columns
    keeps every earlier id; a renamed column keeps its id, and the catalog sees a rename, not drop + add.
    """
    counter = itertools.count(1)

    def number(items: Sequence[FieldIn]) -> list[FieldIn]:
        return [item.model_copy(update={"field_id": next(counter), "fields": number(item.fields)}) for item in items]

    return number(fields)


def _owners(technical: str, business: str | None = None, steward: str | None = None) -> list[Owner]:
    roles = {"technical_owner": technical, "business_owner": business, "data_steward": steward}
    return [Owner(name=name, role=role) for role, name in roles.items() if name]


class _Dialect(NamedTuple):
    """How one system spells the types that the topics and the tables landed from them share."""

    record: str
    array: str
    timestamp: str
    enum: str


AVRO = _Dialect(record="record", array="array", timestamp="timestamp-millis", enum="enum")
ICEBERG = _Dialect(record="struct", array="list", timestamp="timestamptz", enum="string")

_EVENT_ID = _f("event_id", "string", "UUID the client assigns; the de-duplication key downstream.", required=True)
_MEMBER = [
    _f("member_id", "long", "The paying account.", required=True, tags=["pii"]),
    _f("profile_id", "long", "The viewer profile within the account.", required=True, tags=["pii"]),
]
_IP_ADDRESS = _f("ip_address", "string", "Client IP address; truncated to /24 after 30 days.", tags=["pii", "gdpr"])


def _event_ts(d: _Dialect) -> FieldIn:
    return _f("event_ts", d.timestamp, "When the client saw the event, by the client's clock.", required=True)


def _device(d: _Dialect) -> FieldIn:
    return _f(
        "device",
        d.record,
        "The device the client runs on.",
        _f("device_id", "string", "Stable per-install device identifier.", required=True, tags=["pii"]),
        _f("type", "string", "tv, mobile, web, console or streaming_stick.", required=True),
        _f("os", d.record, "Operating system.", _f("name", "string"), _f("version", "string")),
        _f("app_version", "string", "Client build, semver."),
        required=True,
    )


def _geo(d: _Dialect) -> FieldIn:
    return _f(
        "geo",
        d.record,
        "Where the request came from, resolved from the IP address at the edge.",
        _f("country", "string", "ISO 3166-1 alpha-2 country code."),
        _f("region", "string", "ISO 3166-2 subdivision code."),
    )


def _network(d: _Dialect) -> FieldIn:
    return _f(
        "network",
        d.record,
        "The connection the client reports.",
        _f("type", "string", "wifi, ethernet or cellular."),
        _f("bandwidth_kbps", "int", "Estimated throughput over the last ten seconds."),
    )


def _experiments(d: _Dialect) -> FieldIn:
    test = _f("test_id", "long", "The A/B test.", required=True)
    cell = _f("cell", "int", "The test cell (1 is the control).", required=True)
    allocation = _f("element", d.record, None, test, cell, required=True)
    doc = "A/B test allocations of the profile when the event happened."
    return _f("experiments", d.array, doc, allocation, tags=["experimentation"])


def _string_map(name: str, doc: str) -> FieldIn:
    return _f(name, "map", doc, _f("key", "string", required=True), _f("value", "string"))


def _playback_envelope(d: _Dialect) -> list[FieldIn]:
    return [
        _EVENT_ID,
        _event_ts(d),
        *_MEMBER,
        _f("session_id", "string", "Playback session: ties play, pause, seek and stop together.", required=True),
        _f("title_id", "long", "The movie or episode played.", required=True),
        _device(d),
        _geo(d),
        _IP_ADDRESS,
        _experiments(d),
    ]


def _ui_interactions_fields(d: _Dialect) -> list[FieldIn]:
    return [
        _EVENT_ID,
        _event_ts(d),
        *_MEMBER,
        _f("page", "string", "Page or screen: home, search, title_details, my_list.", required=True),
        _f("action", d.enum, "impression, click, scroll, hover or search.", required=True),
        _f(
            "target",
            d.record,
            "What the viewer interacted with.",
            _f("row_id", "string", "The row of the home page (e.g. trending_now)."),
            _f("rank", "int", "Position of the tile within the row, from 0."),
            _f("title_id", "long", "The title on the tile, if any."),
        ),
        _f("search_query", "string", "Free text the viewer typed; may contain personal data.", tags=["pii"]),
        _device(d),
        _geo(d),
        _experiments(d),
        _string_map("context", "Free-form client context (feature flags, referrer)."),
    ]


def _device_telemetry_fields(d: _Dialect) -> list[FieldIn]:
    error = _f("element", d.record, None, _f("code", "string", required=True), _f("message", "string"), required=True)
    return [
        _EVENT_ID,
        _event_ts(d),
        _f("member_id", "long", "The signed-in account, null before sign-in.", tags=["pii"]),
        _device(d),
        _network(d),
        _f(
            "metrics",
            d.record,
            "Health sample taken every 30 s while the app is open.",
            _f("cpu_pct", "double", "CPU use of the app process."),
            _f("memory_mb", "int", "Resident memory of the app process."),
            _f("dropped_frames", "int", "Frames dropped since the last sample."),
            _f("buffer_health_ms", "int", "Media buffered ahead of the playhead."),
            required=True,
        ),
        _f("errors", d.array, "Errors since the last sample.", error),
        _string_map("attributes", "Device capabilities: hdr, dolby_atmos, max_resolution."),
    ]


# ------------------------------------------------------------------------------------ kafka topics


def _topic(name: str, record: str, fields: list[FieldIn], *, partitions: int, **metadata: Any) -> DemoDataset:
    """A topic; ``metadata`` is what people say about it (DatasetCreate's description, tags, owners, properties)."""
    config = {
        "partitions": str(partitions),
        "replication.factor": "3",
        "retention.ms": str(int(metadata["properties"]["retention_days"]) * 86_400_000),
        "schema.subject": f"{name}-value",
    }
    source_description = f"Avro record {record}, BACKWARD compatible in the schema registry."
    create = DatasetCreate(
        source="demo-kafka",
        name=name,
        kind=DatasetKind.TOPIC,
        format="avro",
        source_description=source_description,
        source_properties=config,
        fields=fields,
        **metadata,
    )
    return DemoDataset(create)


_PLAYBACK_OWNERS = _owners("team:playback-data", "alice@streamco.example", "erin@streamco.example")
_POSITION = _f("position_ms", "long", "Playhead position in the title.", required=True)
_PLAYBACK_KINDS: dict[str, tuple[str, list[FieldIn]]] = {
    "play": (
        "started or resumed",
        [
            _POSITION,
            _f("bitrate_kbps", "int", "Video bitrate of the first segment."),
            _f("startup_ms", "int", "Time from the play request to the first frame."),
            _f("cdn", "record", "The Open Connect appliance serving it.", _f("name", "string"), _f("pop", "string")),
            _network(AVRO),
        ],
    ),
    "pause": (
        "paused by the viewer or by the player",
        [_POSITION, _f("reason", "enum", "user, buffering or interruption.", required=True), _network(AVRO)],
    ),
    "stop": (
        "ended",
        [
            _POSITION,
            _f("watched_ms", "long", "Time watched in this session.", required=True),
            _f("reason", "enum", "completed, user_exit, next_episode or error.", required=True),
            _f("error_code", "string", "Player error code when reason is error."),
        ],
    ),
    "seek": (
        "moved to another position by the viewer",
        [
            _f("from_position_ms", "long", "Playhead before the seek.", required=True),
            _f("to_position_ms", "long", "Playhead after the seek.", required=True),
        ],
    ),
}

_TOPICS = [
    *(
        _topic(
            f"playback.{kind}",
            f"streamco.playback.{kind.capitalize()}Event",
            [*_playback_envelope(AVRO), *extra],
            partitions=96,
            description=(
                f"Playback {what}: one event per occurrence from every client, about 200 ms after it happens. "
                "Landed in raw.playback_events; also feeds the real-time quality dashboards."
            ),
            tags=["streaming", "pii", "gdpr", "tier-1"],
            owners=_PLAYBACK_OWNERS,
            properties={"sla": "p99 end-to-end latency under 5 s", "retention_days": "7", "oncall": "#playback-oncall"},
        )
        for kind, (what, extra) in _PLAYBACK_KINDS.items()
    ),
    _topic(
        "ui.interactions",
        "streamco.ui.InteractionEvent",
        _ui_interactions_fields(AVRO),
        partitions=192,
        description="Impressions, clicks and searches; the input of personalisation and UI experiments.",
        tags=["streaming", "pii", "gdpr", "experimentation"],
        owners=_owners("team:ui-platform", "bob@streamco.example"),
        properties={"sla": "p99 end-to-end latency under 10 s", "retention_days": "3"},
    ),
    _topic(
        "device.telemetry",
        "streamco.device.Telemetry",
        _device_telemetry_fields(AVRO),
        partitions=64,
        description="Device health every 30 s: the source of crash and rebuffer alerting per OS version.",
        tags=["streaming", "tier-2"],
        owners=_owners("team:device-reliability", "dan@streamco.example"),
        properties={"sla": "best effort", "retention_days": "2"},
    ),
]

# ----------------------------------------------------------------------------------- iceberg lake


def _lake_table(
    name: str, fields: list[FieldIn], *, later_schemas: Sequence[list[FieldIn]] = (), **metadata: Any
) -> DemoDataset:
    """An Iceberg table; ``metadata`` holds the rest of its DatasetCreate (partitioning, descriptions, ...)."""
    db, table = name.split(".")
    create = DatasetCreate(
        source="demo-iceberg",
        name=name,
        format="iceberg",
        location=f"{WAREHOUSE}/{db}/{table}",
        source_properties={"format-version": "2", "write.format.default": "parquet"},
        fields=_with_ids(fields),
        **metadata,
    )
    return DemoDataset(create, tuple(_with_ids(later) for later in later_schemas))


def _day(column: str) -> PartitionField:
    return PartitionField(column=column, transform="day", name=f"{column}_day")


_PLAYBACK_EVENT_COLUMNS = [
    *_playback_envelope(ICEBERG),
    _f("event_type", "string", "play, pause, stop or seek: the topic the event came from.", required=True),
]
# raw.playback_events as the first ingestion job wrote it: an int playhead, a bitrate column that did
# not say its unit, and no network details.
_PLAYBACK_EVENTS_V1 = [
    *_PLAYBACK_EVENT_COLUMNS,
    _f("position_ms", "int", "Playhead position in the title.", required=True),
    _f("bitrate", "int", "Video bitrate (play events only)."),
    _f("watched_ms", "long", "Time watched (stop events only)."),
    _f("reason", "string", "Why playback paused or stopped."),
]
# Version 2: the playhead widened to long (live events report positions past the 24.8 days an int of
# milliseconds holds), bitrate renamed to say its unit (same position, so the same field id: a rename),
# and the network details carried through as a new column at the end.
_PLAYBACK_EVENTS_V2 = [
    *_PLAYBACK_EVENT_COLUMNS,
    _f("position_ms", "long", "Playhead position in the title.", required=True),
    _f("bitrate_kbps", "int", "Video bitrate in kbit/s (play events only)."),
    _f("watched_ms", "long", "Time watched (stop events only)."),
    _f("reason", "string", "Why playback paused or stopped."),
    _network(ICEBERG),
]

LAKE_TABLES = [
    _lake_table(
        "raw.playback_events",
        _PLAYBACK_EVENTS_V1,
        later_schemas=[_PLAYBACK_EVENTS_V2],
        partitioning=[_day("event_ts"), PartitionField(column="event_type")],
        source_description="All playback topics, landed every 5 minutes by the streaming ingestion job.",
        description="Every playback event, one row each, append-only. Start here for anything about viewing.",
        tags=["pii", "gdpr", "tier-1"],
        owners=_PLAYBACK_OWNERS,
        properties={"sla": "hour H complete by H+20min", "retention_days": "90"},
    ),
    _lake_table(
        "raw.ui_interactions",
        _ui_interactions_fields(ICEBERG),
        partitioning=[_day("event_ts")],
        source_description="Landed from the ui.interactions topic every 5 minutes.",
        description="UI interactions as they arrived; impressions are about 95% of the rows.",
        tags=["pii", "gdpr", "experimentation"],
        owners=_owners("team:ui-platform"),
        properties={"sla": "hour H complete by H+30min", "retention_days": "30"},
    ),
    _lake_table(
        "raw.device_telemetry",
        _device_telemetry_fields(ICEBERG),
        partitioning=[
            PartitionField(column="event_ts", transform="hour", name="event_ts_hour"),
            PartitionField(column="device.device_id", transform="bucket[16]", name="device_id_bucket"),
        ],
        source_description="Landed from the device.telemetry topic every 5 minutes.",
        description="Device health samples; filter on device.os.version to compare app releases.",
        tags=["tier-2"],
        owners=_owners("team:device-reliability"),
        properties={"retention_days": "14"},
    ),
    _lake_table(
        "curated.viewing_sessions",
        [
            _f("session_id", "string", "Playback session id from the client.", required=True),
            *_MEMBER,
            _f("title_id", "long", "The movie or episode watched.", required=True),
            _f("session_start", "timestamptz", "First play event of the session.", required=True),
            _f("session_end", "timestamptz", "Stop event, or the last event plus 30 min of silence."),
            _f("watched_ms", "long", "Time actually watched, seeks excluded.", required=True),
            _f("max_position_ms", "long", "Furthest playhead position reached."),
            _f("completed", "boolean", "Watched past the end credits marker.", required=True),
            _f("avg_bitrate_kbps", "int", "Time-weighted average video bitrate."),
            _f("rebuffer_count", "int", "Pauses with reason buffering."),
            _f("seek_count", "int"),
            _f("device_type", "string"),
            _f("country", "string", "ISO 3166-1 alpha-2 country code."),
            _experiments(ICEBERG),
        ],
        partitioning=[_day("session_start"), PartitionField(column="member_id", transform="bucket[32]")],
        source_description="Sessionised from raw.playback_events by the hourly viewing_sessions job.",
        description="One row per playback session. The certified source for viewing time and completion.",
        tags=["certified", "tier-1", "pii", "gdpr"],
        owners=_PLAYBACK_OWNERS,
        properties={"sla": "hour H complete by H+45min", "retention_days": "730", "quality_checks": "12"},
    ),
    _lake_table(
        "curated.title_catalog",
        [
            _f("title_id", "long", "The movie or episode.", required=True),
            _f("title_name", "string", "Original title.", required=True),
            _f("title_type", "string", "movie, episode or special.", required=True),
            _f(
                "series",
                "struct",
                "Set for episodes.",
                _f("series_id", "long", required=True),
                _f("season_number", "int"),
                _f("episode_number", "int"),
            ),
            _f("runtime_ms", "long", "Runtime without credits."),
            _f("release_date", "date", "First available on the service."),
            _f("genres", "list", None, _f("element", "string", required=True)),
            _f("maturity_rating", "string", "Rating in the title's home market."),
            _f("original_language", "string", "BCP 47 language tag."),
            _string_map("localized_titles", "Title by BCP 47 language tag."),
        ],
        partitioning=[PartitionField(column="title_type")],
        source_description="Daily snapshot of the content metadata service.",
        description="Every title on the service with its series, genres and localized names.",
        tags=["certified", "tier-1"],
        owners=_owners("team:content-data", "carol@streamco.example"),
        properties={"sla": "daily by 02:00 UTC", "retention_days": "3650"},
    ),
    _lake_table(
        "curated.member_profiles",
        [
            *_MEMBER,
            _f("profile_name", "string", "Name the member gave the profile.", tags=["pii"]),
            _f("email", "string", "Account e-mail address.", tags=["pii", "gdpr"]),
            _f("country", "string", "Country of the billing address.", required=True),
            _f("plan", "string", "basic, standard or premium.", required=True),
            _f("signup_date", "date", required=True),
            _f("maturity_level", "string", "Parental control level of the profile."),
            _f("language", "string", "Display language, BCP 47."),
        ],
        partitioning=[PartitionField(column="country")],
        source_description="Nightly export of the membership service; erasure requests applied on load.",
        description="Accounts and profiles. Restricted: access needs a data-protection approval.",
        tags=["pii", "gdpr", "restricted", "tier-1"],
        owners=_owners("team:membership-data", steward="erin@streamco.example"),
        properties={"sla": "daily by 04:00 UTC", "retention_days": "30", "access": "restricted"},
    ),
]

# ------------------------------------------------------------------------------ hive analytics


def _analytics_table(name: str, fields: list[FieldIn], *, owner: str, **metadata: Any) -> DemoDataset:
    """A daily Hive table partitioned by ``ds``; ``metadata`` holds the rest of its DatasetCreate."""
    create = DatasetCreate(
        source="demo-hive",
        name=name,
        format="parquet",
        location=f"{WAREHOUSE}/hive/{name.replace('.', '.db/')}",
        partitioning=[PartitionField(column="ds")],
        source_properties={"EXTERNAL": "TRUE", "parquet.compression": "ZSTD"},
        fields=[_f("ds", "string", "Partition date, yyyy-MM-dd (UTC).", required=True), *fields],
        owners=_owners(owner, "frank@streamco.example"),
        properties={"sla": "daily by 06:00 UTC", "retention_days": "1095"},
        **metadata,
    )
    return DemoDataset(create)


_ANALYTICS_TABLES = [
    _analytics_table(
        "analytics.title_daily_views",
        [
            _f("title_id", "bigint", required=True),
            _f("country", "string", required=True),
            _f("views", "bigint", "Sessions with at least 2 minutes watched."),
            _f("unique_profiles", "bigint"),
            _f("hours_viewed", "double"),
        ],
        source_description="Built daily from curated.viewing_sessions.",
        description="Views and hours per title, country and day: the numbers behind the top-10 lists.",
        tags=["certified", "tier-1"],
        owner="team:content-analytics",
    ),
    _analytics_table(
        "analytics.ab_experiment_metrics",
        [
            _f("test_id", "bigint", required=True),
            _f("cell", "int", "1 is the control.", required=True),
            _f("allocated_profiles", "bigint"),
            _f(
                "metrics",
                "map<string,double>",
                "Metric name to cell mean: streaming_hours, retention_d28, rebuffer_rate.",
                _f("key", "string", required=True),
                _f("value", "double"),
            ),
            _f(
                "vs_control",
                "struct<lift:double,p_value:double>",
                "Primary metric against the control cell.",
                _f("lift", "double"),
                _f("p_value", "double"),
            ),
        ],
        source_description="Built daily from curated.viewing_sessions and raw.ui_interactions.",
        description="Daily metrics per A/B test cell, read by the experimentation platform's scorecards.",
        tags=["experimentation", "tier-2"],
        owner="team:experimentation-platform",
    ),
    _analytics_table(
        "analytics.content_completion_rates",
        [
            _f("title_id", "bigint", required=True),
            _f("device_type", "string", required=True),
            _f("starts", "bigint", "Sessions started."),
            _f("completions", "bigint", "Sessions watched past the credits marker."),
            _f("completion_rate", "double", "completions / starts."),
            _f("median_watched_pct", "double", "Median share of the runtime watched."),
        ],
        source_description="Built daily from curated.viewing_sessions joined to curated.title_catalog.",
        description="How often viewers finish what they start, per title and device type.",
        tags=["certified"],
        owner="team:content-analytics",
    ),
]

DEMO_DATASETS: tuple[DemoDataset, ...] = (*_TOPICS, *LAKE_TABLES, *_ANALYTICS_TABLES)
