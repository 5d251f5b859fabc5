// Provider credential form: the chosen preset's default base URL becomes the placeholder, and only
// the fields that apply to its wire format are shown. Loaded with `defer` on the providers page.
(function () {
  "use strict";

  function apply(select) {
    var form = select.form;
    var option = select.options[select.selectedIndex];
    var wire = option ? option.getAttribute("data-wire") : "";
    var baseUrl = form.querySelector("[data-base-url-input]");
    if (baseUrl) {
      baseUrl.placeholder = (option && option.getAttribute("data-base-url")) || baseUrl.getAttribute("data-placeholder-required") || "";
    }
    form.querySelectorAll("[data-wire-hide]").forEach(function (field) {
      field.closest(".field").hidden = field.getAttribute("data-wire-hide") === wire;
    });
    form.querySelectorAll("[data-wire-show]").forEach(function (field) {
      field.closest(".field").hidden = field.getAttribute("data-wire-show") !== wire;
    });
    var notice = form.parentElement.querySelector("[data-demo-notice]");
    if (notice) {
      notice.hidden = wire !== "mock";
    }
  }

  document.querySelectorAll("select[data-preset-select]").forEach(function (select) {
    apply(select);
    select.addEventListener("change", function () { apply(select); });
  });
})();

// Model routing form: the "+ name" buttons append a model to the ordered, comma-separated fallback list.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-fallback-add]");
    if (!button) {
      return;
    }
    var input = button.closest(".field").querySelector("[data-fallback-input]");
    var names = input.value.split(",").map(function (name) { return name.trim(); }).filter(Boolean);
    var name = button.getAttribute("data-fallback-add");
    if (names.indexOf(name) === -1) {
      names.push(name);
    }
    input.value = names.join(", ");
    input.focus();
  });
})();
