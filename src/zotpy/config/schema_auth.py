"""Schemas for ``http.auth`` and ``http.accessControl`` (shape only; enforcement lives in zotpy.auth)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, post_load, validates_schema

from .base import ZotSchema
from .fields import URL, Bool, Duration, FreeMap, Int, KeyedMap, List, Path, Regex, Section, Str

ACTIONS = ("read", "create", "update", "delete", "detectManifestCollision")
OPENID_PROVIDERS = ("google", "gitlab", "oidc")
OAUTH2_PROVIDERS = ("github",)
MTLS_IDENTITY_ATTRIBUTES = (
    "CommonName", "CN", "Subject", "DN", "Email", "rfc822name", "URI", "URL", "DNSName", "DNS",
)


def _actions() -> List:
    return List(Str(choices=ACTIONS))


class HtpasswdSchema(ZotSchema):
    path = Path(required=True, non_empty=True)


class LDAPSchema(ZotSchema):
    address = Str(required=True, non_empty=True)
    port = Int(minimum=0, maximum=65535)
    insecure = Bool()
    startTLS = Bool()
    skipVerify = Bool()
    caCert = Path()
    baseDN = Str(required=True, non_empty=True)
    userAttribute = Str(required=True, non_empty=True)
    userGroupAttribute = Str()
    userFilter = Str()
    subtreeSearch = Bool()
    credentialsFile = Path()


class AWSSecretsManagerSchema(ZotSchema):
    region = Str(required=True, non_empty=True)
    secretName = Str(required=True, non_empty=True)
    refreshInterval = Duration()


class CELVariableSchema(ZotSchema):
    name = Str(required=True, non_empty=True)
    expression = Str(required=True, non_empty=True)


class CELRuleSchema(ZotSchema):
    """A CEL expression with the message shown when it is false (conditions, validations)."""

    expression = Str(required=True, non_empty=True)
    message = Str()


class WorkloadClaimMappingSchema(ZotSchema):
    variables = List(Section(CELVariableSchema))
    validations = List(Section(CELRuleSchema))
    username = Str()
    groups = Str()


class BearerOIDCSchema(ZotSchema):
    issuer = URL(required=True)
    audiences = List(Str())
    claimMapping = Section(WorkloadClaimMappingSchema)
    certificateAuthority = Str()
    certificateAuthorityFile = Path()
    skipIssuerVerification = Bool()


class UpstreamTokenEndpointSchema(ZotSchema):
    realm = URL(required=True)
    service = Str()
    allowInsecureHttp = Bool(load_default=False)

    @validates_schema
    def _https_realm(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["realm"].startswith("http://") and not data["allowInsecureHttp"]:
            raise ValidationError({"realm": ["must be an https URL unless allowInsecureHttp is true"]})


class BearerSchema(ZotSchema):
    realm = Str()
    service = Str()
    cert = Path()
    awsSecretsManager = Section(AWSSecretsManagerSchema)
    oidc = List(Section(BearerOIDCSchema))
    upstreamTokenEndpoint = Section(UpstreamTokenEndpointSchema)

    @validates_schema
    def _one_key_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("cert") and "awsSecretsManager" in data:
            raise ValidationError({"awsSecretsManager": ["cannot be combined with cert; choose one"]})


class OpenIDClaimMappingSchema(ZotSchema):
    username = Str()
    groups = Str()


class OpenIDProviderSchema(ZotSchema):
    name = Str()
    issuer = Str()
    clientid = Str()
    clientsecret = Str()
    credentialsFile = Path()
    keypath = Path()
    authurl = URL()
    tokenurl = URL()
    scopes = List(Str())
    claimMapping = Section(OpenIDClaimMappingSchema)


def _check_provider_name(name: str) -> str | None:
    known = OPENID_PROVIDERS + OAUTH2_PROVIDERS
    if name.lower() not in known:
        return f"unknown provider {name!r}; expected one of {', '.join(known)}"
    return None


class OpenIDSchema(ZotSchema):
    providers = KeyedMap(Section(OpenIDProviderSchema), check_key=_check_provider_name, fold_case=True)
    callbackAllowOrigins = List(Str())

    @validates_schema
    def _complete_providers(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for name, provider in data.get("providers", {}).items():
            problems = []
            if not provider.get("clientid") and not provider.get("credentialsFile"):
                problems.append("needs clientid (or a credentialsFile holding it)")
            if name in OPENID_PROVIDERS and not provider.get("issuer"):
                problems.append("needs issuer")
            if not provider.get("scopes"):
                problems.append("needs scopes")
            if problems:
                errors[name] = ["; ".join(problems)]
        if errors:
            raise ValidationError({"providers": errors})


class MTLSSchema(ZotSchema):
    identityAttributes = List(Str())
    uriSanPattern = Regex()
    uriSanIndex = Int(minimum=0)
    dnsSanIndex = Int(minimum=0)
    emailSanIndex = Int(minimum=0)

    @validates_schema
    def _known_attributes(self, data: dict[str, Any], **kwargs: Any) -> None:
        known = {name.lower() for name in MTLS_IDENTITY_ATTRIBUTES}
        bad = [name for name in data.get("identityAttributes", []) if name.lower() not in known]
        if bad:
            raise ValidationError({"identityAttributes": [
                f"unknown attribute {bad[0]!r}; expected among {', '.join(MTLS_IDENTITY_ATTRIBUTES)}"
            ]})


class AuthSchema(ZotSchema):
    failDelay = Int(minimum=0)
    htpasswd = Section(HtpasswdSchema)
    ldap = Section(LDAPSchema)
    bearer = Section(BearerSchema)
    openid = Section(OpenIDSchema)
    apikey = Bool()
    sessionKeysFile = Path()
    sessionDriver = FreeMap(names=("local", "redis"))
    secureSession = Bool()
    mtls = Section(MTLSSchema)

    @validates_schema
    def _session_store(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("sessionDriver", {}).get("name") == "redis" and data.get("sessionKeysFile"):
            raise ValidationError({"sessionKeysFile": ["cannot be combined with a redis sessionDriver"]})

    @post_load
    def _openid_needs_api_keys(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # zot turns API keys on whenever OpenID login is configured.
        if data.get("openid", {}).get("providers"):
            data["apikey"] = True
        return data


class PolicySchema(ZotSchema):
    users = List(Str())
    groups = List(Str())
    actions = _actions()
    conditions = List(Section(CELRuleSchema))


class AdminPolicySchema(ZotSchema):
    users = List(Str())
    groups = List(Str())
    actions = _actions()


class RepositoryPoliciesSchema(ZotSchema):
    policies = List(Section(PolicySchema))
    defaultPolicy = _actions()
    anonymousPolicy = _actions()


class GroupSchema(ZotSchema):
    users = List(Str())


class MetricsAccessSchema(ZotSchema):
    users = List(Str())
    anonymousPolicy = _actions()


def _check_glob(pattern: str) -> str | None:
    return "repository pattern must not be empty" if not pattern.strip() else None


class AccessControlSchema(ZotSchema):
    groups = KeyedMap(Section(GroupSchema))
    repositories = KeyedMap(Section(RepositoryPoliciesSchema), check_key=_check_glob)
    adminPolicy = Section(AdminPolicySchema)
    metrics = Section(MetricsAccessSchema)
