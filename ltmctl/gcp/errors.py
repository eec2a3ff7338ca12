"""Errors from Google APIs as one panel with a hint: what to enable, which role is missing, what to create,
which quota to raise. Exit code 4 (a cloud error). Use `google_errors(...)` as a context manager or decorator."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from ltmctl.errors import BackendError, LtmctlError


class GcpError(BackendError):
    title = "Google Cloud error"


_PERMISSION_PATTERNS = (
    re.compile(r"[Pp]ermission '([\w.]+)' denied"),
    re.compile(r"does not have (?:the )?'?([a-z]+\.[\w.]+)'? permission"),
    re.compile(r"requires '?([a-z]+\.[a-zA-Z]+\.[a-zA-Z]+)'? permission"),
    re.compile(r"[Pp]ermission ([a-z]+\.[a-zA-Z]+\.[a-zA-Z]+) denied"),
)


def missing_permission(exc: Any) -> str | None:
    """The permission a PERMISSION_DENIED names: in its ErrorInfo metadata, else in its message."""
    metadata = getattr(exc, "metadata", None) or {}
    if metadata.get("permission"):
        return str(metadata["permission"])
    for detail in getattr(exc, "details", None) or []:
        if isinstance(detail, dict) and (detail.get("metadata") or {}).get("permission"):
            return str(detail["metadata"]["permission"])
    text = getattr(exc, "message", None) or str(exc)
    for pattern in _PERMISSION_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def disabled_service(exc: Any) -> str | None:
    """The API a SERVICE_DISABLED error names (ErrorInfo metadata, or the activation URL in the message)."""
    if getattr(exc, "reason", None) == "SERVICE_DISABLED" and (getattr(exc, "metadata", None) or {}).get("service"):
        return str(exc.metadata["service"])
    text = getattr(exc, "message", None) or str(exc)
    if "has not been used in project" in text or "is disabled" in text or "accessNotConfigured" in str(exc):
        m = re.search(r"apis/api/([a-z0-9.-]+\.googleapis\.com)", text) or re.search(
            r"([a-z0-9-]+\.googleapis\.com)", text)
        if m:
            return m.group(1)
    return None


def _short(exc: Any) -> str:
    text = getattr(exc, "message", None) or str(exc)
    # api_core prefixes REST errors with "METHOD URL: "; the URL says nothing the resource name does not.
    text = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", text)
    return text.split(" [{'@type'")[0].strip()


_BUCKET_TAKEN = ("Choose another name for the staging bucket: set `gcp.staging_bucket` under this environment in the "
                 "config (default PROJECT-ltm-sources), then run the command again. If the bucket is yours, your "
                 "account lacks storage.buckets.get on it (roles/storage.admin has it).")


def translate(exc: Exception, project: str | None = None, doing: str | None = None) -> LtmctlError:
    """A google.api_core exception (or a transport error) as a GcpError with a hint."""
    from google.api_core import exceptions as gexc

    where = f" while {doing}" if doing else ""
    flag = f" --project {project}" if project else ""
    if not isinstance(exc, gexc.GoogleAPICallError):
        return GcpError(f"Could not reach Google Cloud{where}: {exc}",
                        hint="Check the network connection (and any proxy settings), then run the command again.")
    message = _short(exc)
    service = disabled_service(exc)
    if service:
        return GcpError(f"The API {service} is not enabled on the project{where}.\n{message}",
                        hint=f"Enable it: `gcloud services enable {service}{flag}` (or `ltmctl init --enable-apis` "
                             "for every API the pipeline needs), wait a minute, and run the command again.")
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied | gexc.Unauthorized):
        permission = missing_permission(exc)
        if permission == "storage.buckets.get" and "bucket" in (doing or ""):
            # Bucket names are global: a name another project holds answers 403 to everyone else, exactly as a
            # missing permission on one's own bucket does.
            return GcpError(f"Permission denied{where}: the bucket name is most likely taken by another project "
                            f"(bucket names are global).\n{message}", hint=_BUCKET_TAKEN)
        if permission:
            from ltmctl.gcp.roles import role_for

            role = role_for(permission)
            grant = (f"Grant your account a role that includes it, e.g. `gcloud projects add-iam-policy-binding "
                     f"{project or 'PROJECT'} --member=user:YOU@example.com --role={role}`"
                     if role else "Grant your account a role that includes it")
            return GcpError(f"Permission denied{where}: missing `{permission}`.\n{message}",
                            hint=f"{grant}, or ask a project owner to.")
        return GcpError(f"Permission denied{where}.\n{message}",
                        hint="Check that the account in Application Default Credentials "
                             "(`gcloud auth application-default print-access-token` works) has the roles listed "
                             "under \"Deploy to Google Cloud\" in the README, and that the project id is right.")
    if isinstance(exc, gexc.NotFound):
        return GcpError(f"Not found{where}: {message}",
                        hint="Create the pipeline's resources with `ltmctl provision` (`ltmctl status` shows what "
                             "exists), or check the project and names in the config.")
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted):
        metadata = getattr(exc, "metadata", None) or {}
        quota = metadata.get("quota_metric") or metadata.get("quota_limit")
        what = f"the quota `{quota}`" + (f" of {metadata['service']}" if metadata.get("service") else "") \
            if quota else "the quota named above"
        return GcpError(f"Quota exceeded{where}: {message}",
                        hint=f"Wait a minute and run the command again; if it keeps failing, raise {what} at "
                             f"https://console.cloud.google.com/iam-admin/quotas"
                             + (f"?project={project}" if project else "") + ".")
    if isinstance(exc, gexc.Conflict | gexc.AlreadyExists):
        if "bucket" in (doing or "") and "not available" in message:
            return GcpError(f"The bucket name is taken{where}: {message}", hint=_BUCKET_TAKEN)
        return GcpError(f"Conflict{where}: {message}",
                        hint="Something else changed or owns this resource; run `ltmctl status`, then try again.")
    return GcpError(f"Google Cloud answered {getattr(exc, 'code', '') or ''} {type(exc).__name__}{where}: {message}"
                    .replace("  ", " "),
                    hint="Run again with --debug for the full error.")


class google_errors(contextlib.ContextDecorator):  # noqa: N801 - used like a function
    """Turn Google API and transport errors raised inside into GcpError; infra's own errors into LtmctlError."""

    def __init__(self, project: str | None = None, doing: str | None = None) -> None:
        self.project, self.doing = project, doing

    def __enter__(self) -> google_errors:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, LtmctlError) or not isinstance(exc, Exception):
            return False
        from google.api_core.exceptions import GoogleAPICallError
        from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError
        from requests.exceptions import ConnectionError as RequestsConnectionError

        from infra.errors import InfraError

        if isinstance(exc, InfraError):
            raise LtmctlError(exc.message, hint=exc.hint) from None
        if isinstance(exc, DefaultCredentialsError | RefreshError):
            from ltmctl.gcp.clients import ADC_HINT

            raise BackendError(f"Google Cloud credentials are missing or expired: {exc}", hint=ADC_HINT) from None
        if isinstance(exc, GoogleAPICallError | RequestsConnectionError | TransportError):
            raise translate(exc, self.project, self.doing) from exc
        return False
