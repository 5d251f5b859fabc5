"""Rerank wire formats for the mock upstream (PROVIDERS.md §8), one route per dialect:

  POST /v2/rerank                                      Cohere v2: strings only, no return_documents, meta.billed_units
  POST /v1/rerank                                      Jina: usage.total_tokens, documents returned unless asked not to
  POST /siliconflow/v1/rerank                          SiliconFlow: tokens.input_tokens
  POST /api/v1/services/rerank/text-rerank/text-rerank DashScope: input/parameters nesting, output.results, usage.total_tokens

Scores are the share of the query's words each document has; tokens are words + 3 (count_prompt_tokens).
"""

from aiohttp import web

from tests.upstream.server import LedgerEntry, count_prompt_tokens

EXPECTED_KEY = "Bearer test-key"


def _ranked(query: str, documents: list[str], top_n) -> list[dict]:
    wanted = set(query.lower().split())
    scores = [(len(wanted & set(doc.lower().split())) / max(1, len(wanted)), index) for index, doc in enumerate(documents)]
    scores.sort(key=lambda pair: (-pair[0], pair[1]))
    return [{"index": index, "relevance_score": score} for score, index in scores[: top_n or len(scores)]]


def add_routes(app: web.Application, upstream) -> None:
    def handler(dialect: str):
        async def rerank(request):
            body = await request.json()
            model = str(body.get("model", "echo"))
            if request.headers.get("authorization") != EXPECTED_KEY:
                return _error(dialect, 401, "invalid api token")
            status = await upstream.behave(model)
            if status:
                return _error(dialect, status, f"Mock failure {status}", {"retry-after": "1"} if status == 429 else None)
            source = body.get("input", {}) if dialect == "dashscope" else body
            options = body.get("parameters", {}) if dialect == "dashscope" else body
            query, documents = source.get("query"), source.get("documents")
            if not isinstance(query, str) or not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
                return _error(dialect, 400, "query and documents (strings) are required")
            if dialect == "cohere" and "return_documents" in body:
                return _error(dialect, 400, "invalid request: return_documents is not a v2 parameter")
            results = _ranked(query, documents, options.get("top_n"))
            if options.get("return_documents", dialect == "jina"):
                for result in results:
                    result["document"] = {"text": documents[result["index"]]}
            tokens = count_prompt_tokens([query, *documents])
            upstream_id = upstream.next_id("rerank_mock")
            upstream.record(LedgerEntry(upstream_id, dialect, model, tokens, 0, False, True))
            usage = model != "nousage"
            if dialect == "cohere":
                meta = {"api_version": {"version": "2", "is_experimental": False}}
                if usage:
                    meta["billed_units"] = {"search_units": -(-len(documents) // 100)}
                return web.json_response({"id": upstream_id, "results": results, "meta": meta})
            if dialect == "dashscope":
                answer = {"output": {"results": results}, "request_id": upstream_id}
                return web.json_response({**answer, **({"usage": {"total_tokens": tokens}} if usage else {})})
            if dialect == "siliconflow":
                answer = {"id": upstream_id, "results": results}
                return web.json_response({**answer, **({"tokens": {"input_tokens": tokens, "output_tokens": 0}} if usage else {})})
            answer = {"model": model, "results": results}
            return web.json_response({**answer, **({"usage": {"total_tokens": tokens}} if usage else {})})

        return rerank

    app.router.add_post("/v2/rerank", handler("cohere"))
    app.router.add_post("/v1/rerank", handler("jina"))
    app.router.add_post("/siliconflow/v1/rerank", handler("siliconflow"))
    app.router.add_post("/api/v1/services/rerank/text-rerank/text-rerank", handler("dashscope"))


def _error(dialect: str, status: int, message: str, headers=None):
    if dialect == "dashscope":
        return web.json_response({"code": "InvalidParameter", "message": message, "request_id": "mock"}, status=status, headers=headers)
    if dialect == "jina":
        return web.json_response({"detail": message}, status=status, headers=headers)
    return web.json_response({"message": message}, status=status, headers=headers)
