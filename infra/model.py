"""Resources as plain data. Each has a stable `key` and the fields that plan compares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Topic:
    project: str
    name: str
    kind = "pubsub.topic"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/topics/{self.name}"


@dataclass(frozen=True)
class Subscription:
    project: str
    name: str
    topic: str
    ack_deadline_s: int = 60
    push_endpoint: str | None = None
    # OIDC identity for push in GCP; the emulator neither sends nor needs it.
    push_service_account: str | None = None
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    minimum_backoff_s: int | None = None
    maximum_backoff_s: int | None = None
    retention_s: int | None = None
    kind = "pubsub.subscription"

    @property
    def key(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.name}"

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"


@dataclass(frozen=True)
class Dataset:
    project: str
    name: str
    location: str = "US"
    kind = "bigquery.dataset"

    @property
    def key(self) -> str:
        return f"{self.project}.{self.name}"


@dataclass(frozen=True)
class Table:
    project: str
    dataset: str
    name: str
    # BigQuery JSON schema: [{"name", "type", "mode", "description"}]
    schema: tuple[dict[str, Any], ...] = ()
    partition_field: str | None = None
    partition_type: str = "DAY"
    clustering: tuple[str, ...] = ()
    kind = "bigquery.table"

    @property
    def key(self) -> str:
        return f"{self.project}.{self.dataset}.{self.name}"


Resource = Topic | Subscription | Dataset | Table


@dataclass(frozen=True)
class PipelineSpec:
    """Everything infra needs to derive the desired state: plain values, no config objects."""

    project: str
    topic: str
    dead_letter_topic: str
    dead_letter_subscription: str
    subscription: str
    dataset: str
    table: str
    table_schema: tuple[dict[str, Any], ...]
    location: str = "US"
    ack_deadline_s: int = 60
    max_delivery_attempts: int = 5
    minimum_backoff_s: int = 10
    maximum_backoff_s: int = 600
    push_endpoint: str | None = None
    push_service_account: str | None = None
    clustering: tuple[str, ...] = ("action_id", "user_email", "app_id")
    partition_field: str = "event_time"
    labels: dict[str, str] = field(default_factory=dict)


# Dead letters are kept for Pub/Sub's maximum retention, so nothing expires before someone looks.
DEAD_LETTER_RETENTION_S = 7 * 24 * 3600


def desired(spec: PipelineSpec) -> list[Resource]:
    """The pipeline's resources in dependency order (a resource only refers to ones before it)."""
    return [
        Topic(spec.project, spec.topic),
        Topic(spec.project, spec.dead_letter_topic),
        Subscription(spec.project, spec.dead_letter_subscription, spec.dead_letter_topic,
                     ack_deadline_s=spec.ack_deadline_s, retention_s=DEAD_LETTER_RETENTION_S),
        Dataset(spec.project, spec.dataset, spec.location),
        Table(spec.project, spec.dataset, spec.table, spec.table_schema,
              partition_field=spec.partition_field, clustering=spec.clustering),
        Subscription(
            spec.project, spec.subscription, spec.topic,
            ack_deadline_s=spec.ack_deadline_s,
            push_endpoint=spec.push_endpoint,
            push_service_account=spec.push_service_account,
            dead_letter_topic=spec.dead_letter_topic,
            max_delivery_attempts=spec.max_delivery_attempts,
            minimum_backoff_s=spec.minimum_backoff_s,
            maximum_backoff_s=spec.maximum_backoff_s,
        ),
    ]
