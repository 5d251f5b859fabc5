"""A `requests` session for allauth whose every request goes through the egress client (keys.egress).

An OIDC issuer is a URL an organization's admin typed, so discovery, JWKS, token and userinfo calls are
server-side fetches to a user-supplied address: they get the same checks as webhooks (public addresses
only unless allow-listed, pinned connection, no redirects followed, bounded body).
"""

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from keys import egress

MAX_BODY = 1024 * 1024  # discovery documents and JWKS are a few KB; this bounds a hostile one
_DROPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding"}


class EgressAdapter(BaseAdapter):
    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED_HEADERS}
        try:
            answer = egress.fetch(request.method, request.url, content=body, headers=headers, timeout=self.timeout, max_body=MAX_BODY)
        except (egress.EgressRefused, egress.EgressFailed) as exc:
            # allauth turns a RequestException into an authentication error page.
            raise requests.ConnectionError(exc.message, request=request) from exc
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        response.url = request.url
        response.request = request
        response.reason = ""
        return response

    def close(self):
        pass


def egress_session(timeout: float) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc from the environment: egress decides where a request goes
    adapter = EgressAdapter(timeout)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
