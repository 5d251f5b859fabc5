"""Page checks the browser tests share: labelled controls and drawn charts."""

# Every visible form control needs a label (or aria-label/aria-labelledby); returns the offenders.
UNLABELLED_CONTROLS = """
() => Array.from(document.querySelectorAll("input, select, textarea"))
  .filter((el) => el.type !== "hidden")
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby"))
  .map((el) => el.outerHTML)
"""

# A chart's canvas size, its drawn (non-transparent) pixels (a chart that failed leaves it blank), and what
# Chart.js holds for it: each dataset, and its labels, totals and bars on their own.
CANVAS_STATE = """
(id) => {
  const canvas = document.getElementById(id);
  const box = canvas.getBoundingClientRect();
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { drawn += 1; } }
  const chart = window.Chart && window.Chart.getChart(canvas);
  const datasets = chart ? chart.data.datasets.map((d) => ({label: d.label, data: d.data})) : null;
  return {width: box.width, height: box.height, drawn: drawn, datasets: datasets,
          labels: datasets && datasets.map((d) => d.label),
          totals: datasets && datasets.map((d) => d.data.reduce((a, b) => a + b, 0)),
          bars: datasets && datasets.map((d) => d.data)};
}
"""


def assert_labelled(page):
    assert page.evaluate(UNLABELLED_CONTROLS) == [], page.url


def chart_state(page, canvas_id):
    """The chart once Chart.js has drawn it, asserted visible and not blank."""
    page.wait_for_function(
        "(id) => window.Chart && window.Chart.getChart(document.getElementById(id))"
        " && document.getElementById(id).getAttribute('data-chart-ready') === 'true'",
        arg=canvas_id,
    )
    page.wait_for_timeout(400)  # the bars' short entry animation
    state = page.evaluate(CANVAS_STATE, canvas_id)
    assert state["width"] > 200 and state["height"] > 200 and state["drawn"] > 500, state
    return state
