"""SAML 2.0 per workspace, on pysaml2: the workspace is a service provider (SP) of its own, with its own
entity ID and assertion consumer service (ACS) on its own host, trusting only the identity provider
whose metadata its Admin gave (accounts.models.SSOConfig).

pysaml2 checks the XML signature (xmlsec1), the times (NotBefore, NotOnOrAfter), the audience and the
InResponseTo of a request it has outstanding. On top of it, because some of those checks are lax in
the library when a field is absent: the assertion must be signed by a certificate of the IdP's
metadata (a signed response around an unsigned assertion is not enough), its issuer must be the IdP,
its audience must name this workspace's SP, its bearer confirmation must name this workspace's ACS as
recipient with a NotOnOrAfter, it must answer a request this browser session started (no unsolicited
log-ins), and an assertion ID is accepted once (SAMLAssertionSeen). Every refusal has a reason shown
to the person and kept in the audit log; who the assertion logs in is decided by accounts.identity,
shared with OpenID Connect.

pysaml2 (with xmlschema) is ~26 MB resident, so the console and log-in views load this module with
the first SAML request (accounts.saml_views), not with every process (the desktop's memory budget).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SAMLError, samlp
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.response import (
    IncorrectlySigned,
    StatusError,
    UnsolicitedResponse,
    VerificationError,
)
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_UNSPECIFIED
from saml2.sigver import SignatureError, SigverError, get_xmlsec_binary
from saml2.validate import ResponseLifetimeExceed, ToEarly

from accounts.identity import IdPAssertion, SSOLoginRefused
from accounts.models import SAMLAssertionSeen, SSOConfig
from core import ssrf

logger = logging.getLogger(__name__)

METADATA_MAX_BYTES = 1_000_000
RESPONSE_MAX_BYTES = 2_000_000  # a base64 SAMLResponse; real ones are a few kB
HTTP_TIMEOUT = 10.0
CLOCK_SKEW = 60  # seconds of difference with the IdP's clock that are tolerated
OUTSTANDING_MAX = 5  # log-ins a browser session may have started and not finished
_CLIENTS_MAX = 256


class SAMLConfigError(Exception):
    """The IdP metadata (or this machine) cannot serve SAML log-ins; `reason` says why to the Admin."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IdPMetadata:
    """What the console shows of the IdP's metadata after "Test connection"."""

    entity_id: str
    sso_url: str
    signing_certificates: int


@dataclass(frozen=True)
class SPEndpoints:
    """What the Admin registers at the IdP for this workspace."""

    entity_id: str
    acs_url: str
    metadata_url: str


def sp_endpoints(request) -> SPEndpoints:
    metadata_url = request.build_absolute_uri(reverse("accounts:saml_metadata"))
    acs_url = request.build_absolute_uri(reverse("accounts:saml_acs"))
    return SPEndpoints(entity_id=metadata_url, acs_url=acs_url, metadata_url=metadata_url)


def _xmlsec() -> str:
    try:
        return get_xmlsec_binary(["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"])
    except SigverError as exc:
        raise SAMLConfigError(
            "SAML needs the xmlsec1 program on the server (Debian package xmlsec1), and it was not found."
        ) from exc


def _sp_config(endpoints: SPEndpoints, metadata_xml: str, *, name: str = "Tessera") -> SPConfig:
    conf = {
        "entityid": endpoints.entity_id,
        "xmlsec_binary": _xmlsec(),
        "allow_unknown_attributes": True,
        "accepted_time_diff": CLOCK_SKEW,
        "service": {
            "sp": {
                "name": name,
                "endpoints": {"assertion_consumer_service": [(endpoints.acs_url, BINDING_HTTP_POST)]},
                "allow_unsolicited": False,
                "authn_requests_signed": False,
                "want_assertions_signed": True,
                "want_response_signed": False,
                "name_id_format": [NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_UNSPECIFIED],
                "name_id_format_allow_create": True,
            }
        },
    }
    if metadata_xml:
        conf["metadata"] = {"inline": [metadata_xml]}
    config = SPConfig()
    try:
        config.load(conf)
    except SAMLConfigError:
        raise
    except Exception as exc:  # pysaml2's metadata parser raises many kinds; any means unusable
        raise SAMLConfigError(f"The IdP metadata could not be read as SAML metadata ({_short(exc)}).") from exc
    return config


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:160]


def _idp_of(config: SPConfig) -> IdPMetadata:
    store = config.metadata
    idps = list(store.identity_providers()) if store is not None else []
    if len(idps) != 1:
        raise SAMLConfigError(
            f"The metadata must describe exactly one identity provider (an IDPSSODescriptor); it describes {len(idps)}."
        )
    entity_id = idps[0]
    sso = store.single_sign_on_service(entity_id, BINDING_HTTP_REDIRECT) or store.single_sign_on_service(
        entity_id, BINDING_HTTP_POST
    )
    if not sso:
        raise SAMLConfigError("The IdP metadata has no SingleSignOnService for HTTP-Redirect or HTTP-POST.")
    certs = store.certs(entity_id, "idpsso", "signing")
    if not certs:
        raise SAMLConfigError("The IdP metadata has no signing certificate: Tessera accepts signed assertions only.")
    return IdPMetadata(entity_id=entity_id, sso_url=sso[0]["location"], signing_certificates=len(certs))


def saml_metadata_read(xml: str) -> IdPMetadata:
    """Check an IdP metadata document as the Admin pasted or fetched it; SAMLConfigError says why not."""
    xml = (xml or "").strip()
    if not xml:
        raise SAMLConfigError("Paste the IdP's metadata XML or enter its metadata URL.")
    if len(xml.encode()) > METADATA_MAX_BYTES:
        raise SAMLConfigError("The IdP metadata is over 1 MB; give the metadata of this one IdP.")
    placeholder = SPEndpoints("https://sp.invalid/metadata", "https://sp.invalid/acs", "https://sp.invalid/metadata")
    return _idp_of(_sp_config(placeholder, xml))


def saml_metadata_fetch(url: str) -> str:
    """The IdP's metadata from its URL, through the SSRF guard (public addresses only, unless allowed)."""
    try:
        fetched = ssrf.url_get(url, timeout=HTTP_TIMEOUT, max_bytes=METADATA_MAX_BYTES, accept="application/xml")
    except ssrf.AddressRefused as exc:
        raise SAMLConfigError(f"The metadata URL is not allowed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SAMLConfigError(f"{url} could not be reached ({_short(exc)}).") from exc
    if fetched.status != 200:
        raise SAMLConfigError(f"{url} answered HTTP {fetched.status}, not the IdP's metadata.")
    try:
        return fetched.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SAMLConfigError(f"{url} did not answer UTF-8 XML.") from exc


def sp_metadata_xml(request, config: SSOConfig) -> str:
    """This workspace's SP metadata (entity ID, ACS, signed assertions wanted), for the IdP's Admin."""
    endpoints = sp_endpoints(request)
    return str(entity_descriptor(_sp_config(endpoints, "", name=config.label)))


# --- the per-workspace client, cached -------------------------------------------------------------

_clients: dict[tuple, tuple[Saml2Client, IdPMetadata]] = {}
_clients_lock = threading.Lock()


def _client(request, config: SSOConfig) -> tuple[Saml2Client, IdPMetadata, SPEndpoints]:
    """pysaml2's client for this workspace's host and IdP metadata (parsed once per process and
    metadata version: parsing costs tens of milliseconds)."""
    endpoints = sp_endpoints(request)
    key = (endpoints.entity_id, endpoints.acs_url, hashlib.sha256(config.saml_metadata_xml.encode()).hexdigest())
    cached = _clients.get(key)
    if cached is None:
        sp_config = _sp_config(endpoints, config.saml_metadata_xml, name=config.label)
        cached = (Saml2Client(config=sp_config), _idp_of(sp_config))
        with _clients_lock:
            if len(_clients) >= _CLIENTS_MAX:
                _clients.clear()
            _clients[key] = cached
    return cached[0], cached[1], endpoints


# --- log-in: the request and the answer -----------------------------------------------------------


def saml_login_start(request, config: SSOConfig, *, next_url: str) -> str:
    """The IdP URL (HTTP-Redirect binding) carrying a fresh AuthnRequest; its ID is kept in the session
    as outstanding, with where to go after."""
    try:
        client, idp, _ = _client(request, config)
        request_id, info = client.prepare_for_authenticate(entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT)
    except SAMLConfigError as exc:
        raise SSOLoginRefused(exc.reason, code="saml_config") from exc
    outstanding = dict(request.session.get("saml_requests") or {})
    while len(outstanding) >= OUTSTANDING_MAX:
        outstanding.pop(next(iter(outstanding)))
    outstanding[request_id] = next_url
    request.session["saml_requests"] = outstanding
    return dict(info["headers"])["Location"]


@dataclass(frozen=True)
class SAMLAnswer:
    assertion: IdPAssertion
    request_id: str
    next_url: str


_OTHER_DESTINATION = "The answer was not addressed to this workspace (it names another Destination)."
_REFUSALS: list[tuple[type[BaseException], str, str]] = [
    (ResponseLifetimeExceed, "expired", "The identity provider's assertion has expired (NotOnOrAfter has passed)."),
    (ToEarly, "not_yet_valid", "The identity provider's assertion is not valid yet (NotBefore): check the clocks."),
    (
        UnsolicitedResponse,
        "unsolicited",
        "This answer does not belong to a sign-in started here in this browser (InResponseTo), or it was "
        "already used. Start again.",
    ),
    (StatusError, "idp_error", "The identity provider did not sign you in"),
    (
        SignatureError,
        "bad_signature",
        "The assertion's signature does not match the identity provider's certificate.",
    ),
    (IncorrectlySigned, "bad_signature", "The assertion is not signed correctly."),
    (SigverError, "bad_signature", "The assertion's signature could not be verified."),
    (VerificationError, "wrong_recipient", "The assertion was not addressed to this workspace (recipient)."),
]


def _refusal(exc: BaseException) -> SSOLoginRefused:
    text = str(exc)
    if "Signature missing" in text or "not signed" in text.lower():
        return SSOLoginRefused("The assertion is not signed by the identity provider.", code="unsigned")
    for kind, code, message in _REFUSALS:
        if isinstance(exc, kind):
            if code == "idp_error":
                message = f"{message} ({_short(exc)})."
            return SSOLoginRefused(message, code=code)
    if "AudienceRestrictions" in text:
        return SSOLoginRefused(
            "The assertion was issued for another service provider (wrong audience), not this workspace.",
            code="wrong_audience",
        )
    if "Not destined for me" in text:
        return SSOLoginRefused(
            "The answer was not addressed to this workspace (another Destination).", code="wrong_recipient"
        )
    return SSOLoginRefused(
        f"The identity provider's answer is not a valid SAML response ({_short(exc)}).", code="invalid"
    )


def _conditions_refusal(saml_response: str, endpoints: SPEndpoints) -> SSOLoginRefused:
    """Which of an assertion's conditions failed: pysaml2 says only "Condition not OK". Read from the
    unverified XML only to word the refusal (it is refused whatever it says)."""
    now = timezone.now()
    skew = timedelta(seconds=CLOCK_SKEW)
    try:
        response = samlp.response_from_string(base64.b64decode(saml_response))
        conditions = [a.conditions for a in response.assertion if a.conditions is not None]
    except Exception:
        conditions = []
    for c in conditions:
        if c.not_on_or_after and _instant(c.not_on_or_after) + skew < now:
            return SSOLoginRefused(
                "The identity provider's assertion has expired (NotOnOrAfter has passed).", code="expired"
            )
        if c.not_before and _instant(c.not_before) - skew > now:
            return SSOLoginRefused(
                "The identity provider's assertion is not valid yet (NotBefore): check the clocks.",
                code="not_yet_valid",
            )
        audiences = [(a.text or "").strip() for r in c.audience_restriction for a in r.audience]
        if audiences and endpoints.entity_id not in audiences:
            return SSOLoginRefused(
                "The assertion was issued for another service provider (wrong audience), not this workspace.",
                code="wrong_audience",
            )
    return SSOLoginRefused("The assertion's conditions are not met.", code="conditions")


def saml_response_check(request, config: SSOConfig, saml_response: str) -> SAMLAnswer:
    """The verified assertion of a POSTed SAMLResponse, or SSOLoginRefused with the reason."""
    if not saml_response or len(saml_response) > RESPONSE_MAX_BYTES:
        raise SSOLoginRefused("The identity provider's answer is missing or too large.", code="bad_request")
    try:
        base64.b64decode(saml_response, validate=False)
    except ValueError as exc:
        raise SSOLoginRefused("The identity provider's answer is not base64.", code="bad_request") from exc
    try:
        client, idp, endpoints = _client(request, config)
    except SAMLConfigError as exc:
        raise SSOLoginRefused(exc.reason, code="saml_config") from exc
    outstanding = dict(request.session.get("saml_requests") or {})
    try:
        response = client.parse_authn_request_response(saml_response, BINDING_HTTP_POST, outstanding=outstanding)
    except (SAMLError, Exception) as exc:  # pysaml2 raises bare Exception for some checks
        logger.info("SAML response refused: %r", exc)
        if isinstance(exc, VerificationError) and "Condition not OK" in str(exc):
            raise _conditions_refusal(saml_response, endpoints) from exc
        raise _refusal(exc) from exc
    if response is None:
        raise SSOLoginRefused(
            "The identity provider's answer was not addressed to this workspace or does not answer its request.",
            code="invalid",
        )
    return _answer_checked(response, config=config, idp=idp, endpoints=endpoints, outstanding=outstanding)


def _answer_checked(
    response, *, config: SSOConfig, idp: IdPMetadata, endpoints: SPEndpoints, outstanding: dict
) -> SAMLAnswer:
    """The checks pysaml2 leaves to its caller or skips when a field is absent."""
    destination = response.response.destination
    if destination and destination != endpoints.acs_url:
        raise SSOLoginRefused(
            "The answer was not addressed to this workspace (another Destination).", code="wrong_recipient"
        )
    assertion = response.assertion
    if assertion is None or response.response.encrypted_assertion:
        raise SSOLoginRefused("The answer holds no assertion Tessera can read.", code="invalid")
    if not getattr(assertion, "signature", None):
        raise SSOLoginRefused("The assertion is not signed by the identity provider.", code="unsigned")
    issuer = (assertion.issuer.text or "").strip() if assertion.issuer is not None else ""
    if issuer != idp.entity_id or (response.issuer() and response.issuer() != idp.entity_id):
        raise SSOLoginRefused(
            "The assertion was issued by another identity provider than this workspace's.", code="wrong_issuer"
        )
    if response.in_response_to not in outstanding:
        raise SSOLoginRefused(
            "This answer does not belong to a sign-in started here in this browser (InResponseTo).",
            code="unsolicited",
        )
    conditions = assertion.conditions
    audiences = [
        (a.text or "").strip() for r in (conditions.audience_restriction if conditions else []) for a in r.audience
    ]
    if endpoints.entity_id not in audiences:
        raise SSOLoginRefused(
            "The assertion was issued for another service provider (wrong audience), not this workspace.",
            code="wrong_audience",
        )
    bearer = [
        sc.subject_confirmation_data
        for sc in (assertion.subject.subject_confirmation if assertion.subject else [])
        if sc.method == "urn:oasis:names:tc:SAML:2.0:cm:bearer" and sc.subject_confirmation_data is not None
    ]
    if not any(d.recipient == endpoints.acs_url and d.not_on_or_after for d in bearer):
        raise SSOLoginRefused("The assertion was not addressed to this workspace (recipient).", code="wrong_recipient")
    expires = max(_instant(d.not_on_or_after) for d in bearer if d.not_on_or_after)
    _assertion_use_once(assertion.id, issuer=issuer, expires=expires)
    return SAMLAnswer(
        assertion=_identity_of(response, config=config, issuer=issuer),
        request_id=response.in_response_to,
        next_url=outstanding.get(response.in_response_to) or "",
    )


def _instant(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SSOLoginRefused("The assertion's NotOnOrAfter is not a time.", code="invalid") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _assertion_use_once(assertion_id: str, *, issuer: str, expires: datetime) -> None:
    """Accept an assertion ID once: a copy posted again (by anyone, in any session) is refused."""
    if not assertion_id:
        raise SSOLoginRefused("The assertion has no ID.", code="invalid")
    now = timezone.now()
    SAMLAssertionSeen.objects.filter(expires_at__lt=now - timedelta(seconds=CLOCK_SKEW)).delete()
    try:
        with transaction.atomic():
            SAMLAssertionSeen.objects.create(
                assertion_id=assertion_id[:255],
                issuer=issuer[:500],
                expires_at=max(expires, now) + timedelta(seconds=CLOCK_SKEW),
            )
    except IntegrityError as exc:
        raise SSOLoginRefused(
            "This assertion was already used to sign in (a replay). Start again.", code="replayed"
        ) from exc


def _first(values, default: str = "") -> str:
    if isinstance(values, list | tuple):
        return str(values[0]) if values else default
    return str(values) if values is not None else default


def _identity_of(response, *, config: SSOConfig, issuer: str) -> IdPAssertion:
    """The person as the assertion states them. Attributes are read under the Admin's claim names
    (friendly or full SAML names); the e-mail defaults to the NameID when it is an e-mail address."""
    ava = {k.lower(): v for k, v in (response.ava or {}).items()}
    claim_email = (config.claim_email or "email").lower()
    claim_name = (config.claim_name or "name").lower()
    claim_groups = (config.claim_groups or "").lower()
    name_id = response.name_id
    subject = (name_id.text or "").strip() if name_id is not None else ""
    email = _first(ava.get(claim_email) or ava.get("mail") or ava.get("email"))
    if not email and name_id is not None and name_id.format == NAMEID_FORMAT_EMAILADDRESS:
        email = subject
    # A signed SAML assertion has no `email_verified`: the IdP is the organisation's directory, and
    # linking an existing member still needs the e-mail's domain on the Admin's list. An IdP that
    # does send the attribute (false) is believed.
    verified_attr = ava.get("email_verified")
    verified = True if verified_attr is None else _first(verified_attr).lower() == "true"
    groups = ava.get(claim_groups) if claim_groups else None
    return IdPAssertion(
        issuer=issuer,
        subject=subject,
        email=email,
        email_verified=verified,
        name=_first(ava.get(claim_name) or ava.get("displayname") or ava.get("cn")),
        groups=[str(g) for g in groups] if isinstance(groups, list | tuple) else None,
        protocol=SSOConfig.Protocol.SAML,
    )
