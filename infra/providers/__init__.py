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


def gcp_providers_for(*, service_usage: Any, projects: Any, iam: Any, iap: Any, artifact_registry: Any,
                      storage: Any, publisher: Any, subscriber: Any, bigquery: Any,
                      run_services: Any = None, on_wait: Any = None) -> dict[str, Provider]:
    """Providers for everything `infra.model.gcp_desired` (and, given `run_services`, `service_bindings`) holds.
    `on_wait(message)` hears what a grant waits for (IAM seeing a new account) before it sleeps."""
    from infra.providers.artifactregistry import RepositoryProvider
    from infra.providers.bigquery import DatasetAccessGrants, TableIamGrants
    from infra.providers.iam import (
        IamMemberProvider,
        PolicyGrants,
        ServiceAccountGrants,
        ServiceAccountProvider,
        gapic_grants,
    )
    from infra.providers.serviceusage import ApiServiceProvider
    from infra.providers.storage import BucketIamGrants, BucketProvider

    grants: dict[str, Any] = {
        "project": gapic_grants(projects, lambda project: f"projects/{project}"),
        "pubsub.topic": gapic_grants(publisher),
        "pubsub.subscription": gapic_grants(subscriber),
        "bigquery.dataset": DatasetAccessGrants(bigquery),
        "bigquery.table": TableIamGrants(bigquery),
        "storage.bucket": BucketIamGrants(storage),
        "artifactregistry.repository": gapic_grants(artifact_registry),
        "iam.service_account": gapic_grants(iam, kind=ServiceAccountGrants),
        "iap.web": gapic_grants(iap),
    }
    if run_services is not None:
        grants["run.service"] = gapic_grants(run_services)
    for kind in grants.values():
        if isinstance(kind, PolicyGrants | DatasetAccessGrants):
            kind.on_wait = on_wait
    return {
        **providers_for(publisher, subscriber, bigquery),
        "serviceusage.service": ApiServiceProvider(service_usage),
        "iam.service_account": ServiceAccountProvider(iam),
        "iam.member": IamMemberProvider(grants),
        "artifactregistry.repository": RepositoryProvider(artifact_registry),
        "storage.bucket": BucketProvider(storage),
    }
