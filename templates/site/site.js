// reading-group-bot: adds the visitor's own time to each session's time line, from the
// <time datetime> of the one stored instant. Nothing else; the page reads fine without it.
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  var shown = (document.documentElement.getAttribute("data-zones") || "").split(" ");
  if (!zone || shown.indexOf(zone) >= 0) {
    return; // the page already shows this zone
  }
  var format = new Intl.DateTimeFormat("en-US", {
    weekday: "short", month: "short", day: "numeric",
    hour: "numeric", minute: "2-digit", timeZoneName: "short", timeZone: zone
  });
  var nodes = document.querySelectorAll("[data-yours]");
  for (var i = 0; i < nodes.length; i++) {
    var start = new Date(nodes[i].getAttribute("data-yours"));
    if (!isNaN(start.getTime())) {
      nodes[i].textContent = "Your time (" + zone.replace(/_/g, " ") + "): " + format.format(start);
      nodes[i].hidden = false;
    }
  }
})();
