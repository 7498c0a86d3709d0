/* The readiness page refreshes its picture without a reload: every few seconds it asks the
   page's status URL (a GET, which never acts on the workers) and swaps the answer in. It
   pauses while the tab is hidden, and says so when the session has ended. */
(function () {
  "use strict";
  var box = document.getElementById("tm-readiness");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-status-url");
  var every = 1000 * Number(box.getAttribute("data-refresh-seconds") || 3);
  var note = document.getElementById("tm-refresh");
  var timer = null;
  var busy = false;
  var ended = false;

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, every);
  }

  function say(text) {
    if (note) {
      note.textContent = text;
    }
  }

  function refresh() {
    if (busy || document.hidden) {
      schedule();
      return;
    }
    busy = true;
    fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.redirected || !response.ok) {
          // A redirect goes to the login page: the session ended. Keep the last picture.
          ended = response.redirected;
          throw new Error(ended ? "your session has ended" : "HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        box.innerHTML = html;
        box.setAttribute("data-refreshed-at", String(Date.now()));
        say("Refreshed at " + new Date().toLocaleTimeString() + "; refreshes every " + every / 1000 + " s.");
      })
      .catch(function (error) {
        say("Could not refresh (" + error.message + ") at " + new Date().toLocaleTimeString() +
            ": the picture above may be out of date. Reload the page.");
      })
      .then(function () {
        busy = false;
        if (!ended) {
          schedule();
        }
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
  schedule();
})();
