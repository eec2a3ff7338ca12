"""Every error leaves the service as one JSON shape: {"error": code, "detail": ...}."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """An answer other than 2xx that a handler decided on."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def _body(error: str, detail: object) -> dict[str, object]:
    return {"error": error, "detail": detail}


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(_body(exc.error, exc.detail), exc.status, headers=exc.headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        # loc is ("path"|"query"|"header", name, ...); the caller knows the field by its name only.
        location = [str(part) for part in error.get("loc", ())[1:]] or ["request"]
        problems.append({"field": ".".join(location), "message": error.get("msg", "invalid value")})
    return JSONResponse(_body("invalid_request", problems), 422)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return JSONResponse(_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)


def _backend_error(request: Request, exc: Exception) -> JSONResponse:
    # The BigQuery message may name tables and quotas: log it, answer with a generic detail.
    request.state.error = f"{type(exc).__name__}: {exc}"
    if _timed_out(exc):
        return JSONResponse(_body("timeout", "the query took too long; try fewer days"), 504)
    return JSONResponse(_body("backend_unavailable", "BigQuery did not answer; try again later"), 503)


def _timed_out(exc: BaseException | None) -> bool:
    """Whether the query ran out of time: a timeout itself (concurrent.futures' too, since 3.11), BigQuery's own
    deadline, or the client's retry giving up on reads that timed out (api_core nests a RetryError per retry layer,
    each with the last exception as its cause). A refused connection that exhausts the retries is not a timeout."""
    from google.api_core.exceptions import DeadlineExceeded, RetryError
    from requests.exceptions import Timeout

    for _ in range(8):  # bounded: causes nest once per retry layer
        if isinstance(exc, TimeoutError | Timeout | DeadlineExceeded):
            return True
        if not isinstance(exc, RetryError):
            return False
        exc = exc.cause
    return False


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from requests.exceptions import RequestException

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in (GoogleAPIError, GoogleAuthError, RequestException, TimeoutError):
        app.add_exception_handler(kind, _backend_error)
