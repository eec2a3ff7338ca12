"""Which predefined role grants a missing permission, and the roles a person running ltmctl needs."""

from __future__ import annotations

# The roles a deployer needs on the project for init, provision, deploy, status and destroy (README).
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
    "roles/iap.admin": "IAP settings and access (deploy), and the CI deployer's grant on IAP's web services",
}

# Most specific first: the first prefix that matches a permission names the role to suggest.
_BY_PREFIX = (
    ("iam.serviceAccounts.actAs", "roles/iam.serviceAccountUser"),
    ("iam.serviceAccounts.", "roles/iam.serviceAccountAdmin"),
    ("serviceusage.services.", "roles/serviceusage.serviceUsageAdmin"),
    ("resourcemanager.projects.setIamPolicy", "roles/resourcemanager.projectIamAdmin"),
    ("resourcemanager.projects.getIamPolicy", "roles/resourcemanager.projectIamAdmin"),
    ("resourcemanager.projects.get", "roles/browser"),
    ("pubsub.", "roles/pubsub.admin"),
    ("bigquery.jobs.create", "roles/bigquery.jobUser"),
    ("bigquery.", "roles/bigquery.dataOwner"),
    ("artifactregistry.", "roles/artifactregistry.admin"),
    ("storage.", "roles/storage.admin"),
    ("run.", "roles/run.admin"),
    ("cloudbuild.", "roles/cloudbuild.builds.editor"),
    ("iap.", "roles/iap.admin"),
    ("monitoring.", "roles/monitoring.viewer"),
    ("logging.", "roles/logging.viewer"),
)


def role_for(permission: str) -> str | None:
    for prefix, role in _BY_PREFIX:
        if permission.startswith(prefix):
            return role
    return None
