"""BearerVerifier with generated key pairs, and the token service fixture it trusts."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from helpers.token_service import Account, TokenService
from zotpy.auth.bearer import BearerVerifier, repository_scope
from zotpy.config.loader import load_mapping
from zotpy.config.runnable import check_runnable
from zotpy.errors import ConfigError, Unauthenticated

SERVICE = "zotpy-test"
ACCESS = [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]


def write_cert(directory: Path, key: Any, name: str = "cert.pem") -> Path:
    """A self-signed certificate for ``key``, as the token service would publish it."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token signer")])
    now = datetime.datetime.now(datetime.UTC)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, algorithm)
    )
    path = directory / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": "test", "sub": "alice", "aud": SERVICE, "iat": now, "nbf": now, "exp": now + 300,
            "access": ACCESS}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


KEYS = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "PS512": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def verifier(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> BearerVerifier:
    cert = write_cert(tmp_path, ec_key)
    return BearerVerifier({"realm": "https://auth.example/token", "service": SERVICE, "cert": str(cert)})


def sign(key: Any, payload: dict[str, Any], algorithm: str = "ES256", **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None)


@pytest.mark.parametrize("algorithm", sorted(KEYS))
def test_each_key_type_verifies(tmp_path: Path, algorithm: str) -> None:
    key = KEYS[algorithm]()
    verifier = BearerVerifier({"service": SERVICE, "cert": str(write_cert(tmp_path, key))})
    identity = verifier.verify(sign(key, claims(), algorithm))
    assert identity.username == "alice"
    assert identity.method == "bearer"
    assert identity.token_access == {"team/app": frozenset({"pull", "push"})}


def test_bare_public_key_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = tmp_path / "key.pub"
    pem.write_bytes(ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert BearerVerifier({"cert": str(pem)}).verify(sign(ec_key, claims())).username == "alice"


def test_certificate_bundle(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bundle = tmp_path / "bundle.pem"
    first, second = write_cert(tmp_path, other, "a.pem"), write_cert(tmp_path, ec_key, "b.pem")
    bundle.write_bytes(first.read_bytes() + second.read_bytes())
    verifier = BearerVerifier({"service": SERVICE, "cert": str(bundle)})
    assert verifier.verify(sign(ec_key, claims())).username == "alice"
    assert verifier.verify(sign(other, claims(), "RS256")).username == "alice"


def test_access_claim_is_merged_and_other_types_ignored(verifier: BearerVerifier,
                                                        ec_key: ec.EllipticCurvePrivateKey) -> None:
    access = [
        {"type": "repository", "name": "a", "actions": ["pull"]},
        {"type": "repository", "name": "a", "actions": ["push"]},
        {"type": "repository", "name": "b", "actions": []},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    identity = verifier.verify(sign(ec_key, claims(access=access)))
    assert identity.token_access == {"a": frozenset({"pull", "push"}), "b": frozenset()}
    assert verifier.verify(sign(ec_key, claims(access=None))).token_access == {}


@pytest.mark.parametrize("audience", [SERVICE, [SERVICE, "other"], None])
def test_audience_when_present_must_name_the_service(verifier: BearerVerifier,
                                                     ec_key: ec.EllipticCurvePrivateKey,
                                                     audience: Any) -> None:
    assert verifier.verify(sign(ec_key, claims(aud=audience))).username == "alice"


def refused(verifier: BearerVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason) as caught:
        verifier.verify(token)
    assert caught.value.http_status == 401
    assert caught.value.code == "UNAUTHORIZED"


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"exp": None}, "missing claim 'exp'"),
    ({"nbf": int(time.time()) + 3600}, "not valid yet"),
    ({"iat": int(time.time()) + 3600}, "not valid yet"),
    ({"aud": "another-service"}, "another service"),
    ({"aud": ["x", "y"]}, "another service"),
    ({"access": {"team/app": ["pull"]}}, "access claim"),
    ({"access": ["repository:team/app:pull"]}, "access entry"),
    ({"access": [{"type": "repository", "name": "x", "actions": "pull"}]}, "repository access"),
])
def test_bad_claims_are_refused(verifier: BearerVerifier, ec_key: ec.EllipticCurvePrivateKey,
                                overrides: dict[str, Any], reason: str) -> None:
    refused(verifier, sign(ec_key, claims(**overrides)), reason)


def test_wrong_signature_is_refused(verifier: BearerVerifier, ec_key: ec.EllipticCurvePrivateKey) -> None:
    refused(verifier, sign(ec.generate_private_key(ec.SECP256R1()), claims()), "bad signature")
    # A valid signature over other claims, spliced onto these claims.
    header, _, signature = sign(ec_key, claims(sub="bob")).split(".")
    body = base64.urlsafe_b64encode(json.dumps(claims(sub="root")).encode()).rstrip(b"=").decode()
    refused(verifier, f"{header}.{body}.{signature}", "bad signature")


def test_alg_none_is_refused(verifier: BearerVerifier) -> None:
    refused(verifier, jwt.encode(claims(), None, algorithm="none"), "algorithm not allowed")


def test_hmac_with_the_public_key_as_secret_is_refused(tmp_path: Path, verifier: BearerVerifier,
                                                      ec_key: ec.EllipticCurvePrivateKey) -> None:
    # The classic key-confusion attack: HS256 keyed with the (public) certificate bytes.
    secret = (tmp_path / "cert.pem").read_bytes()
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    mac = hmac.new(secret, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    refused(verifier, token, "algorithm not allowed")


def test_wrong_key_type_for_algorithm_is_refused(verifier: BearerVerifier) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused(verifier, sign(rsa_key, claims(), "RS256"), "algorithm not allowed")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9.e30.", "\xff"])
def test_malformed_tokens_are_refused(verifier: BearerVerifier, token: str) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


def test_challenge(verifier: BearerVerifier) -> None:
    assert verifier.challenge() == f'Bearer realm="https://auth.example/token",service="{SERVICE}"'
    assert verifier.challenge(repository_scope("team/app", ["pull", "push"])) == (
        f'Bearer realm="https://auth.example/token",service="{SERVICE}",scope="repository:team/app:pull,push"'
    )


def test_challenge_escapes_quotes(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    cert = write_cert(tmp_path, ec_key)
    verifier = BearerVerifier({"realm": 'a"b', "service": "s\\", "cert": str(cert)})
    assert verifier.challenge() == 'Bearer realm="a\\"b",service="s\\\\"'


@pytest.mark.parametrize("content", [None, b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nnope\n"])
def test_bad_cert_is_a_config_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "cert.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"http\.auth\.bearer\.cert"):
        BearerVerifier({"cert": str(path)})


def test_missing_cert_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"http\.auth\.bearer\.cert"):
        BearerVerifier({"realm": "https://auth.example/token", "service": SERVICE})


# -- the token service fixture, checked against the verifier ---------------------------------------

@pytest.fixture(scope="module")
def token_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    accounts = {"alice": Account("alice-pass", {"team/*": ["pull", "push"]}),
                "bob": Account("bob-pass", {"team/*": ["pull"]})}
    with TokenService(tmp_path_factory.mktemp("tokens"), accounts) as service:
        yield service


def fetch(service: TokenService, auth: tuple[str, str] | None, *scopes: str) -> requests.Response:
    return requests.get(service.realm, params={"service": service.service, "scope": list(scopes)},
                        auth=auth, timeout=10)


def test_token_service_grants_what_the_table_allows(token_service: TokenService) -> None:
    verifier = BearerVerifier(token_service.bearer_settings())
    resp = fetch(token_service, ("bob", "bob-pass"), "repository:team/app:pull,push", "repository:x:pull")
    assert resp.status_code == 200
    identity = verifier.verify(resp.json()["token"])
    assert identity.username == "bob"
    assert identity.token_access == {"team/app": frozenset({"pull"}), "x": frozenset()}
    alice = verifier.verify(fetch(token_service, ("alice", "alice-pass"), "repository:team/app:pull,push")
                            .json()["access_token"])
    assert alice.token_access == {"team/app": frozenset({"pull", "push"})}


def test_token_service_refuses_bad_credentials(token_service: TokenService) -> None:
    assert fetch(token_service, ("alice", "wrong"), "repository:team/app:pull").status_code == 401
    anonymous = fetch(token_service, None, "repository:team/app:pull")
    assert anonymous.status_code == 200
    token = anonymous.json()["token"]
    assert BearerVerifier(token_service.bearer_settings()).verify(token).token_access == {
        "team/app": frozenset()}


def bearer_config(tmp_path: Path, bearer: dict[str, Any]) -> Any:
    doc = {"storage": {"rootDirectory": str(tmp_path)}, "http": {"auth": {"bearer": bearer}}}
    return load_mapping(doc, base_dir=str(tmp_path))


@pytest.mark.parametrize(("bearer", "problem"), [
    ({"realm": "https://a/token", "service": "s"}, "http.auth.bearer.cert: required"),
    ({"realm": "https://a/token", "awsSecretsManager": {"region": "r", "secretName": "n"}},
     "http.auth.bearer.awsSecretsManager: not available"),
    ({"cert": "c.pem", "oidc": [{"issuer": "https://issuer.example"}]},
     "http.auth.bearer.oidc: not available"),
])
def test_unbuilt_bearer_key_sources_refuse_to_start(tmp_path: Path, bearer: dict[str, Any],
                                                    problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        check_runnable(bearer_config(tmp_path, bearer))


def test_bearer_with_cert_may_start(tmp_path: Path) -> None:
    check_runnable(bearer_config(tmp_path, {"realm": "https://a/token", "service": "s", "cert": "c.pem"}))
