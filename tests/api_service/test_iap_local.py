"""The local IAP stand-in: key files only the owner can read, assertions the API accepts."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from api_service import iap_local
from api_service.iap import ISSUER, JwksFileKeys, Unauthenticated, verify_assertion


def test_generate_keypair_writes_owner_only_files(tmp_path: Path) -> None:
    private_path, jwks_path = iap_local.generate_keypair(tmp_path / "local")
    for path in (private_path, jwks_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    jwk = json.loads(jwks_path.read_text())["keys"][0]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256") and "d" not in jwk
    assert jwk["kid"] == iap_local.key_id(private_path.read_bytes())


def test_a_second_keypair_replaces_the_first_and_keeps_the_mode(tmp_path: Path) -> None:
    first, _ = iap_local.generate_keypair(tmp_path)
    old = first.read_bytes()
    first.chmod(0o644)
    second, _ = iap_local.generate_keypair(tmp_path)
    assert second == first and second.read_bytes() != old
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [iap_local.JWKS_FILE, iap_local.PRIVATE_KEY_FILE]


def test_minted_assertions_look_like_iap_and_verify(tmp_path: Path) -> None:
    private_path, jwks_path = iap_local.generate_keypair(tmp_path)
    token = iap_local.mint_from_file(private_path, "aud-1", "dev@example.com", ttl_s=120)
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "ES256" and header["kid"] == iap_local.key_id(private_path.read_bytes())
    assert claims["iss"] == ISSUER and claims["aud"] == "aud-1" and claims["exp"] - claims["iat"] == 120
    assert verify_assertion(token, JwksFileKeys(jwks_path), "aud-1").email == "dev@example.com"


def test_mint_overrides_replace_and_remove_claims(tmp_path: Path) -> None:
    private_path, jwks_path = iap_local.generate_keypair(tmp_path)
    pem = private_path.read_bytes()
    token = iap_local.mint(pem, "my-kid", "aud", "a@b.co", now=1_000, hd="example.com", sub=None)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"iss": ISSUER, "aud": "aud", "email": "a@b.co", "iat": 1000, "exp": 4600, "hd": "example.com"}
    assert jwt.get_unverified_header(token)["kid"] == "my-kid"
    with pytest.raises(Unauthenticated, match="expired"):
        verify_assertion(iap_local.mint(pem, None, "aud", "a@b.co", now=time.time() - 4000),
                         JwksFileKeys(jwks_path), "aud")


def test_mint_refuses_a_key_that_is_not_p256(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(ValueError, match="P-256"):
        iap_local.mint(p384, None, "aud", "a@b.co")
