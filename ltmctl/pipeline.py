"""From the resolved config to infra's plain model: the one bridge between the CLI and infra."""

from __future__ import annotations

from ltmctl.config import Resolved

# What a BigQuery subscription with write_metadata writes besides the message's own fields, and the column types
# it accepts for each (cloud.google.com/pubsub/docs/bigquery). `data` is not written with use_table_schema.
BIGQUERY_SUBSCRIPTION_METADATA = {"subscription_name": ("STRING",), "message_id": ("STRING",),
                                  "publish_time": ("TIMESTAMP",), "attributes": ("STRING", "JSON")}
# Event fields optional for the ingest function (it defaults them) that a BigQuery subscription cannot fill:
# event_id is a REQUIRED column, so a message without one fails the write and ends in the dead-letter topic.
BIGQUERY_MODE_REQUIRED = ("event_id",)


def spec(resolved: Resolved, push_endpoint: str | None = None, push_service_account: str | None = None):
    from infra.model import PipelineSpec
    from ingest_fn.contract import table_schema

    p = resolved.pipeline
    return PipelineSpec(
        project=resolved.env.project,
        topic=p.topic,
        dead_letter_topic=p.dead_letter_topic,
        dead_letter_subscription=p.dead_letter_subscription,
        subscription=p.subscription,
        dataset=p.dataset,
        table=p.table,
        table_schema=table_schema(),
        location=p.location,
        ack_deadline_s=p.ack_deadline_s,
        max_delivery_attempts=p.max_delivery_attempts,
        minimum_backoff_s=p.retry.minimum_backoff_s,
        maximum_backoff_s=p.retry.maximum_backoff_s,
        push_endpoint=push_endpoint,
        push_service_account=push_service_account,
    )


def event_validator(resolved: Resolved):
    """The contract's validator for what this environment's producers must send: with ingest_mode bigquery,
    also the fields nothing fills in for them."""
    from ingest_fn.contract import EventValidator, event_schema

    schema = event_schema()
    if resolved.pipeline.ingest_mode == "bigquery":
        schema = {**schema, "required": [*schema["required"], *BIGQUERY_MODE_REQUIRED]}
    return EventValidator(schema)


def service_env(resolved: Resolved) -> dict[str, str]:
    """The LTM_* variables the two services read."""
    p = resolved.pipeline
    return {"LTM_DATASET": p.dataset, "LTM_TABLE": p.table, "LTM_DLQ_TOPIC": p.dead_letter_topic,
            "LTM_TOPIC": p.topic}


def gcp_spec(resolved: Resolved, project_number: int, push_endpoint: str | None = None, project_created: str = ""):
    """The Google Cloud side (identities, IAM, registry, bucket, APIs) around the pipeline's resources."""
    from infra.model import GcpSpec

    env = resolved.env
    accounts = env.gcp.service_accounts
    return GcpSpec(
        pipeline=spec(resolved, push_endpoint=push_endpoint,
                      push_service_account=(f"{accounts.push_invoker}@{env.project}.iam.gserviceaccount.com"
                                            if push_endpoint else None)),
        project_number=project_number,
        region=env.region or "",
        staging_bucket=env.staging_bucket,
        api_account=accounts.api,
        ingest_account=accounts.ingest,
        invoker_account=accounts.push_invoker,
        builder_account=accounts.builder,
        deployer_account=accounts.deployer,
        artifact_repository=env.gcp.artifact_repository,
        api_service=env.api.service,
        ingest_service=env.ingest.service,
        ingest_mode=resolved.pipeline.ingest_mode,
        project_created=project_created,
    )
