"""How the ingest subscription delivers: push to the ingest service with an OIDC token (ingest_mode `push`), or
straight into the table as a BigQuery subscription (ingest_mode `bigquery`).

`provision` creates the subscription with its ack deadline, retry and dead-letter policies; deploy only switches
its delivery, because the push endpoint (the service URL) exists only once the service does. Both directions are
one update, so a project can move between the modes: the dead-letter policy stays in place either way.
"""

from __future__ import annotations

from typing import Any

from ltmctl.errors import BackendError


def _read(subscriber: Any, path: str) -> Any:
    from google.api_core.exceptions import NotFound

    try:
        return subscriber.get_subscription(subscription=path)
    except NotFound:
        raise BackendError(f"The subscription {path} does not exist.",
                           hint="Create the pipeline's resources first: `ltmctl provision`.") from None


def push_changes(sub: Any, endpoint: str, invoker: str) -> dict[str, tuple[Any, Any]]:
    """What pointing the subscription at `endpoint` changes: {field: (actual, desired)}."""
    push = sub.push_config
    token = push.oidc_token
    wanted = {"push_endpoint": (push.push_endpoint, endpoint),
              "oidc_token.service_account_email": (token.service_account_email, invoker),
              "oidc_token.audience": (token.audience, endpoint),
              "bigquery_config.table": (sub.bigquery_config.table, "")}
    return {name: (have or None, want or None) for name, (have, want) in wanted.items() if have != want}


def bigquery_changes(sub: Any, table: str) -> dict[str, tuple[Any, Any]]:
    """What making the subscription a BigQuery subscription into `table` changes: {field: (actual, desired)}."""
    current = sub.bigquery_config
    out = {f"bigquery_config.{k}": (getattr(current, k), v) for k, v in bigquery_config(table).items()
           if getattr(current, k) != v}
    if sub.push_config.push_endpoint:
        out["push_endpoint"] = (sub.push_config.push_endpoint, None)
    return out


def read(subscriber: Any, path: str) -> Any:
    """The subscription as it is (provision's to create: a missing one is an error with that hint)."""
    return _read(subscriber, path)


def ensure_push(subscriber: Any, path: str, endpoint: str, invoker: str) -> bool:
    """Push to `endpoint` with an OIDC token of `invoker` whose audience is the endpoint; True if changed."""
    sub = _read(subscriber, path)
    if not push_changes(sub, endpoint, invoker):
        return False
    paths = ["push_config"] + (["bigquery_config"] if sub.bigquery_config.table else [])
    subscriber.update_subscription(request={
        "subscription": {"name": path, "push_config": {
            "push_endpoint": endpoint,
            # Cloud Run checks that the token's audience is its own URL; Pub/Sub signs it as the invoker account.
            "oidc_token": {"service_account_email": invoker, "audience": endpoint}}},
        "update_mask": {"paths": paths},
    })
    return True


def bigquery_config(table: str) -> dict[str, Any]:
    """Write each message's JSON fields into the table's columns of the same name, plus Pub/Sub's metadata
    (subscription_name, message_id, publish_time, attributes) into the contract's columns for them.

    drop_unknown_fields stays false: the contract refuses fields it does not know, so a message with one fails the
    write and ends in the dead-letter topic, as the ingest function would send it there, instead of being stored
    with part of it silently dropped. Pub/Sub's own service agent writes (no service_account_email): it needs only
    dataEditor on the table, and the deployer no actAs on another account."""
    return {"table": table, "use_table_schema": True, "write_metadata": True, "drop_unknown_fields": False}


def ensure_bigquery(subscriber: Any, path: str, table: str) -> bool:
    """Deliver into `table` (PROJECT.DATASET.TABLE) through a BigQuery subscription; True if changed."""
    sub = _read(subscriber, path)
    if not bigquery_changes(sub, table):
        return False
    wanted = bigquery_config(table)
    paths = ["bigquery_config"] + (["push_config"] if sub.push_config.push_endpoint else [])
    subscriber.update_subscription(request={
        "subscription": {"name": path, "bigquery_config": wanted, "push_config": {}},
        "update_mask": {"paths": paths},
    })
    return True
