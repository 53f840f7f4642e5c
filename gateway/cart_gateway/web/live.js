// Reload the page when what it shows has changed (the server says so by a version string).
// No framework, no build: the pages work without it (forms post, links navigate).
(function () {
  var el = document.body, url = el.getAttribute("data-live");
  if (!url) return;
  var seen = el.getAttribute("data-version");
  var every = parseInt(el.getAttribute("data-every") || "1000", 10);   // the store view asks less often
  function poll() {
    if (document.activeElement && /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) {
      return setTimeout(poll, 1000);   // someone is typing: do not throw their input away
    }
    fetch(url, {credentials: "same-origin", cache: "no-store"}).then(function (r) {
      if (r.status === 401) { location.reload(); return null; }
      return r.ok ? r.json() : null;
    }).then(function (d) {
      if (d && seen && d.v !== seen) { location.reload(); return; }
      if (d) seen = d.v;
      setTimeout(poll, every);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, every);
})();
