"""Model lists and account balances for the mock upstream ("fetch models", balance polling).

GET /v1/models answers in Anthropic's format when the request carries x-api-key (paged through
has_more/last_id) and in OpenAI's otherwise; GET /v1beta/models is Gemini's (paged through
nextPageToken, with one model that cannot generate content). Pages hold two models so paging is
exercised. GET /user/balance is DeepSeek's, GET /v1/users/me/balance Moonshot's, GET /v1/user/info
SiliconFlow's and GET /v1/credits OpenRouter's; the answers can
be replaced through `upstream.balance_answers[path] = (status, json)`.
"""

from aiohttp import web

EXPECTED_KEY = "test-key"
OPENAI_MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
ANTHROPIC_MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
GEMINI_MODELS = [("gemini-2.5-pro", ["generateContent", "countTokens"]), ("gemini-2.5-flash", ["generateContent"]),
                 ("text-embedding-004", ["embedContent"]), ("aqa-tuning-only", ["createTunedModel"])]
PAGE = 2
DEEPSEEK_BALANCE = {"is_available": True, "balance_infos": [
    {"currency": "CNY", "total_balance": "110.00", "granted_balance": "10.00", "topped_up_balance": "100.00"}]}
SILICONFLOW_USER_INFO = {"code": 20000, "message": "OK", "status": True, "data": {
    "id": "userid", "name": "", "email": "", "isAdmin": False, "balance": "0.88", "status": "normal", "chargeBalance": "88.00",
    "totalBalance": "88.88"}}
OPENROUTER_CREDITS = {"data": {"total_credits": 100.5, "total_usage": 25.75}}
MOONSHOT_BALANCE = {"code": 0, "data": {"available_balance": 49.58, "voucher_balance": 46.58, "cash_balance": 3.0}, "status": True}


def _openai_error(message: str, status: int = 401):
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}, status=status)


def add_routes(app: web.Application, upstream) -> None:
    async def models(request):
        if "x-api-key" in request.headers:
            if request.headers["x-api-key"] != EXPECTED_KEY or request.headers.get("anthropic-version") != "2023-06-01":
                return web.json_response({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}, status=401)
            after = request.query.get("after_id")
            start = ANTHROPIC_MODELS.index(after) + 1 if after in ANTHROPIC_MODELS else 0
            page = ANTHROPIC_MODELS[start:start + PAGE]
            return web.json_response({
                "data": [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in page],
                "has_more": start + PAGE < len(ANTHROPIC_MODELS), "first_id": page[0] if page else None, "last_id": page[-1] if page else None,
            })
        if request.headers.get("Authorization") != f"Bearer {EXPECTED_KEY}":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _openai_error(f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com.")
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "owned_by": "mock"} for m in OPENAI_MODELS]})

    async def gemini_models(request):
        if (request.headers.get("x-goog-api-key") or request.query.get("key")) != EXPECTED_KEY:
            return web.json_response({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}, status=400)
        start = int(request.query.get("pageToken") or 0)
        page = GEMINI_MODELS[start:start + PAGE]
        answer = {"models": [{"name": f"models/{name}", "supportedGenerationMethods": methods} for name, methods in page]}
        if start + PAGE < len(GEMINI_MODELS):
            answer["nextPageToken"] = str(start + PAGE)
        return web.json_response(answer)

    def balance(default):
        async def handler(request):
            if request.headers.get("Authorization") != f"Bearer {EXPECTED_KEY}":
                return _openai_error("Authentication Fails (no such user)")
            status, body = upstream.balance_answers.get(request.path, (200, default))
            return web.json_response(body, status=status)

        return handler

    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1beta/models", gemini_models)
    app.router.add_get("/user/balance", balance(DEEPSEEK_BALANCE))
    app.router.add_get("/v1/users/me/balance", balance(MOONSHOT_BALANCE))
    app.router.add_get("/v1/user/info", balance(SILICONFLOW_USER_INFO))
    app.router.add_get("/v1/credits", balance(OPENROUTER_CREDITS))
