"""Which predefined role grants a missing permission, and the roles a person running ltmctl needs."""

from __future__ import annotations

# The roles a person running ltmctl needs on the project for init, provision, deploy, status, destroy, monitoring
# apply, metrics and logs (README's table under "Deploy to Google Cloud").
DEPLOYER_ROLES = {
    "roles/serviceusage.serviceUsageAdmin": "enable the APIs (init --enable-apis, provision)",
    "roles/iam.serviceAccountAdmin": "create the runtime, push-invoker, builder and CI deployer service accounts, and "
                                     "set who may act as them",
    "roles/iam.serviceAccountUser": "deploy Cloud Run services that run as those accounts, and builds that run as "
                                    "the builder",
    "roles/resourcemanager.projectIamAdmin": "grant the project-level roles (bigquery.jobUser to the API account, "
                                             "run.admin and logging.logWriter to the CI deployer)",
    "roles/pubsub.admin": "topics, subscriptions and their IAM policies",
    "roles/bigquery.dataOwner": "the dataset, the table and the dataset's access list",
    "roles/artifactregistry.admin": "the image repository",
    "roles/storage.admin": "the staging bucket for sources",
    "roles/run.admin": "Cloud Run services and their IAM (deploy)",
    "roles/cloudbuild.builds.editor": "image builds (deploy)",
    "roles/iap.admin": "IAP access (deploy), and the CI deployer's grants on IAP's web services",
    "roles/iap.settingsAdmin": "the API service's IAP settings: programmatic clients, OAuth client (deploy)",
    "roles/monitoring.alertPolicyEditor": "the alert policies of `ltmctl monitoring apply`",
    "roles/monitoring.dashboardEditor": "the dashboard of `ltmctl monitoring apply`",
    "roles/logging.viewer": "`ltmctl logs` (log entries of the two services)",
}
# Service Usage Admin also holds monitoring.timeSeries.list, so a deployer reads metrics without monitoring.viewer
# (tests/gcp/test_least_privilege.py removes each role above in turn and finds a step that needs it).

# What someone who operates the pipeline without deploying it needs on the project for `metrics` and `logs`.
OPERATOR_ROLES = {
    "roles/monitoring.viewer": "`ltmctl metrics` (time series)",
    "roles/logging.viewer": "`ltmctl logs` (log entries of the two services)",
}



def role_for(permission: str) -> str | None:
    """A predefined role that grants `permission`, from Google's role data; None when no role in the data does.

    Preferred, in order: a role README lists of the permission's own service (monitoring.* for a monitoring
    permission), any role README lists, the permission's own service's, any; the smallest of the first group that
    has one. (Service Usage Admin holds monitoring.timeSeries.list, but a user reading metrics wants a monitoring
    role.)"""
    from ltmctl.gcp.iamdata import role_permissions

    roles = role_permissions()
    having = [role for role, permissions in roles.items() if permission in permissions]
    if not having:
        return None
    service = permission.split(".", 1)[0]

    def own(role: str) -> bool:
        return role.removeprefix("roles/").split(".", 1)[0] == service

    listed = DEPLOYER_ROLES | OPERATOR_ROLES
    for group in ([r for r in having if r in listed and own(r)], [r for r in having if r in listed],
                  [r for r in having if own(r)], having):
        if group:
            return min(group, key=lambda role: (len(roles[role]), role))
    return None
