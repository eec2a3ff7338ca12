"""Identity-Aware Proxy API v1: the IAM policy of an IAP-protected Cloud Run service, and of the project's
"all web services" above it.

With IAP enabled directly on a Cloud Run service, who may pass IAP (`roles/iap.httpsResourceAccessor`) is the
policy of `projects/{PROJECT_NUMBER}/iap_web/cloud_run-{REGION}/services/{SERVICE}`, read and written with
`:getIamPolicy` / `:setIamPolicy` (both POST). `projects/{PROJECT_NUMBER}/iap_web` exists with the project, so
`provision` can grant on it before any service does (policies are not inherited here: nothing reads them so).
"""

from __future__ import annotations

from ltmctl.gcp.fake.server import Api, PolicyStore, Request, invalid, not_found


class IapApi(Api):
    service = "iap.googleapis.com"
    title = "Cloud Identity-Aware Proxy API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.policies = PolicyStore(fake)

    def routes(self):
        base = "/v1/projects/{project}/iap_web/{kind}/services/{service}"
        web = "/v1/projects/{project}/iap_web"
        return [
            ("POST", base + ":getIamPolicy", self.get_iam_policy),
            ("POST", base + ":setIamPolicy", self.set_iam_policy),
            ("POST", web + ":getIamPolicy", self.get_web_policy),
            ("POST", web + ":setIamPolicy", self.set_web_policy),
        ]

    def _resource(self, project: str, kind: str, service: str) -> str:
        if not kind.startswith("cloud_run-"):
            raise invalid(f"The fake serves IAP policies of Cloud Run services only, not {kind!r}.")
        pid = self.fake.project_id(project)
        run = self.fake.apis.get("CloudRunApi")
        name = f"projects/{pid}/locations/{kind.removeprefix('cloud_run-')}/services/{service}"
        if run is not None and name not in run.services:
            raise not_found(name)
        return f"projects/{self.fake.number(pid)}/iap_web/{kind}/services/{service}"

    def get_iam_policy(self, req: Request, project: str, kind: str, service: str):
        return self.policies.get(self._resource(project, kind, service))

    def set_iam_policy(self, req: Request, project: str, kind: str, service: str):
        return self.policies.set(self._resource(project, kind, service), (req.body or {}).get("policy", {}))

    def _web(self, project: str) -> str:
        return f"projects/{self.fake.number(project)}/iap_web"

    def get_web_policy(self, req: Request, project: str):
        return self.policies.get(self._web(project))

    def set_web_policy(self, req: Request, project: str):
        return self.policies.set(self._web(project), (req.body or {}).get("policy", {}))


class ServiceIdentityApi(Api):
    """Service Usage v1beta1 `generateServiceIdentity`: creates (or returns) a Google service agent, such as IAP's,
    which exists only once someone asks for it."""

    service = None

    def routes(self):
        return [("POST", "/v1beta1/projects/{project}/services/{service}:generateServiceIdentity", self.generate)]

    def generate(self, req: Request, project: str, service: str):
        number = self.fake.number(project)
        agent = service.split(".", 1)[0]
        identity = {"@type": "type.googleapis.com/google.api.serviceusage.v1beta1.ServiceIdentity",
                    "email": f"service-{number}@gcp-sa-{agent}.iam.gserviceaccount.com",
                    "uniqueId": str(100000000000000000000 + int(number) % 1000)}
        # The agent exists once the operation is done (and IAM sees it `iam_delay_s` later), not when asked for.
        return self.fake.operation("", identity, on_done=lambda: self.fake.create_agent(service))
