"""IAM Service Account Credentials API v1: `signJwt`, which signs a caller's claims with a service account's
Google-managed key (how a service account gets the JWT that IAP accepts without any key file)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from ltmctl.gcp.fake.server import Api, ApiError, Request, invalid

MAX_LIFETIME_S = 12 * 3600  # Google's bound on `exp` of a payload to sign


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IamCredentialsApi(Api):
    # Checked and authorized like every other API: signJwt needs iam.serviceAccounts.signJwt on the account.
    discovery = ("iamcredentials.v1",)
    service = "iamcredentials.googleapis.com"
    title = "IAM Service Account Credentials API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self._secret = hashlib.sha256(f"fake-key-{id(self)}".encode()).digest()

    def routes(self):
        return [("POST", "/v1/projects/{project}/serviceAccounts/{account}:signJwt", self.sign_jwt)]

    def sign_jwt(self, req: Request, project: str, account: str):
        if project != "-":
            raise invalid("The `-` wildcard character is required for the project; replacing it with a project ID "
                          "is invalid.")
        body = req.data or {}
        unknown = set(body) - {"payload", "delegates"}
        if unknown:
            name = sorted(unknown)[0]
            raise invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        accounts = getattr(self.fake.apis.get("IamApi"), "accounts", {})
        sa = next((a for a in accounts.values() if account in (a["email"], a["uniqueId"])), None)
        if sa is None:
            raise ApiError(404, "NOT_FOUND", f"Not found; Gaia id not found for email {account}")
        try:
            claims = json.loads(body.get("payload") or "")
        except ValueError:
            raise invalid("Payload is not a valid JSON object.") from None
        if not isinstance(claims, dict):
            raise invalid("Payload is not a valid JSON object.")
        if "exp" in claims:
            exp = claims["exp"]
            now = time.time()
            if not isinstance(exp, int) or exp < now or exp > now + MAX_LIFETIME_S:
                raise invalid("The exp claim must be an integer timestamp that is not in the past and no more than "
                              "12 hours in the future.")
        key_id = hashlib.sha1(sa["email"].encode()).hexdigest()  # noqa: S324 - an id, not a digest of secrets
        header = _b64(json.dumps({"alg": "RS256", "kid": key_id, "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        # Not RSA (the fake has only the standard library): a stand-in signature, unique per key and claims.
        signature = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return {"keyId": key_id, "signedJwt": f"{header}.{payload}.{signature}"}

    # --- for stand-ins of what checks these JWTs (IAP) -----------------------------------------------------------

    def verify(self, token: str) -> dict | None:
        """The claims of a JWT this fake signed and nobody altered; None for anything else."""
        try:
            header, payload, signature = token.split(".")
        except ValueError:
            return None
        expected = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
