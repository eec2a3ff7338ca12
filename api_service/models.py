"""Response bodies; every route declares them so they appear in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Event(BaseModel):
    """One stored event, as the ingest function or a BigQuery subscription wrote it."""

    event_id: str
    action_id: str
    user_email: str
    app_id: str
    app_department: str
    source: str | None = None
    event_time: datetime
    payload: dict[str, Any] | None = None
    message_id: str
    publish_time: datetime
    ingest_time: datetime | None = None  # None when a BigQuery subscription wrote the row
    attributes: dict[str, Any] | None = None
    # Present only when the stored payload cannot be served (stored before the contract bounded it, say 300 levels
    # deep): the event is still listed, with payload and attributes null and this reason.
    payload_error: str | None = Field(default=None, exclude_if=lambda value: value is None)


class GetDataResponse(BaseModel):
    """Events of one action by one user; `count` is every distinct event in the window, `events` the newest.
    `truncated` is true when fewer than min(limit, count) events are listed because the answer would pass the
    service's answer-size limit (LTM_MAX_ANSWER_BYTES, 4 MiB by default); ask for a smaller `limit` or fewer
    `days` to page through the rest."""

    action_id: str
    user_email: str
    count: int = Field(ge=1)
    truncated: bool = False
    events: list[Event]


class TopAction(BaseModel):
    action_id: str
    events: int = Field(ge=1)


class AppInfoResponse(BaseModel):
    """Summary of one app's events in the look-back window."""

    app_id: str
    app_department: str
    events: int = Field(ge=1)
    users: int = Field(ge=1)
    actions: int = Field(ge=1)
    first_seen: datetime
    last_seen: datetime
    top_actions: list[TopAction]


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer: a stable error code and a readable detail."""

    error: str
    detail: str


class ValidationErrorResponse(BaseModel):
    """422: one entry per rejected field, path or query alike."""

    error: str = "invalid_request"
    detail: list[FieldProblem]


class Status(BaseModel):
    status: str
    detail: str | None = None
