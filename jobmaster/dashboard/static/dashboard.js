// jobmaster dashboard: live regions, confirmations, select-all. No inline script anywhere,
// so the page works under a strict Content-Security-Policy.
(function () {
  "use strict";
  var KEY = "jobmaster.dashboard.poll";
  var body = document.body;
  var select = document.getElementById("poll");
  var stored = window.localStorage ? localStorage.getItem(KEY) : null;
  var seconds = Number(stored !== null ? stored : body.dataset.poll || 5);
  var timer = null;
  var busy = false;

  function selecting(region) {
    // do not swap a region under the user's hands: a focused field or ticked boxes
    if (region.contains(document.activeElement) && document.activeElement !== document.body) {
      return true;
    }
    return region.querySelector("input[type=checkbox]:checked") !== null;
  }

  function refresh() {
    if (document.hidden || busy) { return; }
    var regions = document.querySelectorAll("[data-live]");
    if (!regions.length) { return; }
    busy = true;
    fetch(window.location.href, {credentials: "same-origin", headers: {"X-Jobmaster-Live": "1"}})
      .then(function (resp) { return resp.ok ? resp.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html");
        regions.forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next && !selecting(region)) { region.replaceWith(document.importNode(next, true)); }
        });
        body.dataset.refreshed = String(Date.now());
      })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { busy = false; });
  }

  function schedule() {
    if (timer) { clearInterval(timer); timer = null; }
    if (seconds > 0) { timer = setInterval(refresh, seconds * 1000); }
  }

  if (select) {
    select.value = String(seconds);
    select.addEventListener("change", function () {
      seconds = Number(select.value);
      if (window.localStorage) { localStorage.setItem(KEY, String(seconds)); }
      schedule();
    });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && seconds > 0) { refresh(); }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var message = (submitter && submitter.dataset.confirmClick) || form.dataset.confirm;
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box.matches && box.matches("[data-select-all]")) {
      var table = box.closest("table");
      table.querySelectorAll("tbody input[type=checkbox]").forEach(function (each) {
        each.checked = box.checked;
      });
    }
  });
  schedule();
})();
