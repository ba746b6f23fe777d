// Live throughput sparklines: polls /api/throughput (cumulative totals) once a second and draws
// the last minute of rates. Nothing else on the console needs JavaScript.
(function () {
  "use strict";
  var charts = document.querySelectorAll("svg.spark");
  if (!charts.length) return;
  var WIDTH = 240, HEIGHT = 40, POINTS = 60;
  var series = {};
  var last = null;

  function format(rate) {
    if (rate >= 1e6) return (rate / 1e6).toFixed(1) + "M";
    if (rate >= 1e3) return (rate / 1e3).toFixed(1) + "k";
    return rate.toFixed(rate < 10 ? 1 : 0);
  }

  function draw(svg, values) {
    var max = Math.max.apply(null, values.concat([1]));
    // Spread over the whole width until a minute of points fills it.
    var step = WIDTH / Math.max(values.length - 1, 1);
    var points = values.map(function (v, i) {
      var x = i * step;
      var y = HEIGHT - 1 - (v / max) * (HEIGHT - 2);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    svg.querySelector("polyline").setAttribute("points", points.join(" "));
  }

  function tick() {
    fetch("/api/throughput", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (now) {
        if (last !== null) {
          var seconds = Math.max(now.t - last.t, 0.001);
          charts.forEach(function (svg) {
            var key = svg.dataset.series;
            var rate = Math.max(0, (now[key] - last[key]) / seconds);
            var values = series[key] || (series[key] = []);
            values.push(rate);
            if (values.length > POINTS) values.shift();
            draw(svg, values);
            var label = document.getElementById(svg.dataset.label);
            if (label) label.textContent = format(rate);
          });
        }
        last = now;
      })
      .catch(function () { /* broker restarting: try again next tick */ });
  }

  tick();
  setInterval(tick, 1000);
})();
