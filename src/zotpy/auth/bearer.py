"""Docker-style bearer tokens (zot's ``http.auth.bearer``): JWTs from an external token service.

A token is trusted when its signature verifies with the public key of the configured certificate (or
one of the certificates in the bundle), it is within its validity window (``exp`` required, ``nbf`` and
``iat`` checked) and, when it names an audience, that audience includes the configured ``service``.
What it grants is only its ``access`` claim: ``[{"type": "repository", "name": ..., "actions": [...]}]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from zotpy.auth.identity import Identity
from zotpy.errors import ConfigError, Unauthenticated

CONFIG_KEY = "http.auth.bearer"
LEEWAY = 30  # seconds of clock skew tolerated between the token service and the registry
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


def _algorithms_for(key: PublicKey) -> tuple[str, ...]:
    """The JWS algorithms a key of this type may verify (never ``none``, never an HMAC)."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = EC_ALGORITHMS.get(key.curve.name)
        return (algorithm,) if algorithm else ()
    return ("EdDSA",)


def load_public_keys(path: str) -> list[PublicKey]:
    """The public keys in a PEM file of certificates (a bundle) or of a bare public key."""
    key_path = f"{CONFIG_KEY}.cert"
    try:
        with open(path, "rb") as fh:
            pem = fh.read()
    except OSError as exc:
        raise ConfigError(f"{key_path}: cannot read {path}: {exc.strerror}") from None
    keys: list[Any] = []
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            keys = [cert.public_key() for cert in x509.load_pem_x509_certificates(pem)]
        except ValueError as exc:
            raise ConfigError(f"{key_path}: {path} holds no valid PEM certificate: {exc}") from None
    else:
        try:
            keys = [load_pem_public_key(pem)]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{key_path}: {path} is neither a PEM certificate nor a public key: {exc}") \
                from None
    usable = [key for key in keys if isinstance(key, PublicKey) and _algorithms_for(key)]
    if not usable:
        raise ConfigError(f"{key_path}: {path} has no RSA, ECDSA (P-256/384/521) or EdDSA public key")
    return usable


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def repository_scope(name: str, actions: list[str] | tuple[str, ...]) -> str:
    """A Docker token scope, ``repository:<name>:<action,...>``."""
    return f"repository:{name}:{','.join(actions)}"


class BearerVerifier:
    """Verifies bearer tokens and builds the ``WWW-Authenticate`` challenge that points at the realm."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        if not settings.get("cert"):
            raise ConfigError(
                f"{CONFIG_KEY}.cert: required (awsSecretsManager and oidc are not supported by zotpy yet)"
            )
        self.realm: str = settings.get("realm") or ""
        self.service: str = settings.get("service") or ""
        self._keys = load_public_keys(settings["cert"])

    def challenge(self, scope: str | None = None) -> str:
        """The ``WWW-Authenticate`` value: ``Bearer realm="...",service="..."[,scope="..."]``."""
        parts = [f"realm={_quoted(self.realm)}", f"service={_quoted(self.service)}"]
        if scope:
            parts.append(f"scope={_quoted(scope)}")
        return "Bearer " + ",".join(parts)

    def verify(self, token: str) -> Identity:
        """The caller a valid token names, with what its ``access`` claim grants; else ``Unauthenticated``."""
        claims = self._decode(token)
        self._check_audience(claims)
        subject = claims.get("sub")
        return Identity(
            username=subject if isinstance(subject, str) else "",
            method="bearer",
            token_access=_token_access(claims.get("access")),
        )

    def _decode(self, token: str) -> dict[str, Any]:
        failure: jwt.PyJWTError | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=list(_algorithms_for(key)), leeway=LEEWAY,
                    options={"require": ["exp"], "verify_aud": False},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError) as exc:
                failure = exc  # maybe signed by another certificate of the bundle
                continue
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"invalid bearer token: {_reason(exc)}") from None
            if not isinstance(claims, dict):
                raise Unauthenticated("invalid bearer token: claims are not an object")
            return claims
        raise Unauthenticated(f"invalid bearer token: {_reason(failure)}")

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "aud" not in claims or not self.service:
            return
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or self.service not in audiences:
            raise Unauthenticated("invalid bearer token: issued for another service")


def _reason(exc: Exception | None) -> str:
    """A short, safe description of why a token was refused (no token content)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim!r}"
    if isinstance(exc, jwt.DecodeError):
        return "malformed"
    return "rejected"


def _token_access(access: Any) -> Mapping[str, frozenset[str]]:
    """Repository name -> granted actions, from Docker's ``access`` claim (other resource types ignored)."""
    if access is None:
        return MappingProxyType({})
    if not isinstance(access, list):
        raise Unauthenticated("invalid bearer token: access claim is not a list")
    granted: dict[str, set[str]] = {}
    for item in access:
        if not isinstance(item, dict):
            raise Unauthenticated("invalid bearer token: access entry is not an object")
        name, actions = item.get("name"), item.get("actions") or []
        if item.get("type") != "repository":
            continue
        if not isinstance(name, str) or not isinstance(actions, list) \
                or not all(isinstance(action, str) for action in actions):
            raise Unauthenticated("invalid bearer token: malformed repository access entry")
        granted.setdefault(name, set()).update(actions)
    return MappingProxyType({name: frozenset(actions) for name, actions in granted.items()})
