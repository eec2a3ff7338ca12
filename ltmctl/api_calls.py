"""Call the pipeline's API in an environment with an identity IAP accepts (the environment gives the URL and the
credential)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ltmctl.errors import BackendError

IAP_HEADER = "x-goog-iap-jwt-assertion"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def call(env: Any, path: str, params: dict[str, Any] | None = None, *, email: str | None = None,
         headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> Answer:
    """GET path as `email` (headers=None), or with exactly the given headers ({} for none)."""
    import httpx

    url = env.api_url() + path
    if headers is None:
        headers = env.auth_headers(email or "developer@ltm.local")
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise BackendError(f"Cannot reach the API at {url}: {exc}",
                           hint="Check that the API is running (`ltmctl local status`).") from None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Answer(response.status_code, body, str(response.url))


def get_data_path(action_id: str, user_email: str) -> str:
    return f"/get_data/{quote(action_id, safe='')}:{quote(user_email, safe='@')}"


def app_info_path(app_id: str, department: str) -> str:
    return f"/app_info/{quote(app_id, safe='')}:{quote(department, safe='')}"
