// Chart.js charts of the billing pages. Loaded with `defer` after chart.umd.js; the CSP forbids inline
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

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
