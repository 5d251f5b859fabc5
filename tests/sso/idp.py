"""A small OpenID Connect provider for tests: a real HTTP server on loopback that signs RS256 ID tokens.

Discovery, JWKS, authorize (auto-approves the user set in `next_user`, redirects with a code), token (checks
the client's secret, the redirect URI and the PKCE verifier; echoes the nonce), userinfo. `attack` makes the
token endpoint misbehave the way a forger or a broken provider would.
"""

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

KID = "test-key-1"


def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestIdP:
    def __init__(self, *, client_id="tollgate-test", client_secret="idp-secret-0123456789"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = _rsa_key()
        self.other_key = _rsa_key()  # a forger's key, same kid
        self.next_user = {"sub": "u-1", "email": "ada@acme.test", "name": "Ada Lovelace", "email_verified": True}
        self.attack = None  # None | "forged" | "wrong_audience" | "expired" | "wrong_nonce" | "wrong_issuer"
        self.codes = {}  # code -> what the authorize request carried
        self.tokens = {}  # access token -> user
        self.token_requests = []  # what the token endpoint was sent (for assertions)
        self.authorize_requests = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    # --- what the endpoints answer ---------------------------------------------------------------

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer + ("/elsewhere" if self.attack == "wrong_issuer" else ""),
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def id_token(self, user: dict, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": user["sub"], "aud": self.client_id, "iat": now, "exp": now + 300,
            "nonce": nonce, "email": user["email"], "email_verified": user.get("email_verified", True),
        }
        key = self.key
        if self.attack == "forged":
            key = self.other_key
        elif self.attack == "wrong_audience":
            claims["aud"] = "some-other-client"
        elif self.attack == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.attack == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})

    def _handler(idp):  # noqa: N805 - the handler closes over the IdP
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    return self._json(200, idp.discovery())
                if url.path == "/jwks":
                    return self._json(200, idp.jwks())
                if url.path == "/authorize":
                    idp.authorize_requests.append(query)
                    if query.get("client_id") != idp.client_id or query.get("response_type") != "code":
                        return self._json(400, {"error": "invalid_request"})
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = {**query, "user": dict(idp.next_user)}
                    target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    user = idp.tokens.get(token)
                    if user is None:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, {k: user[k] for k in ("sub", "email", "name", "email_verified") if k in user})
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if url.path != "/token":
                    return self._json(404, {"error": "not_found"})
                idp.token_requests.append(form)
                client_id, secret = form.get("client_id"), form.get("client_secret")
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                if client_id != idp.client_id or secret != idp.client_secret:
                    return self._json(401, {"error": "invalid_client"})
                grant = idp.codes.pop(form.get("code", ""), None)  # a code works once
                if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                    return self._json(400, {"error": "invalid_grant"})
                challenge = grant.get("code_challenge")
                verifier = form.get("code_verifier", "")
                expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not challenge or grant.get("code_challenge_method") != "S256" or expected != challenge:
                    return self._json(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
                access = secrets.token_urlsafe(16)
                idp.tokens[access] = grant["user"]
                return self._json(200, {
                    "access_token": access, "token_type": "Bearer", "expires_in": 300,
                    "id_token": idp.id_token(grant["user"], grant.get("nonce", "")),
                })

        return Handler
