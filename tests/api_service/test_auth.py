"""IAP verification: every way an assertion can be wrong gives 401, and keys come from the right source."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api_service import iap_local
from api_service.iap import (
    HEADER,
    ISSUER,
    LEEWAY_S,
    MAX_SUBJECT_CHARS,
    Identity,
    JwksFileKeys,
    KeysUnavailable,
    RemoteJwksKeys,
    Unauthenticated,
    VerifiedAssertions,
    keys_from_jwks,
    verify_assertion,
)
from tests.api_service.support import AUDIENCE, Api, Clock, Keys, event_row, unique


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "email": "x@example.com", "iat": now, "exp": now + 600, **changes}


def _forged(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A JWT put together by hand, as an attacker would: PyJWT refuses to make some of these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{_b64(signature)}"


def _other_key(tmp_path: Any) -> bytes:
    private_path, _ = iap_local.generate_keypair(tmp_path)
    return private_path.read_bytes()


def _tampered(token: str) -> str:
    head, body, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[5] ^= 0xFF
    return f"{head}.{body}.{_b64(bytes(raw))}"


def _public_jwk_text(keys: Keys) -> bytes:
    return keys.jwks_path.read_bytes()


BAD_ASSERTIONS = {
    "no header": (lambda keys, tmp: None, "missing x-goog-iap-jwt-assertion header"),
    "empty header": (lambda keys, tmp: "", "missing x-goog-iap-jwt-assertion header"),
    "garbage": (lambda keys, tmp: "not.a.jwt-at-all", "malformed assertion"),
    "bad signature": (lambda keys, tmp: _tampered(keys.token()), "bad signature"),
    "payload swapped under a valid signature": (
        lambda keys, tmp: ".".join([keys.token().split(".")[0], _b64(json.dumps(_claims(email="boss@x.co")).encode()),
                                    keys.token().split(".")[2]]), "bad signature"),
    "key not in the set": (
        lambda keys, tmp: iap_local.mint(_other_key(tmp), None, AUDIENCE, "x@example.com"), "unknown key id (kid)"),
    "another key claiming the trusted kid": (
        lambda keys, tmp: iap_local.mint(_other_key(tmp), keys.kid, AUDIENCE, "x@example.com"), "bad signature"),
    "no kid": (lambda keys, tmp: jwt.encode(_claims(), iap_local._load_private(keys.private_pem), "ES256"),
               "assertion has no key id (kid)"),
    "wrong audience": (lambda keys, tmp: keys.token(audience="/projects/1/apps/other"), "wrong audience"),
    "wrong issuer": (lambda keys, tmp: keys.token(iss="https://evil.example.com"), "wrong issuer"),
    "expired": (lambda keys, tmp: keys.token(now=time.time() - 7200), "assertion expired"),
    "expired just past the leeway": (lambda keys, tmp: keys.token(now=time.time() - 100, ttl_s=60),
                                     "assertion expired"),
    "not yet valid": (lambda keys, tmp: keys.token(now=time.time() + 120), "assertion not yet valid"),
    "no exp": (lambda keys, tmp: keys.token(exp=None), "missing claim: exp"),
    "no iat": (lambda keys, tmp: keys.token(iat=None), "missing claim: iat"),
    "missing email": (lambda keys, tmp: keys.token(email=None), "assertion has no email claim"),
    "an email over 320 characters": (lambda keys, tmp: keys.token(email="a" * 309 + "@example.com"),
                                     "assertion has no email claim"),
    "iat a numeric string": (lambda keys, tmp: keys.token(iat=str(int(time.time()))),
                             "invalid iat claim (not a number of seconds)"),
    "nbf a numeric string": (lambda keys, tmp: keys.token(nbf=str(int(time.time()))),
                             "invalid nbf claim (not a number of seconds)"),
    "a signed payload that is no JSON object": (
        lambda keys, tmp: jwt.PyJWS().encode(b"[1, 2]", iap_local._load_private(keys.private_pem), "ES256",
                                             headers={"kid": keys.kid}),
        "invalid assertion (DecodeError)"),
    "alg none": (lambda keys, tmp: _forged({"alg": "none", "kid": keys.kid}, _claims()),
                 "algorithm 'none' is not allowed; only ES256"),
    "alg None spelled differently": (lambda keys, tmp: _forged({"alg": "nOnE", "kid": keys.kid}, _claims()),
                                     "algorithm 'nOnE' is not allowed; only ES256"),
    "no alg": (lambda keys, tmp: _forged({"kid": keys.kid}, _claims()), "algorithm 'None' is not allowed; only ES256"),
    "HS256 signed with the public key": (
        lambda keys, tmp: _forged({"alg": "HS256", "kid": keys.kid, "typ": "JWT"}, _claims(),
                                  lambda m: hmac.new(_public_jwk_text(keys), m, hashlib.sha256).digest()),
        "algorithm 'HS256' is not allowed; only ES256"),
    "HS256 signed with the public key PEM": (
        lambda keys, tmp: _forged({"alg": "HS256", "kid": keys.kid}, _claims(),
                                  lambda m: hmac.new(iap_local._load_private(keys.private_pem).public_key()
                                                     .public_bytes(*_pem_args()), m, hashlib.sha256).digest()),
        "algorithm 'HS256' is not allowed; only ES256"),
    "RS256 with the trusted kid": (
        lambda keys, tmp: jwt.encode(_claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                     "RS256", headers={"kid": keys.kid}),
        "algorithm 'RS256' is not allowed; only ES256"),
}


def _pem_args() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.mark.parametrize("kind", BAD_ASSERTIONS)
def test_every_auth_failure_gives_401_on_both_routes(api: Api, keys: Keys, tmp_path: Any, kind: str) -> None:
    make, detail = BAD_ASSERTIONS[kind]
    token = make(keys, tmp_path)
    headers = {} if token is None else {HEADER: token}
    for path in ("/get_data/login:a@example.com", "/app_info/app-1:sales"):
        response = api.get(path, auth=False, headers=headers)
        assert response.status_code == 401, (kind, path, response.text)
        assert response.json() == {"error": "unauthenticated", "detail": detail}
        assert response.headers["www-authenticate"].startswith("IAP")


# Fixed ids: a test id that changes with the clock is a new test to every run (mutmut's stats among them).
@pytest.mark.parametrize("exp", [10**400, -(10**400), str(int(time.time()) + 600), True, 1.5e300],
                         ids=["huge", "huge-negative", "a-string", "true", "1.5e300"])
def test_an_exp_that_is_not_a_plausible_number_gives_401_not_500(api: Api, keys: Keys, exp: Any) -> None:
    # Issue 12 item 3: a 400-digit exp answered 500 (float() overflowed); a numeric string was accepted.
    response = api.get(f"/get_data/{unique('exp')}:a@example.com", auth=False, headers={HEADER: keys.token(exp=exp)})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthenticated"


def test_the_identity_is_the_email_and_the_subject_the_assertion_carries(keys: Keys) -> None:
    source = JwksFileKeys(keys.jwks_path)
    longest = "a" * 308 + "@example.com"  # 320 characters, the most an address may have
    identity = verify_assertion(keys.token(email=longest, sub="accounts.google.com:1234"), source, AUDIENCE)
    assert identity == Identity(email=longest, subject="accounts.google.com:1234")
    # A subject is kept only up to MAX_SUBJECT_CHARS (it is held in the verified-assertion cache); the e-mail,
    # which is what the API acts on, still identifies the caller.
    for subject, kept in [("s" * MAX_SUBJECT_CHARS, "s" * MAX_SUBJECT_CHARS), ("s" * (MAX_SUBJECT_CHARS + 1), None)]:
        assert verify_assertion(keys.token(sub=subject), source, AUDIENCE).subject == kept


def test_clock_skew_within_the_leeway_is_accepted(api: Api, keys: Keys) -> None:
    late = keys.token(now=time.time() - 80, ttl_s=60)  # expired 20 s ago
    early = keys.token(now=time.time() + 20)  # issued 20 s from now
    for token in (late, early):
        response = api.get(f"/get_data/{unique('skew')}:a@example.com", auth=False, headers={HEADER: token})
        assert response.status_code == 404, response.text


def test_auth_is_checked_before_the_path(api: Api) -> None:
    """An unauthenticated caller learns nothing about validation: 401 even for a path that would be 422."""
    assert api.get("/get_data/'bad:not-an-email", auth=False).status_code == 401
    assert api.get("/get_data/'bad:not-an-email").status_code == 422


def test_the_verified_email_is_logged_and_the_token_never(api: Api, keys: Keys, insert) -> None:
    action = unique("who")
    insert([event_row(action_id=action)])
    token = keys.token(email="Auditor@Example.com")
    api.get(f"/get_data/{action}:someone@example.com", auth=False, headers={HEADER: token, "x-other": "1"})
    detail = api.get("/get_data/a:b@c.co", auth=False, headers={HEADER: _tampered(token)}).json()["detail"]

    ok, refused = api.log_lines()
    assert ok["email"] == "Auditor@Example.com" and ok["httpRequest"]["status"] == 200
    assert "email" not in refused and refused["httpRequest"]["status"] == 401
    assert detail and refused["message"].endswith(f" 401: {detail}")  # the line says which check failed
    text = api.log.getvalue()
    for part in token.split("."):
        assert part not in text


def test_the_local_jwk_set_is_reread_when_it_changes(make_api, keys: Keys, tmp_path: Any) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(keys.jwks_path.read_bytes())
    api = make_api(iap_jwks_file=str(jwks))
    private_path, new_jwks = iap_local.generate_keypair(tmp_path / "new")
    rotated = iap_local.mint_from_file(private_path, AUDIENCE, "x@example.com")
    assert api.get("/get_data/a:b@c.co", auth=False, headers={HEADER: rotated}).status_code == 401

    jwks.write_bytes(new_jwks.read_bytes())
    stat = jwks.stat()
    os.utime(jwks, (stat.st_atime, stat.st_mtime + 5))  # a different mtime even on coarse file systems
    assert api.get(f"/get_data/{unique('r')}:b@c.co", auth=False, headers={HEADER: rotated}).status_code == 404


def test_a_jwk_set_without_a_usable_key_stops_the_start(make_api, tmp_path: Any) -> None:
    bad = tmp_path / "jwks.json"
    bad.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}))
    with pytest.raises(KeysUnavailable):
        make_api(iap_jwks_file=str(bad))


def test_only_p256_keys_are_taken_from_a_jwk_set(keys: Keys) -> None:
    good = json.loads(keys.jwks_path.read_text())["keys"][0]
    others = [{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}, {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
              {**good, "kid": "p384", "crv": "P-384"}, {**good, "kid": "hs", "alg": "HS256"}, "junk"]
    assert list(keys_from_jwks({"keys": [good, *others]})) == [good["kid"]]
    assert keys_from_jwks([good]) == {} and keys_from_jwks({"keys": "x"}) == {}


def test_every_usable_key_is_taken_whatever_comes_before_it(keys: Keys) -> None:
    """A key PyJWK refuses (a point off the curve) or of another kind is skipped, not the end of the set; a P-256
    key that names no `alg` is taken (the member is optional in a JWK)."""
    good = json.loads(keys.jwks_path.read_text())["keys"][0]
    no_alg = {k: v for k, v in good.items() if k not in ("alg", "kid")} | {"kid": "no-alg"}
    off_the_curve = {**good, "kid": "broken", "y": good["x"]}
    got = keys_from_jwks({"keys": ["junk", off_the_curve, {**good, "kid": "p384", "crv": "P-384"}, good, no_alg]})
    assert list(got) == [good["kid"], "no-alg"]
    assert got["no-alg"].public_numbers() == got[good["kid"]].public_numbers()


class _JwksServer:
    """A stand-in for Google's key endpoint, on loopback: it serves whatever set the test puts in it."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/iap/verify/public_key-jwk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, *jwks_paths: Any) -> None:
        keys = [k for p in jwks_paths for k in json.loads(p.read_text())["keys"]]
        self.body = json.dumps({"keys": keys}).encode()


@pytest.fixture
def google() -> Iterator[_JwksServer]:
    server = _JwksServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_google_keys_are_fetched_once_and_refreshed_for_a_new_kid(google: _JwksServer, make_api, keys: Keys,
                                                                 tmp_path: Any) -> None:
    google.serve(keys.jwks_path)
    clock = Clock()
    source = RemoteJwksKeys(google.url, clock=clock)
    api = make_api(key_source=source, clock=clock, iap_jwks_file=None)
    for _ in range(3):
        assert api.get(f"/get_data/{unique('g')}:a@b.co").status_code == 404
    assert google.hits == 1  # cached after the first use
    clock.now += 60  # past the refresh rate limit

    private_path, new_jwks = iap_local.generate_keypair(tmp_path / "rotated")
    google.serve(keys.jwks_path, new_jwks)  # Google rotates: a new kid appears
    rotated = {HEADER: iap_local.mint_from_file(private_path, AUDIENCE, "x@example.com")}
    assert api.get(f"/get_data/{unique('g')}:a@b.co", auth=False, headers=rotated).status_code == 404
    assert google.hits == 2
    source.close()


def test_unknown_kids_cannot_make_the_service_hammer_google(google: _JwksServer, keys: Keys, tmp_path: Any) -> None:
    google.serve(keys.jwks_path)
    now = [0.0]
    source = RemoteJwksKeys(google.url, min_refresh_s=30, clock=lambda: now[0])
    assert source.get(keys.kid) is not None
    for i in range(20):
        assert source.get(f"attacker-{i}") is None
    assert google.hits == 1  # the first fetch was less than 30 s ago

    now[0] = 29.999
    assert source.get("attacker-late") is None and google.hits == 1
    now[0] = 30.0  # min_refresh_s after the first fetch: one refresh, then quiet again
    assert source.get("attacker-late") is None and google.hits == 2
    assert source.get("attacker-later") is None and google.hits == 2
    source.close()


def test_old_google_keys_are_refreshed_and_kept_if_google_is_down(google: _JwksServer, keys: Keys) -> None:
    google.serve(keys.jwks_path)
    now = [0.0]
    source = RemoteJwksKeys(google.url, max_age_s=3600, clock=lambda: now[0])
    assert source.get(keys.kid) is not None
    google.status = 500
    now[0] = 4000.0
    assert source.get(keys.kid) is not None and google.hits == 2  # tried, failed, kept serving
    source.close()


def test_peeking_at_google_keys_never_fetches_and_never_answers_an_old_key(google: _JwksServer, keys: Keys) -> None:
    """The verified-assertion cache asks `peek`, which must not turn a lookup into a fetch, and must not vouch for
    a key older than max_age_s (the full check would refresh it first)."""
    google.serve(keys.jwks_path)
    now = [0.0]
    source = RemoteJwksKeys(google.url, max_age_s=3600, clock=lambda: now[0])
    assert source.peek(keys.kid) is None and google.hits == 0  # nothing fetched yet, and peek fetches nothing
    key = source.get(keys.kid)
    assert key is not None and google.hits == 1
    assert source.peek(keys.kid) is key  # the very object the full check verified with
    assert source.peek("another-kid") is None
    now[0] = 3599.0
    assert source.peek(keys.kid) is key
    now[0] = 3600.0
    assert source.peek(keys.kid) is None and google.hits == 1  # too old to vouch for, and still no fetch
    source.close()


def test_google_keys_by_default_are_refetched_at_most_every_30_s_and_kept_an_hour(google: _JwksServer,
                                                                                  keys: Keys) -> None:
    google.serve(keys.jwks_path)
    now = [0.0]
    source = RemoteJwksKeys(google.url, clock=lambda: now[0])
    assert source.get(keys.kid) is not None
    now[0] = 29.9
    assert source.get("unknown") is None and google.hits == 1
    now[0] = 30.0
    assert source.get("unknown") is None and google.hits == 2
    now[0] = 30.0 + 3599.9  # an hour after the second fetch
    assert source.peek(keys.kid) is not None
    now[0] = 30.0 + 3600.0
    assert source.peek(keys.kid) is None
    source.close()


def test_a_google_that_never_answers_is_given_up_on_within_the_timeout() -> None:
    """The key fetch has a timeout: a request whose keys cannot be fetched is answered 503, not held forever."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections (the kernel does) and never answers
    source = RemoteJwksKeys(f"http://127.0.0.1:{silent.getsockname()[1]}/keys", timeout_s=0.5)
    outcome: list[Any] = []

    def fetch() -> None:
        try:
            outcome.append(source.get("kid"))
        except KeysUnavailable as exc:
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(30)
    silent.close()
    assert not worker.is_alive(), "the fetch is still waiting for Google"
    assert isinstance(outcome[0], KeysUnavailable)
    source.close()


def test_no_google_keys_at_all_gives_503_not_401(google: _JwksServer, make_api) -> None:
    google.status = 503
    api = make_api(iap_jwks_file=None, iap_jwks_url=google.url)
    response = api.get("/get_data/a:b@c.co")
    assert response.status_code == 503
    assert response.json() == {"error": "keys_unavailable",
                               "detail": "IAP signing keys are unavailable; try again later"}
    # the log line says why (the answer does not: it names no internal URL)
    [line] = api.log_lines()
    assert line["message"].endswith(f" 503: no IAP signing keys could be fetched from {google.url}")


def test_a_cached_assertion_still_expires(make_api, keys: Keys) -> None:
    """Served from the verified-assertion cache until exp, then the full check runs again, and refuses it once
    exp is LEEWAY_S behind: a clock the test moves, so no second of real time decides anything."""
    wall = Clock()
    wall.now = float(int(time.time()))
    api = make_api(wall_clock=wall)
    verified = api.client.app.state.services.verified
    token = keys.token(now=wall.now - 10, ttl_s=12)  # exp 2 s after wall.now
    path = f"/get_data/{unique('exp')}:a@example.com"
    assert api.get(path, auth=False, headers={HEADER: token}).status_code == 404
    hits, misses = verified.hits, verified.misses
    wall.now += 1
    assert api.get(path, auth=False, headers={HEADER: token}).status_code == 404
    assert (verified.hits, verified.misses) == (hits + 1, misses)  # the second answer came from the cache
    wall.now += 1  # exp: the cache no longer answers; the full check still admits it within the leeway
    assert api.get(path, auth=False, headers={HEADER: token}).status_code == 404
    assert verified.hits == hits + 1 and verified.misses > misses  # the full check answered
    wall.now += LEEWAY_S  # and LEEWAY_S later nothing does
    response = api.get(path, auth=False, headers={HEADER: token})
    assert response.status_code == 401 and response.json()["detail"] == "assertion expired"
    assert verified.hits == hits + 1


def test_exp_iat_and_nbf_are_held_to_the_leeway_to_the_second(keys: Keys, tmp_path: Any) -> None:
    source, moment = JwksFileKeys(keys.jwks_path), 2_000_000_000

    def check(**claims: Any) -> str:
        try:
            verify_assertion(keys.token(**claims), source, AUDIENCE, now=lambda: float(moment))
        except Unauthenticated as exc:
            return str(exc)
        return "ok"

    assert check(iat=moment - 600, exp=moment - LEEWAY_S + 1) == "ok"
    assert check(iat=moment - 600, exp=moment - LEEWAY_S) == "assertion expired"
    assert check(iat=moment + LEEWAY_S, exp=moment + 600) == "ok"
    assert check(iat=moment + LEEWAY_S + 1, exp=moment + 600) == "assertion not yet valid"
    assert check(iat=moment, nbf=moment + LEEWAY_S, exp=moment + 600) == "ok"
    assert check(iat=moment, nbf=moment + LEEWAY_S + 1, exp=moment + 600) == "assertion not yet valid"


class _Source:
    """A key source whose key object the test swaps, as a re-read JWK set does."""

    def __init__(self, keys: Keys) -> None:
        self.kid = keys.kid
        self.key = keys_from_jwks(json.loads(keys.jwks_path.read_text()))[keys.kid]

    def get(self, kid: str) -> Any:
        return self.key if kid == self.kid else None

    def peek(self, kid: str) -> Any:
        return self.get(kid)


def test_the_verified_assertion_cache_keeps_every_check(keys: Keys) -> None:
    now = [time.time()]
    cache = VerifiedAssertions(max_entries=2, max_age_s=60, clock=lambda: now[0])
    source = _Source(keys)
    token = keys.token(ttl_s=3600)
    assert cache.lookup(token, source, AUDIENCE) is None
    identity = verify_assertion(token, source, AUDIENCE, cache)
    assert cache.lookup(token, source, AUDIENCE) == identity
    assert cache.lookup(token, source, "/projects/1/apps/other") is None  # the audience is part of the key
    assert token.encode() not in repr(cache._entries).encode()  # only a digest of the token is kept

    now[0] += 60  # max age reached although exp is an hour away
    assert cache.lookup(token, source, AUDIENCE) is None and len(cache) == 0

    verify_assertion(token, source, AUDIENCE, cache)
    source.key = keys_from_jwks(json.loads(keys.jwks_path.read_text()))[keys.kid]  # the key set was re-read
    assert cache.lookup(token, source, AUDIENCE) is None

    with pytest.raises(Unauthenticated):  # failures are never cached
        verify_assertion(_tampered(token), source, AUDIENCE, cache)
    assert cache.lookup(_tampered(token), source, AUDIENCE) is None

    tokens = [keys.token(email=f"u{i}@example.com", ttl_s=3600) for i in range(3)]
    for t in tokens:
        verify_assertion(t, source, AUDIENCE, cache)
    assert len(cache) == 2 and cache.lookup(tokens[0], source, AUDIENCE) is None  # least recently used went

    class NoPeek:
        get = source.get

    verify_assertion(tokens[2], NoPeek(), AUDIENCE, cache)
    assert cache.lookup(tokens[2], NoPeek(), AUDIENCE) is None  # a source that might fetch is never used here


def test_a_verified_assertion_is_not_verified_again_on_a_route_the_cache_cannot_answer(make_api, keys: Keys) -> None:
    """The dependency itself consults the verified-assertion cache, not only the hot path (which never looks at a
    request with a query string): the same assertion on two paths is checked once, with the identity found first."""
    api = make_api()
    verified = api.client.app.state.services.verified
    token = keys.token(email="Twice@Example.com")
    first = api.get(f"/get_data/{unique('v1')}:a@example.com", auth=False, headers={HEADER: token})
    assert first.status_code == 404 and (verified.hits, len(verified)) == (0, 1)
    second = api.get(f"/app_info/{unique('v2')}:sales?days=7", auth=False, headers={HEADER: token})
    assert second.status_code == 404
    assert verified.hits == 1  # answered from the cache, not by a second signature check
    third = api.get(f"/app_info/{unique('v3')}:sales?days=7", auth=False, headers={HEADER: token})
    assert third.status_code == 404 and (verified.hits, len(verified)) == (2, 1)  # and again
    # every log line names the verified e-mail: the cached identity is the one the check found
    assert [line.get("email") for line in api.log_lines()] == ["Twice@Example.com"] * 3
