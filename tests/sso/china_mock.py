"""Loopback mocks of Feishu/Lark, DingTalk and WeCom's documented web-login endpoints, in one HTTP server.

Each checks what its real counterpart checks (the app's secret, a code used once, the user token) and
answers in its documented shape; `users` says who signs in next, per provider.
"""

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

APP_ID, APP_SECRET = "cli_test_app", "feishu-secret-0123"
DING_ID, DING_SECRET = "dingtestkey", "ding-secret-0123"
CORP_ID, CORP_SECRET, AGENT_ID = "wwtestcorp", "wecom-secret-0123", "1000002"


class ChinaMock:
    def __init__(self):
        self.users = {
            "feishu": {"open_id": "ou_1", "name": "Li Lei", "enterprise_email": "lilei@acme.test"},
            "dingtalk": {"openId": "ding-open-1", "unionId": "u1", "nick": "Han Meimei", "email": "hanmeimei@acme.test"},
            "wecom": {"userid": "zhangsan", "name": "Zhang San", "biz_mail": "zhangsan@acme.test"},
        }
        self.codes = {}  # code -> provider
        self.tokens = {}  # user access token -> provider
        self.app_tokens = set()
        self.calls = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _code(self, provider):
        code = secrets.token_urlsafe(12)
        self.codes[code] = provider
        return code

    def _handler(mock):  # noqa: N805
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, target):
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                mock.calls.append(("GET", url.path, q))
                # Feishu: authorize, then the user's profile
                if url.path == "/open-apis/authen/v1/index":
                    if q.get("app_id") != APP_ID:
                        return self._json({"code": 20029, "msg": "app_id invalid"}, 400)
                    return self._redirect(q["redirect_uri"] + "?" + urlencode({"code": mock._code("feishu"), "state": q["state"]}))
                if url.path == "/open-apis/authen/v1/user_info":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if mock.tokens.get(token) != "feishu":
                        return self._json({"code": 99991663, "msg": "invalid access token"}, 401)
                    return self._json({"code": 0, "msg": "success", "data": mock.users["feishu"]})
                # DingTalk: authorize answers with authCode, then the profile
                if url.path == "/oauth2/auth":
                    if q.get("client_id") != DING_ID or q.get("response_type") != "code":
                        return self._json({"errmsg": "invalid client"}, 400)
                    return self._redirect(q["redirect_uri"] + "?" + urlencode({"authCode": mock._code("dingtalk"), "state": q["state"]}))
                if url.path == "/v1.0/contact/users/me":
                    if mock.tokens.get(self.headers.get("x-acs-dingtalk-access-token", "")) != "dingtalk":
                        return self._json({"code": "InvalidAuthentication", "message": "token invalid"}, 401)
                    return self._json(mock.users["dingtalk"])
                # WeCom: web login, application token, code -> userid, member
                if url.path == "/wwlogin/sso/login":
                    if q.get("appid") != CORP_ID or q.get("agentid") != AGENT_ID or q.get("login_type") != "CorpApp":
                        return self._json({"errcode": 40013, "errmsg": "invalid corpid"}, 400)
                    return self._redirect(q["redirect_uri"] + "?" + urlencode({"code": mock._code("wecom"), "state": q["state"], "appid": CORP_ID}))
                if url.path == "/cgi-bin/gettoken":
                    if q.get("corpid") != CORP_ID or q.get("corpsecret") != CORP_SECRET:
                        return self._json({"errcode": 40001, "errmsg": "invalid credential"})
                    token = secrets.token_urlsafe(12)
                    mock.app_tokens.add(token)
                    return self._json({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})
                if url.path == "/cgi-bin/auth/getuserinfo":
                    if q.get("access_token") not in mock.app_tokens:
                        return self._json({"errcode": 40014, "errmsg": "invalid access_token"})
                    if mock.codes.pop(q.get("code", ""), None) != "wecom":
                        return self._json({"errcode": 40029, "errmsg": "invalid code"})
                    return self._json({"errcode": 0, "errmsg": "ok", "userid": mock.users["wecom"]["userid"]})
                if url.path == "/cgi-bin/user/get":
                    if q.get("access_token") not in mock.app_tokens or q.get("userid") != mock.users["wecom"]["userid"]:
                        return self._json({"errcode": 60111, "errmsg": "userid not found"})
                    return self._json({"errcode": 0, "errmsg": "ok", **mock.users["wecom"]})
                return self._json({"error": "not found"}, 404)

            def do_POST(self):
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                mock.calls.append(("POST", url.path, raw))
                if url.path == "/open-apis/auth/v3/app_access_token/internal/":
                    form = {k: v[0] for k, v in parse_qs(raw).items()}
                    if form.get("app_id") != APP_ID or form.get("app_secret") != APP_SECRET:
                        return self._json({"code": 10014, "msg": "app secret invalid"})
                    token = secrets.token_urlsafe(12)
                    mock.app_tokens.add(token)
                    return self._json({"code": 0, "msg": "ok", "app_access_token": token, "expire": 7200})
                if url.path == "/open-apis/authen/v1/access_token":
                    body = json.loads(raw or "{}")
                    if body.get("app_access_token") not in mock.app_tokens or mock.codes.pop(body.get("code", ""), None) != "feishu":
                        return self._json({"code": 20003, "msg": "invalid code"})
                    token = secrets.token_urlsafe(12)
                    mock.tokens[token] = "feishu"
                    return self._json({"code": 0, "msg": "success", "data": {"access_token": token, "token_type": "Bearer", "expires_in": 6900}})
                if url.path == "/v1.0/oauth2/userAccessToken":
                    body = json.loads(raw or "{}")
                    if body.get("clientId") != DING_ID or body.get("clientSecret") != DING_SECRET or body.get("grantType") != "authorization_code":
                        return self._json({"code": "InvalidClient", "message": "client invalid"}, 400)
                    if mock.codes.pop(body.get("code", ""), None) != "dingtalk":
                        return self._json({"code": "InvalidAuthCode", "message": "code invalid"}, 400)
                    token = secrets.token_urlsafe(12)
                    mock.tokens[token] = "dingtalk"
                    return self._json({"accessToken": token, "refreshToken": "r", "expireIn": 7200, "corpId": "ding-corp"})
                return self._json({"error": "not found"}, 404)

        return Handler
