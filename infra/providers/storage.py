"""Cloud Storage buckets through google-cloud-storage, and grants on a bucket's IAM policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from infra.model import Bucket


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


class BucketIamGrants:
    """Grants on a bucket's IAM policy (google.api_core.iam.Policy, version 3): read-modify-write with the etag
    read, so a concurrent change makes it read again instead of being overwritten. Conditional bindings are
    someone else's intent and are never edited."""

    def __init__(self, client: Any, attempts: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.attempts, self.sleep = client, attempts, sleep

    def _policy(self, target: str) -> Any:
        return self.client.bucket(target).get_iam_policy(requested_policy_version=3)

    @staticmethod
    def _binding(policy: Any, role: str) -> dict[str, Any] | None:
        return next((b for b in policy.bindings if b["role"] == role and not b.get("condition")), None)

    def has(self, target: str, role: str, member: str) -> bool | None:
        from google.api_core.exceptions import NotFound

        try:
            policy = self._policy(target)
        except NotFound:
            return None
        binding = self._binding(policy, role)
        return binding is not None and member in binding["members"]

    def add(self, target: str, role: str, member: str) -> None:
        def add(policy: Any) -> bool:
            binding = self._binding(policy, role)
            if binding is None:
                policy.bindings.append({"role": role, "members": {member}})
                return True
            if member in binding["members"]:
                return False
            binding["members"] = {*binding["members"], member}
            return True

        self._modify(target, add)

    def remove(self, target: str, role: str, member: str) -> None:
        from google.api_core.exceptions import NotFound

        def remove(policy: Any) -> bool:
            binding = self._binding(policy, role)
            if binding is None or member not in binding["members"]:
                return False
            binding["members"] = {m for m in binding["members"] if m != member}
            if not binding["members"]:
                policy.bindings.remove(binding)
            return True

        try:
            self._modify(target, remove)
        except NotFound:
            pass

    def _modify(self, target: str, change: Callable[[Any], bool]) -> None:
        from google.api_core.exceptions import Conflict, PreconditionFailed

        from infra.errors import InfraError

        for attempt in range(self.attempts):
            policy = self._policy(target)
            if not change(policy):
                return
            try:
                self.client.bucket(target).set_iam_policy(policy)  # carries the etag read above
                return
            except (Conflict, PreconditionFailed):
                if attempt == self.attempts - 1:
                    raise InfraError(f"The IAM policy of gs://{target} kept changing while being updated.",
                                     hint="Run the command again.") from None
                self.sleep(min(2.0**attempt, 16.0))
