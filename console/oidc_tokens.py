"""Checking an OpenID Connect ID token, and who it names: no I/O (``console.oidc``).

>>> identity({"sub": "u-1", "preferred_username": "ana", "accesswatch_role": "analyst"},
...          "accesswatch_role")
('ana', 'analyst')
"""

from __future__ import annotations

import hmac
from typing import Any

import jwt

from console.auth import ROLES

ALGORITHMS = frozenset({"RS256", "ES256"})
LEEWAY_S = 60  # clock skew allowed between the provider and the console


class SignOnError(Exception):
    """A refused single sign-on: ``message`` for the user, ``reason`` for the log."""

    def __init__(self, message: str, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.message, self.reason, self.status = message, reason, status


def validate_id_token(token: str, keys: jwt.PyJWKSet, *, issuer: str, client_id: str,
                      nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature, iss, aud, exp and nonce hold.

    Raises ``SignOnError`` (the reason names the check, never the token).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise invalid("the ID token is not a JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise invalid(f"the ID token's algorithm {str(alg)[:16]!r} is not RS256 or ES256")
    key = signing_key(keys, kid, alg)
    if key is None:
        raise invalid("no key in the provider's JWKS matches the ID token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[alg], audience=client_id, issuer=issuer,
            leeway=LEEWAY_S, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
    except jwt.InvalidSignatureError:
        raise invalid("the ID token's signature does not verify") from None
    except jwt.ExpiredSignatureError:
        raise invalid("the ID token has expired") from None
    except jwt.InvalidAudienceError:
        raise invalid("the ID token is for another client (aud)") from None
    except jwt.InvalidIssuerError:
        raise invalid("the ID token is from another issuer (iss)") from None
    except (jwt.PyJWTError, ValueError, TypeError) as e:
        raise invalid(f"the ID token is invalid: {type(e).__name__}") from None
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise invalid("the ID token has several audiences and another authorized party")
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise invalid("the ID token's nonce does not match this sign-in")
    return claims


def identity(claims: dict[str, Any], role_claim: str) -> tuple[str, str]:
    """(user name, role) from validated claims; a missing or unknown role is refused."""
    username = claims.get("preferred_username") or claims.get("sub")
    if not isinstance(username, str) or not username:
        raise invalid("the ID token names no user (preferred_username, sub)")
    role = claims.get(role_claim)
    if not isinstance(role, str) or role not in ROLES:
        raise SignOnError(
            f"Your single sign-on account has no console role: its {role_claim} claim must "
            f"be {', '.join(ROLES)}. Ask your administrator.",
            f"no console role in claim {role_claim}", 403)
    return username, role


def signing_key(keys: jwt.PyJWKSet, kid: str | None, alg: str | None) -> jwt.PyJWK | None:
    """The signing key the token names; with no ``kid``, the only key for its algorithm."""
    usable = [k for k in keys.keys if k.public_key_use in (None, "sig")]
    if kid is not None:
        usable = [k for k in usable if k.key_id == kid]
    if alg is not None:
        usable = [k for k in usable if getattr(k, "algorithm_name", None) == alg]
    return usable[0] if len(usable) == 1 or (kid is not None and usable) else None


def key_id(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def invalid(reason: str) -> SignOnError:
    return SignOnError("Single sign-on failed: the identity provider's answer could not be "
                       "verified. Please try again or ask your administrator.", reason)
