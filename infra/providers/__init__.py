"""One provider per service; each takes the official client it drives."""

from __future__ import annotations

from typing import Any

from infra.plan import Provider


def providers_for(publisher: Any, subscriber: Any, bigquery: Any) -> dict[str, Provider]:
    from infra.providers.bigquery import DatasetProvider, TableProvider
    from infra.providers.pubsub import SubscriptionProvider, TopicProvider

    return {
        "pubsub.topic": TopicProvider(publisher),
        "pubsub.subscription": SubscriptionProvider(subscriber),
        "bigquery.dataset": DatasetProvider(bigquery),
        "bigquery.table": TableProvider(bigquery),
    }
