"""Who is calling, and may they: the fake authorizes every request the way IAM does.

Each request carries a bearer token the fake issued (`FakeGcp.token_for(member)`); without one it is 401
UNAUTHENTICATED. The permissions a method checks come from Google's method → permission data
(`ltmctl.gcp.iamdata`), corrected or completed by `PERMISSIONS` below; each is checked on the resource the request
names and its ancestors up to the project, against the policies the fake itself stores (and BigQuery's dataset
access lists), with the roles' permissions from Google's role data. Some methods check more than their own
resource (acting as a service account named in the body; attaching a subscription to a topic): `_also`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ltmctl.gcp.fake.server import FakeGcp

UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                   "other valid authentication credential. See "
                   "https://developers.google.com/identity/sign-in/web/devconsole-project.")

# Methods the dataset leaves unmapped, or maps to every permission the method can ever check (for example an
# object upload's `storage.objects.delete`, needed only to overwrite; a job insert's `bigquery.tables.export`,
# only for extract jobs). Each entry: the permissions checked on the request's resource, and where Google says so.
PERMISSIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "iap.getIamPolicy": (("iap.web.getIamPolicy",),
                         "https://cloud.google.com/iap/docs/reference/rest/v1/V1/getIamPolicy"),
    "iap.setIamPolicy": (("iap.web.setIamPolicy",),
                         "https://cloud.google.com/iap/docs/reference/rest/v1/V1/setIamPolicy"),
    "iap.getIapSettings": (("iap.web.getSettings",),
                           "https://cloud.google.com/iap/docs/reference/rest/v1/V1/getIapSettings"),
    "iap.updateIapSettings": (("iap.web.updateSettings",),
                              "https://cloud.google.com/iap/docs/reference/rest/v1/V1/updateIapSettings"),
    "serviceusage.services.generateServiceIdentity": (
        ("serviceusage.services.enable",),
        "https://cloud.google.com/service-usage/docs/access-control (enabling a service creates its agent)"),
    # Pulling, acknowledging and extending or releasing a lease: "pubsub.subscriptions.consume" on the subscription.
    **{f"pubsub.projects.subscriptions.{verb}": (
        ("pubsub.subscriptions.consume",), "https://cloud.google.com/pubsub/docs/access-control#required_permissions")
       for verb in ("pull", "acknowledge", "modifyAckDeadline")},
    "pubsub.projects.subscriptions.modifyPushConfig": (
        ("pubsub.subscriptions.update",),
        "https://cloud.google.com/pubsub/docs/access-control#required_permissions"),
    "artifactregistry.projects.locations.operations.get": (
        ("artifactregistry.repositories.get",),
        "https://cloud.google.com/artifact-registry/docs/access-control#permissions"),
    "storage.objects.insert": (("storage.objects.create",),
                               "https://cloud.google.com/storage/docs/access-control/iam-json#object-methods"),
    "bigquery.jobs.insert": (("bigquery.jobs.create",),
                             "https://cloud.google.com/bigquery/docs/running-queries#required_permissions"),
    "bigquery.jobs.query": (("bigquery.jobs.create",),
                            "https://cloud.google.com/bigquery/docs/running-queries#required_permissions"),
    "bigquery.jobs.cancel": (("bigquery.jobs.update",),
                             "https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/cancel"),
    "bigquery.jobs.getQueryResults": (("bigquery.jobs.get",),
                                      "https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/getQueryResults"),
    # Streaming inserts: "bigquery.tables.updateData, bigquery.tables.get, bigquery.datasets.get" (Google's method
    # data says the same). Each is checked on the resource its type names (`scope`): datasets.get on the dataset,
    # which a grant on the table alone cannot give.
    "bigquery.tabledata.insertAll": (("bigquery.datasets.get", "bigquery.tables.get", "bigquery.tables.updateData"),
                                     "https://cloud.google.com/bigquery/docs/streaming-data-into-bigquery"
                                     "#required_permissions"),
    # Google's method data knows Cloud Run's revisions only under v1's paths (run.projects.locations.revisions.*);
    # v2 lists and reads them under their service, with the same permissions.
    "run.projects.locations.services.revisions.list": (
        ("run.revisions.list",), "https://cloud.google.com/run/docs/reference/iam/permissions"),
    "run.projects.locations.services.revisions.get": (
        ("run.revisions.get",), "https://cloud.google.com/run/docs/reference/iam/permissions"),
    "logging.entries.list": (("logging.logEntries.list",),
                             "https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list"),
}

# Where a dataset's access list stands in IAM's terms.
DATASET_ROLES = {"READER": "roles/bigquery.dataViewer", "WRITER": "roles/bigquery.dataEditor",
                 "OWNER": "roles/bigquery.dataOwner"}
SPECIAL_GROUPS = {"projectReaders": "roles/viewer", "projectWriters": "roles/editor", "projectOwners": "roles/owner"}


class Denied(Exception):
    def __init__(self, permission: str, resource: str) -> None:
        super().__init__(permission)
        self.permission, self.resource = permission, resource


class Unmapped(Exception):
    """A method with no known permission: the fake cannot decide, so it says so instead of allowing it."""


def permissions_for(method_id: str) -> tuple[str, ...]:
    from ltmctl.gcp.iamdata import method_permissions

    if method_id in PERMISSIONS:
        return PERMISSIONS[method_id][0]
    perms = method_permissions().get(method_id)
    if not perms:
        raise Unmapped(method_id)
    return perms


def check(fake: FakeGcp, member: str, match: Any, body: Any) -> None:
    """Raise Denied for the first permission `member` lacks for this request."""
    method = match.method
    resource = resource_of(fake, method.id, match.path, body)
    if resource.startswith("projects/_/buckets/") and not _bucket_exists(fake, resource.split("/")[3]):
        return  # Cloud Storage tells anyone that a bucket does not exist (404): the bucket namespace is global
    if method.id in JOB_CREATOR_METHODS and _job_creator(fake, resource, match.path) == member:
        return  # "when you create a job, you are automatically granted bigquery.jobs.get ... for that job"
    for permission in permissions_for(method.id):
        require(fake, member, permission, scope(permission, resource))
    for permission, other in _also(method.id, resource, body or {}):
        require(fake, member, permission, scope(permission, other))


# Methods on one job that its creator may always call (https://cloud.google.com/bigquery/docs/jobs-overview
# #required_permissions: the creator is granted bigquery.jobs.get and bigquery.jobs.update on the job).
JOB_CREATOR_METHODS = frozenset({"bigquery.jobs.get", "bigquery.jobs.getQueryResults", "bigquery.jobs.cancel"})


def _job_creator(fake: FakeGcp, resource: str, path: dict[str, str]) -> str | None:
    bq = fake.apis.get("BigQueryApi")
    job = getattr(bq, "jobs", {}).get(f"{resource.split('/')[1]}:{path.get('jobId', '')}") if bq else None
    return job.get("creator") if job else None


def scope(permission: str, resource: str) -> str:
    """Where IAM checks `permission` for a request on `resource`: on the resource of the permission's own type when
    that is an ancestor (bigquery.datasets.get for a table is checked on its dataset; bigquery.jobs.create on the
    project), so a grant below that level cannot satisfy it, as in IAM, where a policy only covers its resource
    and what lies below it."""
    collection = permission.split(".")[1] if permission.count(".") >= 2 else ""
    parts = resource.split("/")
    if permission.startswith("bigquery.jobs."):
        return "/".join(parts[:2])
    for i in range(1, len(parts), 2):
        if parts[i - 1] == collection and parts[i] != "_":
            return "/".join(parts[: i + 1])
    return resource


def _bucket_exists(fake: FakeGcp, bucket: str) -> bool:
    storage = fake.apis.get("StorageApi")
    return storage is not None and bucket in getattr(storage, "buckets", {})


def require(fake: FakeGcp, member: str, permission: str, resource: str) -> None:
    if not holds(fake, member, permission, resource):
        raise Denied(permission, resource)


def holds(fake: FakeGcp, member: str, permission: str, resource: str) -> bool:
    """Whether `member` holds `permission` on `resource`, directly or through an ancestor."""
    from ltmctl.gcp.iamdata import role_permissions

    roles = role_permissions()
    for name in ancestry(fake, resource):
        for binding in bindings(fake, name):
            if binding.get("condition"):
                continue  # conditions are not evaluated here: a conditional grant grants nothing
            if _member_in(fake, member, binding.get("members", [])) and permission in roles.get(binding["role"], ()):
                return True
    return False


CONVENIENCE = {"projectOwner": "roles/owner", "projectEditor": "roles/editor", "projectViewer": "roles/viewer"}


def _member_in(fake: FakeGcp, member: str, members: list[str]) -> bool:
    if member in members or "allUsers" in members or "allAuthenticatedUsers" in members:
        return True
    for entry in members:
        kind, _, project = entry.partition(":")
        if kind in CONVENIENCE:  # Cloud Storage's convenience values: whoever holds that basic role on the project
            basic = CONVENIENCE[kind]
            if any(b["role"] == basic and member in b.get("members", [])
                   for b in bindings(fake, _by_id(fake, f"projects/{project}"))):
                return True
    return False


# --- resources ------------------------------------------------------------------------------------------------------

def resource_of(fake: FakeGcp, method_id: str, path: dict[str, str], body: Any) -> str:
    """The resource a request acts on, as a full resource name with the project id (not number)."""
    if "projectId" in path:  # BigQuery
        name = f"projects/{path['projectId']}"
        if "datasetId" in path:
            name += f"/datasets/{path['datasetId']}"
            if "tableId" in path:
                name += f"/tables/{path['tableId']}"
        return _by_id(fake, name)
    scope = _metrics_scope(path.get("parent") or path.get("name") or "")
    if scope:  # Cloud Monitoring's metrics scopes are named by their scoping project
        return _by_id(fake, f"projects/{scope}")
    if "bucket" in path:  # Cloud Storage: buckets live under the project that owns them
        name = f"projects/_/buckets/{path['bucket']}"
        return name + (f"/objects/{path['object']}" if "object" in path else "")
    for key in ("resource", "name", "parent", "topic", "subscription", "projectId", "project"):
        if key in path:
            value = path[key]
            if value.startswith("operations/"):  # Service Usage's operations carry no project; the caller's
                return f"projects/{fake.project}/{value}"
            if value.startswith("projects/-/serviceAccounts/"):  # IAM Credentials: the project is the account's
                email = value.rsplit("/", 1)[-1]
                owner = email.split("@", 1)[-1].removesuffix(".iam.gserviceaccount.com")
                return _by_id(fake, f"projects/{owner}/serviceAccounts/{email}")
            return _by_id(fake, value if "/" in value else f"projects/{value}")
    if method_id == "logging.entries.list":
        names = (body or {}).get("resourceNames") or []
        return _by_id(fake, names[0]) if names else f"projects/{fake.project}"
    if method_id.startswith("storage.buckets."):
        return f"projects/{(path.get('project') or fake.project)}"
    return f"projects/{fake.project}"


def _metrics_scope(name: str) -> str | None:
    m = re.match(r"^locations/global/metricsScopes/([^/]+)", name)
    return m.group(1) if m else None


def _by_id(fake: FakeGcp, name: str) -> str:
    m = re.match(r"^projects/([^/]+)(.*)$", name)
    if not m:
        return name
    try:
        return f"projects/{fake.project_id(m.group(1))}{m.group(2)}"
    except Exception:  # noqa: BLE001 - an unknown project: leave the name as it is; nothing grants on it
        return name


def ancestry(fake: FakeGcp, resource: str) -> list[str]:
    """The resource, then each enclosing one up to its project (a bucket's project is the one that owns it)."""
    parts = resource.split("/")
    names = ["/".join(parts[:i]) for i in range(len(parts), 1, -1)]
    if resource.startswith("projects/_/buckets/"):
        bucket = fake.apis.get("StorageApi")
        owner = getattr(bucket, "buckets", {}).get(parts[3], {}).get("projectNumber") if bucket else None
        names = [n for n in names if n != "projects/_"]
        if owner:
            names.append(_by_id(fake, f"projects/{owner}"))
    return names


def bindings(fake: FakeGcp, name: str) -> list[dict[str, Any]]:
    """The bindings of the policy the fake stores for exactly `name` (none when it stores none)."""
    apis = fake.apis
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "projects":
        rm = apis.get("ResourceManagerApi")
        return rm.policy(parts[1]).get("bindings", []) if rm else []
    if "/serviceAccounts/" in name:
        iam = apis.get("IamApi")
        return _stored(iam, parts[-1]) if iam else []
    if name.startswith("projects/_/buckets/") and len(parts) == 4:
        return _stored(apis.get("StorageApi"), parts[3])
    if "/iap_web" in name:
        iap = apis.get("IapApi")
        number = fake.number(parts[1])
        return _stored(iap, "/".join(["projects", number, *parts[2:]])) if iap else []
    if "/datasets/" in name:
        return _bigquery(fake, parts)
    for api_name in ("PubSubApi", "ArtifactRegistryApi", "CloudRunApi"):
        found = _stored(apis.get(api_name), name)
        if found:
            return found
    return []


def _stored(api: Any, key: str) -> list[dict[str, Any]]:
    store = getattr(api, "policies", None)
    policy = store.policies.get(key) if store is not None else None
    return list(policy.get("bindings", [])) if policy else []


def _bigquery(fake: FakeGcp, parts: list[str]) -> list[dict[str, Any]]:
    bq = fake.apis.get("BigQueryApi")
    if bq is None:
        return []
    project, dataset = parts[1], parts[3]
    if len(parts) >= 6:  # a table: its own IAM policy
        return _stored(bq, f"{project}:{dataset}.{parts[5]}") or _stored(bq, f"{project}.{dataset}.{parts[5]}")
    entry = bq.datasets.get(f"{project}:{dataset}")
    if entry is None:
        return []
    out = []
    for access in entry.get("access", []):
        role = DATASET_ROLES.get(access.get("role", ""), access.get("role", ""))
        if "userByEmail" in access:
            email = access["userByEmail"]
            kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
            out.append({"role": role, "members": [f"{kind}:{email}"]})
        elif "groupByEmail" in access:
            out.append({"role": role, "members": [f"group:{access['groupByEmail']}"]})
        elif "iamMember" in access:
            out.append({"role": role, "members": [access["iamMember"]]})
        elif access.get("specialGroup") in SPECIAL_GROUPS:
            # Everyone holding the basic role on the project holds the dataset role.
            basic = SPECIAL_GROUPS[access["specialGroup"]]
            members = [m for b in bindings(fake, f"projects/{project}") if b["role"] == basic for m in b["members"]]
            out.append({"role": role, "members": members})
    return out


# --- checks beyond the request's own resource ----------------------------------------------------------------------

def _also(method_id: str, resource: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(permission, resource) pairs a method checks besides its own: acting as a service account the request names
    (https://cloud.google.com/iam/docs/service-accounts-actas), and a topic a new subscription attaches to
    (https://cloud.google.com/pubsub/docs/access-control#required_permissions)."""
    out: list[tuple[str, str]] = []
    project = resource.split("/")[1] if resource.startswith("projects/") else ""

    def act_as(account: str | None) -> None:
        if account:
            email = account.rsplit("/", 1)[-1]
            owner = email.split("@", 1)[1].split(".", 1)[0] if "@" in email else project
            out.append(("iam.serviceAccounts.actAs", f"projects/{owner}/serviceAccounts/{email}"))

    if method_id in ("run.projects.locations.services.create", "run.projects.locations.services.patch"):
        act_as((body.get("template") or {}).get("serviceAccount"))
    elif method_id in ("cloudbuild.projects.builds.create", "cloudbuild.projects.locations.builds.create"):
        act_as(body.get("serviceAccount"))
    elif method_id in ("pubsub.projects.subscriptions.create", "pubsub.projects.subscriptions.patch",
                       "pubsub.projects.subscriptions.modifyPushConfig"):
        sub = body.get("subscription", body)
        push = sub.get("pushConfig") or body.get("pushConfig") or {}
        act_as((push.get("oidcToken") or {}).get("serviceAccountEmail"))
        if method_id == "pubsub.projects.subscriptions.create" and sub.get("topic"):
            out.append(("pubsub.topics.attachSubscription", sub["topic"]))
    elif method_id == "monitoring.locations.global.metricsScopes.projects.create":
        # "monitoring.metricsScopes.link on both the metrics scope and on the MonitoredProject"
        # (https://cloud.google.com/monitoring/api/ref_v3/rest/v1/locations.global.metricsScopes.projects/create).
        monitored = str(body.get("name", "")).rsplit("/projects/", 1)
        if len(monitored) == 2 and monitored[1]:
            out.append(("monitoring.metricsScopes.link", f"projects/{monitored[1]}"))
    elif method_id in ("bigquery.jobs.insert", "bigquery.jobs.query"):
        # A query reads every table it names: "BigQuery Data Viewer on all tables and views that your query
        # references" (https://cloud.google.com/bigquery/docs/running-queries#required_permissions).
        sql = ((body.get("configuration") or {}).get("query") or {}).get("query") or body.get("query") or ""
        out += [("bigquery.tables.getData", table) for table in referenced_tables(sql, project)]
    return out


def referenced_tables(sql: str, project: str) -> list[str]:
    """The tables a query names in backticks (`project.dataset.table`, or `dataset.table` in the job's project),
    as resource names: all the fake reads of SQL."""
    out = []
    for ref in re.findall(r"`([^`]+)`", sql):
        parts = ref.split(".")
        if len(parts) == 2:
            parts = [project, *parts]
        if len(parts) == 3 and all(parts):
            out.append(f"projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}")
    return list(dict.fromkeys(out))
