"""Verification of the Identity-Aware Proxy assertion: key sources and the checks, free of any web framework."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from api_service.text import cut

ISSUER = "https://cloud.google.com/iap"
HEADER = "x-goog-iap-jwt-assertion"
ALGORITHM = "ES256"
LEEWAY_S = 30
MAX_CLAIM_TIME = 10**11  # seconds since the epoch: year 5138
MAX_SUBJECT_CHARS = 255


class Unauthenticated(Exception):
    """The assertion is missing or fails a check; the message says which one."""


class KeysUnavailable(Exception):
    """The signing keys could not be loaded, so no assertion can be checked."""


class KeySource(Protocol):
    def get(self, kid: str) -> Any | None:
        """The public key for kid, or None when the set has no such key."""


@dataclass(frozen=True)
class Identity:
    email: str
    subject: str | None


def keys_from_jwks(data: Any) -> dict[str, Any]:
    """kid → public key for each P-256 key of a JWK set; every other kind of key is left out."""
    keys: dict[str, Any] = {}
    for jwk in data.get("keys", []) if isinstance(data, dict) else []:
        if not (isinstance(jwk, dict) and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256"
                and jwk.get("alg", ALGORITHM) == ALGORITHM and isinstance(jwk.get("kid"), str)):
            continue
        public = {k: v for k, v in jwk.items() if k != "d"}  # never hold private material, even if given
        try:
            keys[jwk["kid"]] = jwt.PyJWK(public, algorithm=ALGORITHM).key
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
    return keys


class JwksFileKeys:
    """A local JWK set file (the local stack's); re-read when it changes, so a new key pair needs no restart."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._mtime = -1.0
        self._keys: dict[str, Any] = {}
        self._load()
        if not self._keys:
            raise KeysUnavailable(f"{self._path} holds no ES256 (EC P-256) key")

    def _load(self) -> None:
        try:
            mtime = os.stat(self._path).st_mtime
            if mtime != self._mtime:
                with open(self._path, encoding="utf-8") as f:
                    self._keys, self._mtime = keys_from_jwks(json.load(f)), mtime
        except (OSError, ValueError) as exc:
            if not self._keys:
                raise KeysUnavailable(f"cannot read the JWK set {self._path}: {exc}") from None

    def peek(self, kid: str) -> Any | None:
        """The key for kid as currently loaded, without touching the file (for the verified-assertion cache)."""
        return self._keys.get(kid)

    def get(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is None:
            with self._lock:
                self._load()
                key = self._keys.get(kid)
        return key


class RemoteJwksKeys:
    """Google's published IAP keys: fetched on first use, again for an unknown kid or when old, rate-limited."""

    def __init__(self, url: str, *, http: Any = None, min_refresh_s: float = 30.0, max_age_s: float = 3600.0,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        import httpx

        self._url, self._min_refresh_s, self._max_age_s, self._clock = url, min_refresh_s, max_age_s, clock
        self._http = http or httpx.Client(timeout=timeout_s)
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}  # replaced whole on refresh, so reading it needs no lock
        self._fetched_at: float | None = None  # last attempt, successful or not

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age_s

    def peek(self, kid: str) -> Any | None:
        """The key for kid when known and fresh, else None; never fetches (for the verified-assertion cache)."""
        key = self._keys.get(kid)
        return key if key is not None and not self._stale() else None

    def get(self, kid: str) -> Any | None:
        key = self._keys.get(kid)
        if key is not None and not self._stale():
            return key
        with self._lock:
            key = self._keys.get(kid)
            # Unknown kids are attacker-controlled: at most one fetch per min_refresh_s, whatever they send.
            recent = self._fetched_at is not None and self._clock() - self._fetched_at < self._min_refresh_s
            if (key is None or self._stale()) and not recent:
                self._refresh()
            if not self._keys:
                raise KeysUnavailable(f"no IAP signing keys could be fetched from {self._url}")
            return self._keys.get(kid)

    def _refresh(self) -> None:
        self._fetched_at = self._clock()
        try:
            response = self._http.get(self._url)
            response.raise_for_status()
            keys = keys_from_jwks(response.json())
        except Exception:  # keep serving with the keys we had; the next unknown kid retries
            return
        if keys:
            self._keys = keys

    def close(self) -> None:
        self._http.close()


class VerifiedAssertions:
    """Assertions that passed every check, so a repeated one skips the ES256 verification (the hot path's main cost).

    Keyed by a SHA-256 of the exact token string plus the audience (the token itself is never kept), each entry
    lives until min(exp, verified + max_age_s) — exp is enforced at lookup, without the leeway, so a cached
    assertion never outlives what a full check would accept. An entry also remembers the key object that
    verified it and counts only while the key source still holds that very object for its kid: a re-read or
    refreshed key set (rotation) sends the next request through the full check. Failures are never cached.
    Bounded: past max_entries the least recently used go, and each entry is a 32-byte digest, an e-mail of at most
    320 characters and a subject of at most 255, so 4,096 entries hold under 5 MB; expired entries are swept out
    on a store at most once a second. Lookups never do I/O (they use the source's `peek`; a source without one is
    never served from here)."""

    def __init__(self, max_entries: int = 4096, max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._max_entries, self._max_age_s, self._clock = max_entries, max_age_s, clock
        self.clock = clock  # wall-clock seconds; the full check takes the same one (verify_assertion's now)
        self._entries: OrderedDict[bytes, tuple[float, str, Any, Identity]] = OrderedDict()
        self._next_sweep = float("-inf")
        self._lock = threading.Lock()  # lookups run on the event loop, stores in worker threads
        self.hits = self.misses = 0

    @staticmethod
    def _key(token: str, audience: str) -> bytes:
        return hashlib.sha256(f"{audience}\n{token}".encode()).digest()

    def lookup(self, token: str | None, keys: KeySource, audience: str) -> Identity | None:
        """The identity of an assertion verified before and still good, else None (then do the full check)."""
        peek = getattr(keys, "peek", None)
        if not token or peek is None:
            return None
        digest = self._key(token, audience)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                until, kid, key, identity = entry
                if self._clock() < until and peek(kid) is key:
                    self._entries.move_to_end(digest)
                    self.hits += 1
                    return identity
                del self._entries[digest]
            self.misses += 1
        return None

    def store(self, token: str, audience: str, kid: str, key: Any, exp: float, identity: Identity) -> None:
        until = min(exp, self._clock() + self._max_age_s)
        if until <= self._clock() or self._max_entries <= 0:
            return
        digest = self._key(token, audience)
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._next_sweep = now + 1.0
                for stale in [d for d, entry in self._entries.items() if now >= entry[0]]:
                    del self._entries[stale]
            self._entries[digest] = (until, kid, key, identity)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def verify_assertion(token: str | None, keys: KeySource, audience: str,
                     cache: VerifiedAssertions | None = None, *, now: Callable[[], float] = time.time) -> Identity:
    """The identity in a valid IAP assertion; raises Unauthenticated naming the first failed check.

    With a cache, a valid assertion is remembered (see VerifiedAssertions); the full check always runs here.
    `now` is the wall clock exp, iat and nbf are checked against (PyJWT's own check reads the system clock, which
    no test can move), with PyJWT's comparisons and LEEWAY_S."""
    if not token:
        raise Unauthenticated(f"missing {HEADER} header")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthenticated("malformed assertion") from None
    # Checked before any key is touched: "none", HS256 with the public key as secret and others never get further.
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated(f"algorithm {cut(str(header.get('alg')), 20)!r} is not allowed; only {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("assertion has no key id (kid)")
    key = keys.get(kid)
    if key is None:
        raise Unauthenticated("unknown key id (kid)")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
                            options={"require": ["exp", "iat", "iss", "aud"], "verify_exp": False,
                                     "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidAudienceError:
        raise Unauthenticated("wrong audience") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated("wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"missing claim: {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("bad signature") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid assertion ({type(exc).__name__})") from None
    # PyJWT compares int(exp): a numeric string passes, and float() of a 400-digit integer overflows later.
    # IAP writes plain JSON numbers of seconds; anything else, or a time past year 5000, is not an assertion.
    for claim in ("exp", "iat", "nbf"):
        value = claims.get(claim)
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)
                                or not -MAX_CLAIM_TIME <= value <= MAX_CLAIM_TIME):
            raise Unauthenticated(f"invalid {claim} claim (not a number of seconds)")
    moment = now()
    if int(claims["exp"]) <= moment - LEEWAY_S:
        raise Unauthenticated("assertion expired")
    if any(claim in claims and int(claims[claim]) > moment + LEEWAY_S for claim in ("iat", "nbf")):
        raise Unauthenticated("assertion not yet valid")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        raise Unauthenticated("assertion has no email claim")
    subject = claims.get("sub")
    # Kept in the verified-assertion cache: bounded like the e-mail, so each entry stays under about 1 KB.
    subject = subject if isinstance(subject, str) and len(subject) <= MAX_SUBJECT_CHARS else None
    identity = Identity(email=email, subject=subject)
    if cache is not None:
        cache.store(token, audience, kid, key, float(claims["exp"]), identity)
    return identity
