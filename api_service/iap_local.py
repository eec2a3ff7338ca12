"""Local stand-in for Identity-Aware Proxy: an ES256 key pair and assertions signed with it.

The local stack's API trusts the JWK set written here (LTM_IAP_JWKS_FILE); `ltmctl api token` mints with the
private key. Nothing here is used in GCP, where IAP signs and the API checks Google's published keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api_service.iap import ALGORITHM, ISSUER

PRIVATE_KEY_FILE = "iap-private.pem"
JWKS_FILE = "iap-jwks.json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big"))}


def key_id(private_key_pem: bytes | str) -> str:
    """The RFC 7638 thumbprint of the key's public half: the same key always has the same kid."""
    public = _load_private(private_key_pem).public_key()
    canonical = json.dumps(_public_jwk(public), sort_keys=True, separators=(",", ":")).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _load_private(private_key_pem: bytes | str) -> ec.EllipticCurvePrivateKey:
    pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the IAP signing key must be an EC P-256 private key")
    return key


def _write_private(path: Path, data: bytes) -> None:
    """Written to a 0600 temporary file, then renamed: the key is never readable by others, not even briefly."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover file
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def generate_keypair(directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new P-256 key pair in directory: (private key PEM path, JWK set path), both mode 0600."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwks = {"keys": [{**_public_jwk(key.public_key()), "kid": key_id(pem), "alg": ALGORITHM, "use": "sig"}]}
    private_path, jwks_path = folder / PRIVATE_KEY_FILE, folder / JWKS_FILE
    _write_private(private_path, pem)
    _write_private(jwks_path, json.dumps(jwks, indent=2).encode())
    return private_path, jwks_path


def mint(private_key_pem: bytes | str, kid: str | None, audience: str, email: str, ttl_s: int = 3600,
         now: float | None = None, **overrides: Any) -> str:
    """An assertion shaped like IAP's; overrides replace claims, and a None override removes one."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iss": ISSUER, "aud": audience, "email": email, "sub": f"local:{email}",
                              "iat": issued, "exp": issued + int(ttl_s)}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, _load_private(private_key_pem), algorithm=ALGORITHM,
                      headers={"kid": kid or key_id(private_key_pem), "typ": "JWT"})


def mint_from_file(private_key_path: str | os.PathLike[str], audience: str, email: str, ttl_s: int = 3600) -> str:
    """mint() with the key read from the file generate_keypair wrote; the kid follows from the key."""
    pem = Path(private_key_path).read_bytes()
    return mint(pem, None, audience, email, ttl_s)
