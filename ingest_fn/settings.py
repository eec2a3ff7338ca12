"""Settings from environment variables only, as Cloud Run and functions-framework expect."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ingest_fn.contract import MAX_EVENT_BYTES


@dataclass(frozen=True)
class Settings:
    project: str
    dataset: str
    table: str
    dead_letter_topic: str
    bigquery_endpoint: str | None = None  # http://host:port of bqemulator; None means Google's endpoint
    insert_timeout_s: float = 10.0
    max_event_bytes: int = MAX_EVENT_BYTES

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def dead_letter_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.dead_letter_topic}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        project = env.get("LTM_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise RuntimeError("LTM_PROJECT (or GOOGLE_CLOUD_PROJECT) must be set")
        return cls(
            project=project,
            dataset=env.get("LTM_DATASET", "ltm"),
            table=env.get("LTM_TABLE", "events"),
            dead_letter_topic=env.get("LTM_DLQ_TOPIC", "ltm-events-dlq"),
            bigquery_endpoint=env.get("BIGQUERY_EMULATOR_HOST") or None,
            insert_timeout_s=float(env.get("LTM_INSERT_TIMEOUT_S", "10")),
            max_event_bytes=int(env.get("LTM_MAX_EVENT_BYTES", str(MAX_EVENT_BYTES))),
        )
