// Plugboard UI: small progressive enhancements. Every page works without it.
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var copy = e.target.closest("[data-copy]");
    if (copy) {
      var el = document.querySelector(copy.getAttribute("data-copy"));
      if (el && navigator.clipboard) {
        navigator.clipboard.writeText(el.textContent.trim()).then(function () {
          var was = copy.textContent;
          copy.textContent = "Copied";
          setTimeout(function () { copy.textContent = was; }, 1500);
        });
      }
      e.preventDefault();
      return;
    }
    var back = e.target.closest("[data-back]");
    if (back && history.length > 1) {
      history.back();
      e.preventDefault();
    }
    // Close open menus when clicking elsewhere.
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(e.target)) d.removeAttribute("open");
    });
  });
  // A sign-on form (sso.html) posts its short-lived token to the partner at
  // once; without script its button does the same.
  document.addEventListener("DOMContentLoaded", function () {
    var sso = document.querySelector("form[data-autopost]");
    if (sso) sso.submit();
  });
  // Installing an app that provisions waits for the partner's answer: say
  // so while the request runs, and keep the form from going twice.
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("form[data-provisioning-form]");
    if (!form || (e.submitter && e.submitter.value === "deny")) return;
    var note = form.querySelector("[data-provisioning]");
    if (note) note.hidden = false;
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      setTimeout(function () { b.disabled = true; }, 0);
    });
  });
  // Filters submit themselves when a select changes.
  document.addEventListener("change", function (e) {
    if (e.target.matches("form[data-autosubmit] select")) {
      e.target.form.requestSubmit();
    }
  });
})();
