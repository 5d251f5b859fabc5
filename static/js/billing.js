// Billing pages: the budget and channel forms show only the fields that apply, and the playground
// sends one prompt to two models from the browser. Loaded with `defer`; the CSP forbids inline scripts.
(function () {
  "use strict";

  // New budget: only the target of the chosen scope (team, key or user) is shown.
  document.querySelectorAll("form[data-budget-form]").forEach(function (form) {
    var scope = form.querySelector("select[name=scope]");
    if (!scope) {
      return;
    }
    function apply() {
      form.querySelectorAll("[data-scope-field]").forEach(function (field) {
        field.closest(".field").hidden = field.getAttribute("data-scope-field") !== scope.value;
      });
    }
    scope.addEventListener("change", apply);
    apply();
  });

  // New alert channel: the signing secret applies to Feishu and DingTalk bots (and, optionally, webhooks).
  var kind = document.getElementById("channel_kind");
  var secret = document.getElementById("channel_secret");
  if (kind && secret) {
    var applyKind = function () {
      secret.closest(".field").hidden = ["feishu", "dingtalk", "webhook"].indexOf(kind.value) < 0;
    };
    kind.addEventListener("change", applyKind);
    applyKind();
  }

  // Playground. The key's secret is read from a field without a name (so no form submission can carry
  // it), sent only to the gateway's /v1 endpoint, and never written anywhere.
  var form = document.querySelector("form[data-playground]");
  if (!form) {
    return;
  }
  var text = function (name) { return form.getAttribute("data-text-" + name) || ""; };
  var error = form.querySelector("[data-playground-error]");

  function field(card, name, value) {
    card.querySelector('[data-field="' + name + '"]').textContent = value;
  }

  function showCost(card, requestId, attempt) {
    var url = form.getAttribute("data-cost-url") + "?request_id=" + encodeURIComponent(requestId);
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        var cell = card.querySelector('[data-field="cost"]');
        if (data.found) {
          var link = document.createElement("a");
          link.href = data.url;
          link.textContent = data.cost_text;
          link.title = text("details");
          cell.replaceChildren(link);
        } else if (attempt < 20) {
          // The ledger is written in batches, usually within a few seconds.
          cell.textContent = text("pending");
          window.setTimeout(function () { showCost(card, requestId, attempt + 1); }, 500 * Math.min(attempt + 1, 4));
        } else {
          cell.textContent = text("no-cost");
        }
      })
      .catch(function () { field(card, "cost", text("no-cost")); });
  }

  function run(card, model, key, prompt, maxTokens) {
    ["latency", "tokens", "cost", "request"].forEach(function (name) { field(card, name, "—"); });
    field(card, "model", model);
    field(card, "answer", text("running"));
    card.classList.remove("failed");
    var started = performance.now();
    fetch(form.getAttribute("data-api-url"), {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
      body: JSON.stringify({ model: model, messages: [{ role: "user", content: prompt }], max_tokens: maxTokens })
    })
      .then(function (response) {
        var requestId = response.headers.get("x-request-id");
        return response.json().catch(function () { return null; }).then(function (body) {
          return { response: response, body: body, requestId: requestId };
        });
      })
      .then(function (result) {
        field(card, "latency", Math.round(performance.now() - started) + " " + text("ms"));
        field(card, "request", result.requestId || "—");
        var body = result.body || {};
        if (!result.response.ok) {
          var message = body.error && body.error.message ? body.error.message : "";
          field(card, "answer", text("error") + " " + result.response.status + (message ? ": " + message : ""));
          card.classList.add("failed");
        } else {
          var choice = body.choices && body.choices[0];
          field(card, "answer", choice && choice.message ? choice.message.content || "" : "");
          if (body.usage) {
            field(card, "tokens", body.usage.prompt_tokens + " / " + body.usage.completion_tokens);
          }
        }
        if (result.requestId) {
          showCost(card, result.requestId, 0);
        }
      })
      .catch(function () {
        field(card, "answer", text("network"));
        card.classList.add("failed");
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var key = form.querySelector("#pg-secret").value.trim();
    var prompt = form.querySelector("#pg-prompt").value;
    var models = [form.querySelector("#pg-model-a").value, form.querySelector("#pg-model-b").value];
    var maxTokens = parseInt(form.querySelector("#pg-max-tokens").value, 10) || 256;
    if (!key || !prompt.trim() || !models[0] || !models[1]) {
      error.textContent = text("missing");
      error.hidden = false;
      return;
    }
    error.hidden = true;
    ["a", "b"].forEach(function (side, index) {
      run(document.querySelector('[data-result="' + side + '"]'), models[index], key, prompt, maxTokens);
    });
  });
  form.setAttribute("data-ready", "true");
})();
