"""Service accounts, and additive IAM grants on any resource that has an IAM policy.

`IamMemberProvider` manages one (resource, role, member) at a time through a `Grants` per target type:
`PolicyGrants` for resources with getIamPolicy/setIamPolicy (projects, topics, subscriptions, Cloud Run
services, IAP's web resources, ...; `ServiceAccountGrants` for service accounts; `DictPolicyGrants` where the client
returns google.api_core.iam.Policy: buckets, BigQuery tables), `infra.providers.bigquery.DatasetAccessGrants` for
datasets (whose IAM is their access list). Every change is a read-modify-write that carries the etag it read, so a
concurrent change makes it retry instead of overwriting.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from google.api_core.exceptions import BadRequest, Conflict, NotFound, PreconditionFailed

from infra.errors import InfraError
from infra.model import IamMember, ServiceAccount


class ServiceAccountProvider:
    """`client` has iam_admin_v1.IAMClient's method names and request shapes (ltmctl.gcp.iam_admin.IamAdminRest)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def read(self, resource: ServiceAccount) -> ServiceAccount | None:
        try:
            sa = self.client.get_service_account(request={"name": resource.key})
        except NotFound:
            return None
        return ServiceAccount(resource.project, resource.account_id, sa.display_name, sa.description)

    def create(self, resource: ServiceAccount) -> None:
        try:
            self.client.create_service_account(request={
                "name": f"projects/{resource.project}", "account_id": resource.account_id,
                "service_account": {"display_name": resource.display_name, "description": resource.description},
            })
        except Conflict:  # ALREADY_EXISTS (HTTP 409): created meanwhile; the next plan compares its fields
            pass

    def update(self, resource: ServiceAccount, fields: list[str]) -> None:
        self.client.patch_service_account(request={
            "service_account": {"name": resource.key, "display_name": resource.display_name,
                                "description": resource.description},
            "update_mask": {"paths": sorted(fields)},
        })

    def immutable_fields(self, resource: ServiceAccount) -> frozenset[str]:
        return frozenset()

    def delete(self, resource: ServiceAccount) -> None:
        try:
            self.client.delete_service_account(request={"name": resource.key})
        except NotFound:
            pass


class Grants(Protocol):
    def has(self, target: str, role: str, member: str) -> bool | None:
        """Whether the member holds the role on the target; None when the target does not exist."""
    def add(self, target: str, role: str, member: str) -> None: ...
    def remove(self, target: str, role: str, member: str) -> None: ...


# IAM answers a binding for an account it does not see yet with 400 INVALID_ARGUMENT "Service account X does not
# exist." (over REST google.api_core raises BadRequest for every 400, InvalidArgument only over gRPC). An account or
# service agent created moments ago is refused so for a while: Google documents access changes as propagating in
# typically 2 minutes, potentially 7 or longer. Waits double from 1 s up to 30 s each, 3 minutes in all; longer
# than that, the account most likely does not exist at all, and the user is told so.
IAM_PROPAGATION_S = 180.0
_MISSING_ACCOUNT = re.compile(r"[Ss]ervice account (\S+?) does not exist")


def missing_account(exc: Exception) -> str | None:
    """The account a 400 "Service account X does not exist." names, else None."""
    m = _MISSING_ACCOUNT.search(getattr(exc, "message", None) or str(exc))
    return m.group(1) if m else None


class AccountWait:
    """Waiting out IAM's delay for one change: doubling waits from 1 s, at most 30 s each and `propagation_s` in
    all, each announced to `on_wait`; past the bound, an InfraError naming the account."""

    def __init__(self, sleep: Callable[[float], None], on_wait: Callable[[str], None] | None,
                 propagation_s: float = IAM_PROPAGATION_S) -> None:
        self.sleep, self.on_wait, self.propagation_s = sleep, on_wait, propagation_s
        self.waits, self.waited = 0, 0.0

    def __call__(self, exc: Exception, where: str) -> None:
        """Wait once for the account `exc` (a BadRequest) names; re-raise `exc` when it names none."""
        account = missing_account(exc)
        if account is None:
            raise exc
        delay = min(2.0**self.waits, 30.0)
        if self.waited + delay > self.propagation_s:
            raise InfraError(
                f"IAM still says the service account {account} does not exist, {self.waited:.0f} s after the first "
                f"try (granting on {where}).",
                hint="A new account can take IAM several minutes to see: run the command again in a few minutes. "
                     "A Google service agent (service-NUMBER@gcp-sa-...) exists only once created: `ltmctl "
                     "provision` creates the ones the pipeline needs.") from exc
        if self.on_wait is not None:
            self.on_wait(f"IAM does not see {account} yet (new accounts take a while); retrying in {delay:.0f} s")
        self.sleep(delay)
        self.waits, self.waited = self.waits + 1, self.waited + delay


def _unconditional(policy: Any, role: str) -> Any | None:
    # Conditional bindings are someone else's intent: never merged into, never edited.
    for binding in policy.bindings:
        if binding.role == role and not binding.HasField("condition"):
            return binding
    return None


class PolicyGrants:
    """Grants through a google.iam.v1 policy: `get(target)` and `set(target, policy)` of a client.

    The read-modify-write loop lives here once; a policy of another shape (a bucket's dict bindings) overrides only
    the five small methods that touch bindings."""

    label = "{target}"  # how errors name the target
    propagation_s = IAM_PROPAGATION_S  # how long to wait for IAM to see a new account, in all

    def __init__(self, get: Callable[[str], Any], set: Callable[[str, Any], Any], attempts: int = 6,  # noqa: A002
                 sleep: Callable[[float], None] = time.sleep,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self._get, self._set, self.attempts, self.sleep = get, set, attempts, sleep
        self.on_wait = on_wait  # told what a wait is for, before each one (progress on stderr)

    # -- the shape of a binding: google.iam.v1 protos here ------------------------------------------------------
    def _binding(self, policy: Any, role: str) -> Any | None:
        return _unconditional(policy, role)

    def _members(self, binding: Any) -> Any:
        return binding.members

    def _new_binding(self, policy: Any, role: str, member: str) -> None:
        policy.bindings.add(role=role, members=[member])

    def _add_member(self, binding: Any, member: str) -> None:
        binding.members.append(member)

    def _remove_member(self, policy: Any, binding: Any, member: str) -> None:
        binding.members.remove(member)
        if not binding.members:
            policy.bindings.remove(binding)

    # -- grants ---------------------------------------------------------------------------------------------------
    def has(self, target: str, role: str, member: str) -> bool | None:
        try:
            policy = self._get(target)
        except NotFound:
            return None
        binding = self._binding(policy, role)
        return binding is not None and member in self._members(binding)

    def add(self, target: str, role: str, member: str) -> None:
        def add(policy: Any) -> bool:
            binding = self._binding(policy, role)
            if binding is None:
                self._new_binding(policy, role, member)
                return True
            if member in self._members(binding):
                return False
            self._add_member(binding, member)
            return True

        self._modify(target, add)

    def remove(self, target: str, role: str, member: str) -> None:
        def remove(policy: Any) -> bool:
            binding = self._binding(policy, role)
            if binding is None or member not in self._members(binding):
                return False
            self._remove_member(policy, binding, member)
            return True

        try:
            self._modify(target, remove)
        except NotFound:
            pass

    def _modify(self, target: str, change: Callable[[Any], bool]) -> None:
        conflicts, wait = 0, AccountWait(self.sleep, self.on_wait, self.propagation_s)
        while True:
            policy = self._get(target)
            if not change(policy):
                return
            try:
                self._set(target, policy)  # carries the etag read above
                return
            except (Conflict, PreconditionFailed):  # the etag is stale (409 ABORTED over REST): read again
                conflicts += 1
                if conflicts >= self.attempts:
                    raise InfraError(f"The IAM policy of {self.label.format(target=target)} kept changing while "
                                     "being updated.", hint="Run the command again.") from None
                self.sleep(min(2.0 ** (conflicts - 1), 16.0))
            except BadRequest as exc:  # "Service account X does not exist.": wait for IAM, else re-raised
                wait(exc, self.label.format(target=target))


class DictPolicyGrants(PolicyGrants):
    """PolicyGrants for a google.api_core.iam.Policy (the JSON clients: Cloud Storage, BigQuery), whose bindings
    are dicts with a set of members. The read-modify-write loop is PolicyGrants'; only the binding shape differs."""

    def _binding(self, policy: Any, role: str) -> dict[str, Any] | None:
        return next((b for b in policy.bindings if b["role"] == role and not b.get("condition")), None)

    def _members(self, binding: Any) -> Any:
        return binding["members"]

    def _new_binding(self, policy: Any, role: str, member: str) -> None:
        policy.bindings.append({"role": role, "members": {member}})

    def _add_member(self, binding: Any, member: str) -> None:
        binding["members"] = {*binding["members"], member}

    def _remove_member(self, policy: Any, binding: Any, member: str) -> None:
        binding["members"] = {m for m in binding["members"] if m != member}
        if not binding["members"]:
            policy.bindings.remove(binding)


def gapic_grants(client: Any, resource: Callable[[str], str] = lambda target: target,
                 kind: type[PolicyGrants] = PolicyGrants) -> PolicyGrants:
    """PolicyGrants for any generated client with get_iam_policy/set_iam_policy (Pub/Sub, Resource Manager,
    Cloud Run, Artifact Registry, and ltmctl.gcp.rest's for IAM Admin and IAP). `resource` maps a target to the
    resource name the client expects."""
    return kind(
        lambda target: client.get_iam_policy(
            request={"resource": resource(target), "options": {"requested_policy_version": 3}}),
        lambda target, policy: client.set_iam_policy(request={"resource": resource(target), "policy": policy}),
    )


class ServiceAccountGrants(PolicyGrants):
    """Grants on a service account itself (its own IAM policy: who may act as it). IAM creates accounts eventually
    consistently, so one made seconds ago by the same apply may still answer NotFound: adding waits for it.
    Reading and removing do not, since there NotFound means there is nothing to grant on."""

    def add(self, target: str, role: str, member: str) -> None:
        for attempt in range(self.attempts):
            try:
                super().add(target, role, member)
                return
            except NotFound:
                if attempt == self.attempts - 1:
                    raise
                self.sleep(min(2.0**attempt, 16.0))


class IamMemberProvider:
    def __init__(self, grants: dict[str, Grants]) -> None:
        self.grants = grants

    def _for(self, resource: IamMember) -> Grants:
        try:
            return self.grants[resource.target_type]
        except KeyError:
            raise InfraError(f"No client is set up to manage IAM on {resource.target_type} resources "
                             f"({resource.key}).") from None

    def read(self, resource: IamMember) -> IamMember | None:
        held = self._for(resource).has(resource.target, resource.role, resource.member)
        return resource if held else None

    def create(self, resource: IamMember) -> None:
        self._for(resource).add(resource.target, resource.role, resource.member)

    def update(self, resource: IamMember, fields: list[str]) -> None:  # every field is part of the identity
        return None

    def immutable_fields(self, resource: IamMember) -> frozenset[str]:
        return frozenset()

    def delete(self, resource: IamMember) -> None:
        self._for(resource).remove(resource.target, resource.role, resource.member)
