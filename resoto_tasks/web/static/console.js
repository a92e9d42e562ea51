// resoto-tasks console: live parts without reloading the page.
// An element with data-poll="URL" is replaced, every data-poll-ms of <body>, by the element the URL
// returns (server-rendered and escaped there), until it comes back with data-final="1".
(function () {
  "use strict";
  var period = Number(document.body.getAttribute("data-poll-ms")) || 2000;

  function schedule(el) {
    if (el.getAttribute("data-final") !== "1") {
      window.setTimeout(function () { refresh(el); }, period);
    }
  }

  function refresh(el) {
    var url = el.getAttribute("data-poll");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        var holder = document.createElement("template");
        holder.innerHTML = html.trim();
        var fresh = holder.content.firstElementChild;
        if (fresh && fresh.tagName === el.tagName) {
          el.replaceWith(fresh);
          schedule(fresh);
        } else {
          schedule(el);
        }
      })
      .catch(function () { schedule(el); });
  }

  document.querySelectorAll("[data-poll]").forEach(schedule);
})();
