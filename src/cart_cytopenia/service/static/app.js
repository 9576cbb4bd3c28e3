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
