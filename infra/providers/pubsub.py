"""Pub/Sub topics and subscriptions through google-cloud-pubsub (emulator or GCP alike)."""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import NotFound

from infra.model import Subscription, Topic

_UPDATABLE = {
    "ack_deadline_s": "ack_deadline_seconds",
    "push_endpoint": "push_config",
    "push_service_account": "push_config",
    "dead_letter_topic": "dead_letter_policy",
    "max_delivery_attempts": "dead_letter_policy",
    "minimum_backoff_s": "retry_policy",
    "maximum_backoff_s": "retry_policy",
    "retention_s": "message_retention_duration",
    "expiration_ttl_s": "expiration_policy",
}


class TopicProvider:
    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher

    def read(self, resource: Topic) -> Topic | None:
        try:
            self.publisher.get_topic(request={"topic": resource.key})
        except NotFound:
            return None
        return resource

    def create(self, resource: Topic) -> None:
        self.publisher.create_topic(request={"name": resource.key})

    def update(self, resource: Topic, fields: list[str]) -> None:  # a topic has no managed fields
        return None

    def immutable_fields(self, resource: Topic) -> frozenset[str]:
        return frozenset()

    def delete(self, resource: Topic) -> None:
        try:
            self.publisher.delete_topic(request={"topic": resource.key})
        except NotFound:
            pass


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _seconds(duration: Any) -> int | None:
    if duration is None:
        return None
    if hasattr(duration, "total_seconds"):  # proto-plus turns Duration into timedelta
        return int(duration.total_seconds())
    return int(duration.seconds)


class SubscriptionProvider:
    def __init__(self, subscriber: Any) -> None:
        self.subscriber = subscriber

    def read(self, resource: Subscription) -> Subscription | None:
        try:
            sub = self.subscriber.get_subscription(request={"subscription": resource.key})
        except NotFound:
            return None
        push = sub.push_config
        dlp = sub.dead_letter_policy
        retry = sub.retry_policy
        has_retry = "retry_policy" in sub
        return Subscription(
            project=resource.project,
            name=_name(sub.name),
            topic=_name(sub.topic),
            ack_deadline_s=sub.ack_deadline_seconds,
            push_endpoint=push.push_endpoint or None,
            push_service_account=(push.oidc_token.service_account_email or None) if "oidc_token" in push else None,
            dead_letter_topic=_name(dlp.dead_letter_topic) if dlp.dead_letter_topic else None,
            max_delivery_attempts=dlp.max_delivery_attempts if dlp.dead_letter_topic else None,
            minimum_backoff_s=_seconds(retry.minimum_backoff) if has_retry else None,
            maximum_backoff_s=_seconds(retry.maximum_backoff) if has_retry else None,
            retention_s=_seconds(sub.message_retention_duration),
            # No ttl (the policy empty or absent): never expires.
            expiration_ttl_s=(_seconds(sub.expiration_policy.ttl) or 0) if "expiration_policy" in sub else 0,
        )

    def _body(self, s: Subscription) -> dict[str, Any]:
        body: dict[str, Any] = {"name": s.key, "topic": s.topic_path, "ack_deadline_seconds": s.ack_deadline_s}
        push: dict[str, Any] = {}
        if s.push_endpoint:
            push["push_endpoint"] = s.push_endpoint
            if s.push_service_account:
                push["oidc_token"] = {"service_account_email": s.push_service_account, "audience": s.push_endpoint}
        body["push_config"] = push
        if s.dead_letter_topic:
            body["dead_letter_policy"] = {
                "dead_letter_topic": f"projects/{s.project}/topics/{s.dead_letter_topic}",
                "max_delivery_attempts": s.max_delivery_attempts or 5,
            }
        if s.minimum_backoff_s is not None:
            body["retry_policy"] = {
                "minimum_backoff": {"seconds": s.minimum_backoff_s},
                "maximum_backoff": {"seconds": s.maximum_backoff_s or 600},
            }
        if s.retention_s is not None:
            body["message_retention_duration"] = {"seconds": s.retention_s}
        # Always sent: left out, Pub/Sub applies its 31-day default. An empty policy (it does reach the wire as
        # `"expirationPolicy": {}`: a message field keeps its presence) means never expire.
        body["expiration_policy"] = {"ttl": {"seconds": s.expiration_ttl_s}} if s.expiration_ttl_s else {}
        return body

    def create(self, resource: Subscription) -> None:
        self.subscriber.create_subscription(request=self._body(resource))

    def update(self, resource: Subscription, fields: list[str]) -> None:
        paths = sorted({_UPDATABLE[f] for f in fields})
        self.subscriber.update_subscription(
            request={"subscription": self._body(resource), "update_mask": {"paths": paths}}
        )

    def immutable_fields(self, resource: Subscription) -> frozenset[str]:
        return frozenset({"topic"})

    def delete(self, resource: Subscription) -> None:
        try:
            self.subscriber.delete_subscription(request={"subscription": resource.key})
        except NotFound:
            pass
