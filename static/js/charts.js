// Chart.js charts of the billing pages and of a deployment's health history. Loaded with `defer` after chart.umd.js; the CSP forbids inline
// scripts, so each <canvas data-chart="ID"> names a json_script element holding its data:
// {"labels": [...], "datasets": [{"label", "data"}], "currency": "USD"} — one stacked bar per label.
(function () {
  "use strict";

  var PALETTE = ["#2856d6", "#e8833a", "#1e9e6a", "#b5446e", "#7c5cd6", "#c9a227", "#2aa1b3", "#8a8f98"];

  function formatter(currency, lang) {
    var cache = {};
    return function (value) {
      var digits = value && Math.abs(value) < 1 ? 6 : 2;
      if (!cache[digits]) {
        try {
          cache[digits] = new Intl.NumberFormat(lang || undefined, {
            style: "currency", currency: currency, minimumFractionDigits: 2, maximumFractionDigits: digits
          });
        } catch (error) { // an unusual currency code: plain number and code
          cache[digits] = { format: function (v) { return v.toFixed(digits) + " " + currency; } };
        }
      }
      return cache[digits].format(value);
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source || !window.Chart) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var money = formatter(data.currency, document.documentElement.lang);
    var datasets = data.datasets.map(function (set, index) {
      return {
        label: set.label,
        data: set.data,
        backgroundColor: PALETTE[index % PALETTE.length],
        borderWidth: 0,
        stack: "spend"
      };
    });
    new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, ticks: { callback: function (value) { return money(value); } } }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) { return item.dataset.label + ": " + money(item.parsed.y); }
            }
          }
        }
      }
    });
    canvas.setAttribute("data-chart-ready", "true");
  }

  // A deployment's probe history (keys/probes.py deployment_health_chart): latency per probe, oldest
  // first, failed probes as red points: {"labels", "latency", "ok", "latency_label", "failed_label", "passed_label"}.
  function drawHealth(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-health-chart"));
    if (!source || !window.Chart) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var colours = data.ok.map(function (ok) { return ok ? "#1e9e6a" : "#c62828"; });
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [{
          label: data.latency_label, data: data.latency, borderColor: "#2856d6", borderWidth: 1.5, tension: 0.2,
          pointBackgroundColor: colours, pointBorderColor: colours, pointRadius: data.ok.map(function (ok) { return ok ? 2 : 4; })
        }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? false : { duration: 300 },
        scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (item) {
                var state = data.ok[item.dataIndex] ? data.passed_label : data.failed_label;
                return data.latency_label + ": " + item.parsed.y + " (" + state + ")";
              }
            }
          }
        }
      }
    });
    canvas.setAttribute("data-chart-ready", "true");
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
  document.querySelectorAll("canvas[data-health-chart]").forEach(drawHealth);
})();
