"""A local OpenID Connect provider for the tests (joserfc, authlib's JOSE, for its keys and
tokens): the
discovery document, an authorization endpoint that approves at once (the person is
`claims`), a token endpoint that checks the client and the code and returns a signed
(RS256) id_token, and its keys. Enough for Streamlit's `st.login`, nothing more."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from fraud_pipeline.net import free_port


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    claims: dict[str, Any]
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens_issued: int = 0

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": "test", "alg": "RS256", "use": "sig"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        payload = {
            **self.claims,
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
        }
        header = {"alg": "RS256", "kid": "test"}
        return jwt.encode(header, payload, self.key)


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                return self._json(200, provider.metadata())
            if url.path == "/jwks":
                return self._json(200, provider.jwks())
            if url.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if query.get("client_id") != provider.client_id:
                    return self._json(400, {"error": "unauthorized_client"})
                code = secrets.token_urlsafe(16)
                provider.codes[code] = query
                back = {"code": code, "state": query.get("state", "")}
                self.send_response(302)
                self.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
                self.end_headers()
                return None
            return self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            else:
                user, password = form.get("client_id", ""), form.get("client_secret", "")
            if (user, password) != (provider.client_id, provider.client_secret):
                return self._json(401, {"error": "invalid_client"})
            asked = provider.codes.pop(form.get("code", ""), None)
            if asked is None or asked.get("redirect_uri") != form.get("redirect_uri"):
                return self._json(400, {"error": "invalid_grant"})
            provider.tokens_issued += 1
            return self._json(
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": provider.id_token(asked.get("nonce", "")),
                },
            )

    return Handler


@contextmanager
def oidc_provider(claims: dict[str, Any]) -> Iterator[Provider]:
    """The provider on a free loopback port until the block ends."""
    port = free_port()
    provider = Provider(
        f"http://127.0.0.1:{port}", "fraud-report", secrets.token_urlsafe(16), claims
    )
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(provider))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
