"""TEST ONLY: the API service with its IAP check switched off, to prove `ltmctl verify` notices. Nothing in config or
the product can reach this module; a test starts it in place of the stack's API."""

from __future__ import annotations

from api_service.app import create_app
from api_service.auth import require_identity
from api_service.iap import Identity
from api_service.settings import Settings


def from_env():
    app = create_app(Settings.from_env())
    # The broken part: every request passes as somebody.
    app.dependency_overrides[require_identity] = lambda: Identity(email="anyone@example.com", subject=None)
    return app
