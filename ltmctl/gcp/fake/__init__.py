"""A fake Google Cloud control plane over HTTP, for tests and for `deploy --dry-run`.

The official client libraries run unchanged against it (REST transport, `api_endpoint` = `FakeGcp.endpoint`,
anonymous credentials). It records every request, keeps in-memory state, answers with the documented REST
shapes (long-running operations included) and Google's JSON errors, and lets callers inject failures.

One module per API; each defines an `Api` subclass with its routes. To add one (Cloud Run, Cloud Build, object
upload), write the module and append its class to `builtin_apis()`, or pass `api_modules=` to `FakeGcp`.
"""

from __future__ import annotations

from ltmctl.gcp.fake.server import Api, ApiError, FakeGcp, Request

__all__ = ["Api", "ApiError", "FakeGcp", "Request", "builtin_apis"]


def builtin_apis() -> list[type[Api]]:
    from ltmctl.gcp.fake.artifactregistry import ArtifactRegistryApi
    from ltmctl.gcp.fake.bigquery import BigQueryApi
    from ltmctl.gcp.fake.iam import IamApi
    from ltmctl.gcp.fake.pubsub import PubSubApi
    from ltmctl.gcp.fake.resourcemanager import ResourceManagerApi
    from ltmctl.gcp.fake.serviceusage import ServiceUsageApi
    from ltmctl.gcp.fake.storage import StorageApi

    apis: list[type[Api]] = [ServiceUsageApi, ResourceManagerApi, IamApi, ArtifactRegistryApi, StorageApi, PubSubApi,
                             BigQueryApi]
    # Deploy's APIs: Cloud Run, Cloud Build, object upload/download, IAP policies.
    from ltmctl.gcp.fake.cloudbuild import CloudBuildApi
    from ltmctl.gcp.fake.iamcredentials import IamCredentialsApi
    from ltmctl.gcp.fake.iap import IapApi, ServiceIdentityApi

    # Operations: metrics, alert policies and dashboards; log entries.
    from ltmctl.gcp.fake.logging import LoggingApi
    from ltmctl.gcp.fake.monitoring import MonitoringApi
    from ltmctl.gcp.fake.run import CloudRunApi
    from ltmctl.gcp.fake.storage_objects import StorageObjectsApi

    return [*apis, StorageObjectsApi, CloudRunApi, CloudBuildApi, IapApi, ServiceIdentityApi, MonitoringApi,
            LoggingApi, IamCredentialsApi]
