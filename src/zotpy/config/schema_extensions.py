"""Schemas for the ``extensions`` section.

A section that is present gets ``enable: true`` unless it says otherwise (zot's rule), except ``lint``,
which zot leaves off until enabled explicitly. Other defaults are left to each extension.
"""

from __future__ import annotations

import posixpath
from typing import Any

from marshmallow import ValidationError, validates_schema

from .base import ZotSchema
from .fields import URL, Bool, Duration, Int, KeyedMap, List, Path, Regex, Section, Str

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
EXCHANGE_ONLY_KEYS = ("audience", "subjectTokenType", "requestedTokenType")


class EnabledSchema(ZotSchema):
    """A section switched on by its presence."""

    enable = Bool(load_default=True)


class SbomSchema(EnabledSchema):
    format = Str(choices=("spdx-json", "cyclonedx"))


class TrivySchema(ZotSchema):
    dbRepository = Str(non_empty=True)
    javaDBRepository = Str(non_empty=True)
    vulnSeveritySources = List(Str())
    sbom = Section(SbomSchema)


class CVESchema(ZotSchema):
    updateInterval = Duration()
    trivy = Section(TrivySchema)


class SearchSchema(EnabledSchema):
    cve = Section(CVESchema)


class SyncTagsSchema(ZotSchema):
    regex = Regex()
    excludeRegex = Regex()
    semver = Bool()


class SyncContentSchema(ZotSchema):
    prefix = Str(required=True, non_empty=True)
    tags = Section(SyncTagsSchema)
    destination = Str()
    stripPrefix = Bool(load_default=False)


class OAuth2HelperSchema(ZotSchema):
    tokenURL = URL(required=True)
    assertionFile = Path()
    signingFile = Path()
    grantType = Str()
    clientID = Str()
    clientSecretFile = Path()
    scopes = List(Str())
    username = Str()
    audience = Str()
    subjectTokenType = URL(schemes=None)
    requestedTokenType = URL(schemes=None)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("assertionFile")) == bool(data.get("signingFile")):
            raise ValidationError(["needs exactly one of assertionFile and signingFile"])
        exchange_only = [key for key in EXCHANGE_ONLY_KEYS if data.get(key)]
        if data.get("grantType") == TOKEN_EXCHANGE_GRANT:
            if not data.get("audience"):
                raise ValidationError({"audience": [f"required when grantType is {TOKEN_EXCHANGE_GRANT}"]})
        elif exchange_only:
            message = f"only allowed when grantType is {TOKEN_EXCHANGE_GRANT}"
            raise ValidationError({exchange_only[0]: [message]})


class SyncRegistrySchema(ZotSchema):
    urls = List(URL(), required=True)
    onDemand = Bool(load_default=False)
    pollInterval = Duration()
    content = List(Section(SyncContentSchema))
    tlsVerify = Bool(load_default=True)
    certDir = Path()
    maxRetries = Int(minimum=0)
    retryDelay = Duration()
    maxRetryDelay = Duration()
    onlySigned = Bool()
    syncLegacyCosignTags = Bool(load_default=True)
    preserveDigest = Bool(load_default=False)
    manifestCheckInterval = Duration()
    syncTimeout = Duration()
    reqConcurrent = Int(minimum=0)
    reqPerSec = Int(minimum=0)
    disableHTTP2 = Bool()
    maxIdleConnsPerHost = Int(minimum=0)
    credentialHelper = Str(choices=("ecr", "gcp", "oauth2"))
    oauth2CredentialHelper = Section(OAuth2HelperSchema)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if not data["urls"]:
            errors["urls"] = ["needs at least one URL"]
        if data.get("maxRetries") and "retryDelay" not in data:
            errors["retryDelay"] = ["required when maxRetries is set"]
        if "maxRetryDelay" in data and data["maxRetryDelay"] < data.get("retryDelay", 0.0):
            errors["maxRetryDelay"] = ["must not be smaller than retryDelay"]
        helper = data.get("credentialHelper")
        if helper == "oauth2" and "oauth2CredentialHelper" not in data:
            errors["oauth2CredentialHelper"] = ["required when credentialHelper is oauth2"]
        if helper != "oauth2" and "oauth2CredentialHelper" in data:
            errors["oauth2CredentialHelper"] = ["only used when credentialHelper is oauth2"]
        if errors:
            raise ValidationError(errors)


class SyncSchema(EnabledSchema):
    credentialsFile = Path()
    downloadDir = Path()
    registries = List(Section(SyncRegistrySchema))


def _check_metrics_path(path: str) -> None:
    if not path.startswith("/") or posixpath.normpath(path) != path or path in ("/", "/v2"):
        raise ValidationError(f"must be a clean absolute path other than '/' and '/v2', got {path!r}")


class PrometheusSchema(ZotSchema):
    path = Str(validate=_check_metrics_path)


class MetricsSchema(EnabledSchema):
    prometheus = Section(PrometheusSchema)


class ScrubSchema(EnabledSchema):
    interval = Duration()


class LintSchema(ZotSchema):
    enable = Bool(load_default=False)
    mandatoryAnnotations = List(Str(non_empty=True))


class TrustSchema(EnabledSchema):
    cosign = Bool(load_default=False)
    notation = Bool(load_default=False)


class EventCredentialsSchema(ZotSchema):
    username = Str()
    password = Str()
    file = Path()
    token = Str()


class EventTLSSchema(ZotSchema):
    caCertFile = Path()
    certFile = Path()
    keyFile = Path()


class EventSinkSchema(ZotSchema):
    type = Str(required=True, choices=("http", "nats"))
    address = Str(required=True, non_empty=True)
    channel = Str()
    timeout = Duration()
    proxy = Str()
    headers = KeyedMap(Str())
    credentials = Section(EventCredentialsSchema)
    tlsConfig = Section(EventTLSSchema)


class EventsSchema(EnabledSchema):
    sinks = List(Section(EventSinkSchema))
    source = Str()
    typePrefix = Str()


class ExtensionsSchema(ZotSchema):
    search = Section(SearchSchema)
    sync = Section(SyncSchema)
    metrics = Section(MetricsSchema)
    scrub = Section(ScrubSchema)
    lint = Section(LintSchema)
    ui = Section(EnabledSchema)
    mgmt = Section(EnabledSchema)
    apikey = Section(EnabledSchema)
    trust = Section(TrustSchema)
    events = Section(EventsSchema)

    @validates_schema
    def _ui_needs_search(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("ui", {}).get("enable") and not data.get("search", {}).get("enable"):
            raise ValidationError({"ui": ["the UI needs the search extension enabled"]})
