"""Identity-Aware Proxy API v1: the IAM policy of an IAP-protected Cloud Run service, and of the project's
"all web services" above it; and the IAP settings of those resources (`:iapSettings`, GET and PATCH).

With IAP enabled directly on a Cloud Run service, who may pass IAP (`roles/iap.httpsResourceAccessor`) is the
policy of `projects/{PROJECT_NUMBER}/iap_web/cloud_run-{REGION}/services/{SERVICE}`, read and written with
`:getIamPolicy` / `:setIamPolicy` (both POST). `projects/{PROJECT_NUMBER}/iap_web` exists with the project, so
`provision` can grant on it before any service does (policies are not inherited here: nothing reads them so).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from ltmctl.gcp.fake.server import Api, PolicyStore, Request, invalid, not_found


class IapApi(Api):
    discovery = ("iap.v1",)
    service = "iap.googleapis.com"
    title = "Cloud Identity-Aware Proxy API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.policies = PolicyStore(fake)
        self.settings = IapSettingsStore()

    def routes(self):
        base = "/v1/projects/{project}/iap_web/{kind}/services/{service}"
        web = "/v1/projects/{project}/iap_web"
        return [
            ("POST", base + ":getIamPolicy", self.get_iam_policy),
            ("POST", base + ":setIamPolicy", self.set_iam_policy),
            ("POST", web + ":getIamPolicy", self.get_web_policy),
            ("POST", web + ":setIamPolicy", self.set_web_policy),
            ("GET", "/v1/{name*}:iapSettings", self.get_settings),
            ("PATCH", "/v1/{name*}:iapSettings", self.update_settings),
        ]

    def _settings_name(self, name: str) -> str:
        """projects/NUMBER/iap_web[/cloud_run-REGION[/services/SERVICE]], the levels deploy and tests use."""
        m = re.fullmatch(r"projects/([^/]+)/iap_web(?:/([^/]+)(?:/services/([^/]+))?)?", name)
        if m is None:
            raise invalid(f"Invalid resource name: {name!r}.")
        project, kind, service = m.groups()
        if service is not None:
            return self._resource(project, kind, service)
        if kind is not None and not kind.startswith("cloud_run-"):
            raise invalid(f"The fake serves IAP settings of Cloud Run resources only, not {kind!r}.")
        return f"projects/{self.fake.number(project)}/iap_web" + (f"/{kind}" if kind else "")

    def get_settings(self, req: Request, name: str):
        return self.settings.get(self._settings_name(name))

    def update_settings(self, req: Request, name: str):
        return self.settings.patch(self._settings_name(name), req.data, req.query.get("updateMask"))

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
        return self.policies.set(self._resource(project, kind, service), (req.data or {}).get("policy", {}))

    def _web(self, project: str) -> str:
        return f"projects/{self.fake.number(project)}/iap_web"

    def get_web_policy(self, req: Request, project: str):
        return self.policies.get(self._web(project))

    def set_web_policy(self, req: Request, project: str):
        return self.policies.set(self._web(project), (req.data or {}).get("policy", {}))


class ServiceIdentityApi(Api):
    """Service Usage v1beta1 `generateServiceIdentity`: creates (or returns) a Google service agent, such as IAP's,
    which exists only once someone asks for it."""
    discovery = ("serviceusage.v1beta1",)

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


# Input only (the secret) and output only (its hash): never stored or accepted as sent.
_INPUT_ONLY = {"clientSecret"}
_OUTPUT_ONLY = {"clientSecretSha256"}


def _mask_path(path: str) -> list[str]:
    """An updateMask path (snake or camel case) as camelCase keys (the request was already checked against the
    IapSettings schema of iap.v1's discovery document, masks included)."""
    from ltmctl.gcp.fake import discovery

    keys = discovery.field_path(discovery.load("iap.v1"), "IapSettings", path.strip())
    if keys is None:
        raise invalid(f"Invalid update mask path: {path!r}.")
    return keys


class IapSettingsStore:
    """`GET/PATCH /v1/{name=**}:iapSettings`: the settings of an IAP resource (project `iap_web`, a resource type
    such as `cloud_run-REGION`, or one service), answered in the IapSettings shape. A resource never written
    answers with its name only, as IAP does for settings nobody set."""

    def __init__(self) -> None:
        self.settings: dict[str, dict[str, Any]] = {}

    def get(self, name: str) -> dict[str, Any]:
        stored = json.loads(json.dumps(self.settings.get(name, {})))
        return {"name": name, **stored}

    def patch(self, name: str, body: Any, update_mask: str | None) -> dict[str, Any]:
        sent = json.loads(json.dumps(body or {}))  # already camelCase: the server hands over what Google parsed
        sent.pop("name", None)
        _drop_output_only(sent)
        current = json.loads(json.dumps(self.settings.get(name, {})))
        if update_mask:
            for path in (p for p in update_mask.split(",") if p.strip()):
                keys = _mask_path(path)
                source: Any = sent
                for key in keys:
                    source = source.get(key) if isinstance(source, dict) else None
                target = current
                for key in keys[:-1]:
                    target = target.setdefault(key, {})
                if source is None:
                    target.pop(keys[-1], None)
                else:
                    target[keys[-1]] = source
        else:
            current = sent  # no mask: every field is replaced by what was sent
        _seal_secrets(current)
        self.settings[name] = _prune(current)
        return self.get(name)


def _drop_output_only(value: Any) -> None:
    if isinstance(value, dict):
        for key in list(value):
            if key in _OUTPUT_ONLY:
                value.pop(key)
            else:
                _drop_output_only(value[key])


def _seal_secrets(value: Any) -> None:
    """A secret just sent is kept as its SHA-256 only, as IAP answers `clientSecretSha256`."""
    if isinstance(value, dict):
        for key in list(value):
            if key in _INPUT_ONLY:
                secret = value.pop(key)
                if secret:
                    value["clientSecretSha256"] = hashlib.sha256(str(secret).encode()).hexdigest()
            else:
                _seal_secrets(value[key])


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, None)}
    return value
