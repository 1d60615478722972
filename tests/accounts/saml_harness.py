"""A real SAML 2.0 identity provider for the tests: pysaml2's own IdP (saml2.server.Server) with a key
and certificate made for the run, signing with xmlsec1 as a production IdP on pysaml2 does.

It reads Tessera's AuthnRequest as an IdP does (HTTP-Redirect binding, from the URL Tessera redirects
to) and answers with a signed assertion for a person of its directory, to be POSTed to the ACS the
request names. A small HTTP server publishes its metadata (for "metadata URL" in the console) and
answers the browser at its SSO URL with the usual auto-posting form (tests/browser).

Knobs make the answers a hostile network or a broken IdP would send: unsigned, signed by another key,
for another audience or recipient, expired, answering another request. What the model leaves out:
the IdP's log-in page (the person is taken as signed in), TLS, encrypted assertions, and single
log-out.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.sigver import get_xmlsec_binary


def key_and_certificate(folder: Path, name: str) -> tuple[str, str]:
    """A 2048-bit RSA key and a self-signed certificate for it, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test IdP {name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = folder / f"{name}.key", folder / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


@dataclass(frozen=True)
class Answer:
    """A SAMLResponse to post to `acs_url` (the HTTP-POST binding's form fields)."""

    acs_url: str
    saml_response: str
    relay_state: str
    request_id: str

    def post_to(self, client, *, same_site: bool = False):
        """POST it to Tessera's ACS with the Django test client (the browser's auto-posted form);
        `same_site`: as re-posted by Tessera's own page (the session cookie was withheld)."""
        path = urlsplit(self.acs_url).path
        fields = {"SAMLResponse": self.saml_response, "RelayState": self.relay_state}
        return client.post(path, {**fields, "tessera_same_site": "1"} if same_site else fields)


class SAMLIdentityProvider:
    def __init__(self, name: str, folder: Path, *, entity_id: str | None = None, people: dict | None = None):
        self.name = name
        self.people: dict[str, dict] = dict(people or {})
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self.entity_id = entity_id or f"{self.base_url}/idp"
        self.sso_url = f"{self.base_url}/sso"
        self.metadata_url = f"{self.base_url}/metadata"
        self.key_file, self.cert_file = key_and_certificate(folder, f"idp-{name}")
        self._folder = folder
        self._sp_metadata: list[str] = []
        self.server = self._server()
        self.logged_in: str = ""  # the person the browser is signed in as (tests/browser)
        threading.Thread(target=self._http.serve_forever, daemon=True, name=f"saml-idp-{name}").start()

    def _server(self, *, key: tuple[str, str] | None = None, lifetime_minutes: float = 5) -> Server:
        key_file, cert_file = key or (self.key_file, self.cert_file)
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": get_xmlsec_binary(["/usr/bin", "/usr/local/bin"]),
                "key_file": key_file,
                "cert_file": cert_file,
                "service": {
                    "idp": {
                        "name": f"Test IdP {self.name}",
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.sso_url, BINDING_HTTP_REDIRECT),
                                (self.sso_url, BINDING_HTTP_POST),
                            ]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "want_authn_requests_signed": False,
                        "policy": {
                            "default": {"lifetime": {"minutes": lifetime_minutes}, "name_form": NAME_FORMAT_URI}
                        },
                    }
                },
                **({"metadata": {"inline": self._sp_metadata}} if self._sp_metadata else {}),
            }
        )
        return Server(config=config)

    def metadata_xml(self) -> str:
        config = self.server.config
        return str(entity_descriptor(config))

    def trust_sp(self, sp_metadata: str) -> None:
        """Register a service provider (its metadata, as the IdP's Admin would upload it)."""
        if sp_metadata not in self._sp_metadata:
            self._sp_metadata.append(sp_metadata)
            self.server = self._server()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # --- answering a request ------------------------------------------------------------------

    def read_request(self, location: str):
        """The AuthnRequest in the URL Tessera redirected the browser to."""
        query = parse_qs(urlsplit(location).query)
        return self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message

    def answer(
        self,
        location: str,
        login: str,
        *,
        sign_assertion: bool = True,
        sign_response: bool = False,
        audience: str | None = None,
        acs_url: str | None = None,
        in_response_to: str | None = None,
        lifetime_minutes: float | None = None,
        forged_key: bool = False,
    ) -> Answer:
        """The IdP's answer to the request in `location`, for the person `login` of its directory."""
        request = self.read_request(location)
        person = self.people[login]
        sp_entity_id = audience or request.issuer.text
        acs = acs_url or request.assertion_consumer_service_url
        server = self.server
        if forged_key or lifetime_minutes is not None:
            key = key_and_certificate(self._folder, f"forger-{self.name}") if forged_key else None
            server = self._server(key=key, lifetime_minutes=5 if lifetime_minutes is None else lifetime_minutes)
        response = server.create_authn_response(
            identity={k: v if isinstance(v, list) else [v] for k, v in person.items()},
            in_response_to=in_response_to or request.id,
            destination=acs,
            sp_entity_id=sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=login),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
            sign_assertion=sign_assertion,
            sign_response=sign_response,
        )
        binding = server.apply_binding(BINDING_HTTP_POST, str(response), acs, relay_state="", response=True)
        fields = _form_fields(binding["data"])
        return Answer(
            acs_url=acs,
            saml_response=fields["SAMLResponse"],
            relay_state=fields.get("RelayState", ""),
            request_id=request.id,
        )


def _form_fields(page: str) -> dict[str, str]:
    """The hidden inputs of pysaml2's auto-posting form."""
    return {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def _handler_for(idp: SAMLIdentityProvider):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path = urlsplit(self.path).path
            if path == "/metadata":
                body, kind = idp.metadata_xml().encode(), "application/samlmetadata+xml"
            elif path == "/sso" and idp.logged_in:
                answer = idp.answer(self.path, idp.logged_in)
                body = (
                    f'<!doctype html><html><body><form method="post" action="{answer.acs_url}" id="f">'
                    f'<input type="hidden" name="SAMLResponse" value="{answer.saml_response}">'
                    '<button type="submit" data-testid="idp-continue">Continue</button></form></body></html>'
                ).encode()
                kind = "text/html"
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
