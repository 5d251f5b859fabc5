// The batch page's live progress: polls progress.json (the API's batch object) each second until the
// batch ends, then reloads once so the download links and buttons match the final state.
(function () {
  "use strict";
  var card = document.getElementById("batch-progress");
  if (!card) return;
  var url = card.getAttribute("data-progress-url");
  var finished = ["completed", "failed", "cancelled", "expired"];
  var labels = JSON.parse(document.getElementById("batch-status").getAttribute("data-status-labels"));
  var eta = document.getElementById("batch-eta");

  function set(id, value) {
    var node = document.getElementById(id);
    if (node && value !== null && value !== undefined) node.textContent = value;
  }

  function show(batch) {
    var counts = batch.request_counts, extra = batch.tollgate;
    var bar = document.getElementById("batch-bar");
    bar.max = Math.max(counts.total, 1);
    bar.value = counts.completed + counts.failed;
    set("batch-done", counts.completed);
    set("batch-failed", counts.failed);
    set("batch-remaining", extra.remaining);
    set("batch-spent", extra.spent);
    if (extra.would_have_cost !== null && extra.would_have_cost !== undefined) {
      set("batch-would-have-cost", extra.would_have_cost);
      document.getElementById("batch-would-label").hidden = false;
      document.getElementById("batch-would").hidden = false;
    }
    var status = labels[batch.status] || batch.status;
    set("batch-status", extra.paused ? status + " · " + labels.paused : status);
    eta.textContent = extra.eta_seconds === null ? eta.getAttribute("data-unknown")
      : eta.getAttribute("data-seconds-label").replace("{s}", extra.eta_seconds);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (batch) {
        if (!batch) return setTimeout(poll, 3000);
        show(batch);
        if (finished.indexOf(batch.status) >= 0) {
          if (finished.indexOf(card.getAttribute("data-status")) < 0) window.location.reload();
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }

  if (finished.indexOf(card.getAttribute("data-status")) < 0) poll();
})();
