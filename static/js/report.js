// The model A/B report: the custom time-range fields show only for "Custom range", and two bar charts
// are drawn from the JSON the page embeds with json_script (id "model-report-data"). Loaded with
// `defer` after Chart.js; the CSP forbids inline scripts, so nothing here comes from the page but data.
(function () {
  "use strict";

  function toggleCustomRange(select) {
    var custom = select.value === "custom";
    select.form.querySelectorAll("[data-custom-range]").forEach(function (input) {
      input.closest(".field").hidden = !custom;
    });
  }

  document.querySelectorAll("select[data-range-select]").forEach(function (select) {
    toggleCustomRange(select);
    select.addEventListener("change", function () { toggleCustomRange(select); });
  });

  var source = document.getElementById("model-report-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  var locale = document.documentElement.lang || undefined;
  var palette = { p50: "#2856d6", p95: "#9db4f0", cost: "#1e7a3c" };

  function options(yTitle, fractionDigits) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduceMotion ? false : { duration: 300 },
      locale: locale,
      plugins: {
        legend: { position: "bottom" },
        tooltip: {
          callbacks: {
            label: function (item) {
              var value = item.raw === null ? "—" : item.raw.toLocaleString(locale, { maximumFractionDigits: fractionDigits });
              return item.dataset.label + ": " + value;
            },
          },
        },
      },
      scales: {
        x: { ticks: { autoSkip: false } },
        y: { beginAtZero: true, title: { display: true, text: yTitle } },
      },
    };
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) {
      new window.Chart(canvas, config);
    }
  }

  draw("chart-latency", {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [
        { label: data.text.p50, data: data.latency.p50, backgroundColor: palette.p50 },
        { label: data.text.p95, data: data.latency.p95, backgroundColor: palette.p95 },
      ],
    },
    options: options(data.text.ms, 0),
  });

  draw("chart-cost", {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [{ label: data.text.cost, data: data.cost, backgroundColor: palette.cost }],
    },
    options: options(data.text.cost, 6),
  });
})();
