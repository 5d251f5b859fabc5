// Tollgate dashboard behaviour. Loaded with `defer`; the CSP forbids inline scripts and handlers.
(function () {
  "use strict";

  document.documentElement.classList.replace("no-js", "js");

  // <select data-autosubmit>: submit its form on change (org and language switchers).
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.matches("[data-autosubmit]") && field.form) {
      field.form.requestSubmit();
    }
  });

  // <form data-confirm="question">: ask before destructive actions.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // <button data-copy="text">: copy to the clipboard, then say so briefly.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) {
      return;
    }
    event.preventDefault();
    var label = button.textContent;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = button.getAttribute("data-copied") || "✓";
      window.setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
})();
