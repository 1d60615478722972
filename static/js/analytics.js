// Charts of analytics results, drawn by the vendored Chart.js from each result's JSON (json_script);
// the result's table is always on the page too. Clicking a bar, point or slice drills down to the
// records behind it. Dashboards re-draw their tiles on auto-refresh and, in live mode, when the
// workspace's change sequence moves.
(() => {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const palette = ["#2455d6", "#e8772e", "#1e9e6a", "#c23b7a", "#7b5cd6", "#b5a40f", "#1c9bb5", "#8a5a2b"];

  function draw(root) {
    if (!window.Chart) return;
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      if (canvas.dataset.drawn) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      const data = JSON.parse(source.textContent);
      const kind = data.kind;
      const round = kind === "pie" || kind === "donut";
      const type = { bar: "bar", line: "line", area: "line", pie: "pie", donut: "doughnut" }[kind] || "bar";
      const text = css("--text") || "#1c2430";
      const grid = css("--border") || "#d9dee5";
      Chart.defaults.color = text;
      Chart.defaults.borderColor = grid;
      const datasets = data.series.map((s, i) => ({
        label: s.label,
        data: s.data,
        fill: kind === "area",
        tension: 0.2,
        backgroundColor: round ? data.labels.map((_, j) => palette[j % palette.length]) : palette[i % palette.length] + (kind === "area" ? "55" : ""),
        borderColor: round ? css("--surface") : palette[i % palette.length],
        spanGaps: true,
      }));
      if (data.reference) {
        // A limit (the API's rate limit) drawn across the chart as a dashed line.
        datasets.push({
          label: data.reference.label,
          data: data.labels.map(() => data.reference.value),
          type: "line",
          borderColor: css("--danger") || "#c0392b",
          borderDash: [6, 4],
          pointRadius: 0,
          fill: false,
        });
      }
      const y = { beginAtZero: true, stacked: !!data.stacked };
      if (data.scale === "logarithmic") Object.assign(y, { type: "logarithmic", beginAtZero: false });
      const chart = new Chart(canvas, {
        type,
        data: { labels: data.labels, datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { display: datasets.length > 1 || round } },
          scales: round ? {} : { x: { stacked: !!data.stacked }, y },
          onClick: (_event, elements) => {
            if (!elements.length) return;
            const link = (data.links || [])[elements[0].index];
            if (link) window.location.href = link;
          },
        },
      });
      canvas.dataset.drawn = "1";
      canvas.chart = chart;
    });
  }

  function tiles() {
    const box = document.getElementById("tiles");
    if (!box) return;
    const reload = async () => {
      const response = await fetch(box.dataset.tilesUrl, { headers: { "HX-Request": "true" } });
      if (!response.ok) return;
      box.innerHTML = await response.text();
      draw(box);
      box.dataset.refreshed = String(Date.now());
    };
    const every = parseInt(box.dataset.refresh || "0", 10);
    if (every > 0) setInterval(reload, every * 1000);
    if (box.dataset.live) {
      let seen = parseInt(box.dataset.seq || "0", 10);
      setInterval(async () => {
        const response = await fetch(box.dataset.changesUrl);
        if (!response.ok) return;
        const { seq } = await response.json();
        if (seq !== seen) await reload();
        seen = seq;
      }, 2000);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    draw(document);
    tiles();
  });
})();
