// Progressive enhancement only: every page works without this file.
// A <select data-autosubmit> submits its form as soon as a value is chosen, and the
// form's fallback button (data-autosubmit-fallback) is hidden.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    var form = select.form;
    if (!form) {
      return;
    }
    form.querySelectorAll("[data-autosubmit-fallback]").forEach(function (button) {
      button.hidden = true;
    });
    select.addEventListener("change", function () {
      if (select.value !== "") {
        form.submit();
      }
    });
  });
});

// An <input data-filter-rows="SELECTOR" data-filter-cell="SELECTOR"> hides, as one types, the
// rows whose cell does not contain the text (the worklist's patient search; nothing is sent).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-filter-rows]").forEach(function (input) {
    var rows = document.querySelectorAll(input.getAttribute("data-filter-rows"));
    var cellSelector = input.getAttribute("data-filter-cell");
    input.addEventListener("input", function () {
      var text = input.value.trim().toLowerCase();
      rows.forEach(function (row) {
        var cell = cellSelector ? row.querySelector(cellSelector) : row;
        var value = cell ? cell.textContent.toLowerCase() : "";
        row.hidden = text !== "" && value.indexOf(text) === -1;
      });
    });
  });
});
