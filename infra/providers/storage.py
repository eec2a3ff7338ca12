"""Cloud Storage buckets through google-cloud-storage, and grants on a bucket's IAM policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from infra.model import Bucket
from infra.providers.iam import DictPolicyGrants


def _age_delete(rule: Any) -> int | None:
    """The age of a plain "delete objects older than N days" rule, else None."""
    condition = rule.get("condition", {})
    if rule.get("action", {}).get("type") == "Delete" and set(condition) == {"age"}:
        return int(condition["age"])
    return None


class BucketProvider:
    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: Bucket) -> Bucket | None:
        bucket = self.client.lookup_bucket(resource.name)
        if bucket is None:
            return None
        ages = [a for a in (_age_delete(r) for r in bucket.lifecycle_rules) if a is not None]
        return Bucket(resource.project, bucket.name, (bucket.location or "").lower(),
                      uniform_access=bool(bucket.iam_configuration.uniform_bucket_level_access_enabled),
                      delete_after_days=ages[0] if ages else None)

    def _configure(self, bucket: Any, resource: Bucket) -> None:
        from google.cloud.storage.bucket import LifecycleRuleDelete

        bucket.iam_configuration.uniform_bucket_level_access_enabled = resource.uniform_access
        if resource.delete_after_days is not None:
            others = [r for r in bucket.lifecycle_rules if _age_delete(r) is None]
            bucket.lifecycle_rules = [*others, LifecycleRuleDelete(age=resource.delete_after_days)]

    def create(self, resource: Bucket) -> None:
        bucket = self.client.bucket(resource.name)
        self._configure(bucket, resource)
        self.client.create_bucket(bucket, project=resource.project, location=resource.location)

    def update(self, resource: Bucket, fields: list[str]) -> None:
        bucket = self.client.get_bucket(resource.name)
        self._configure(bucket, resource)
        bucket.patch()

    def immutable_fields(self, resource: Bucket) -> frozenset[str]:
        return frozenset({"location"})

    def delete(self, resource: Bucket) -> None:
        from google.api_core.exceptions import NotFound

        try:
            for blob in self.client.list_blobs(resource.name):
                blob.delete()
            self.client.bucket(resource.name).delete()
        except NotFound:
            pass


class BucketIamGrants(DictPolicyGrants):
    """Grants on a bucket's IAM policy (version 3). Conditional bindings are someone else's intent and are never
    edited."""

    label = "gs://{target}"

    def __init__(self, client: Any, attempts: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        super().__init__(get=lambda target: client.bucket(target).get_iam_policy(requested_policy_version=3),
                         set=lambda target, policy: client.bucket(target).set_iam_policy(policy),
                         attempts=attempts, sleep=sleep)
