/* The city dashboard: every zone at a glance, a schematic of the zones, sensor health and spending. */
"use strict";
(function () {
  const D = window.Drukte, cfg = D.cfg, $ = (id) => document.getElementById(id), el = D.el, svg = D.svg;
  const lives = new Map(), trends = new Map(), spend = new Map();
  let layout = null;

  function keyOf(zoneId, now) { const l = lives.get(zoneId); return l ? l.levelKey(now) : "unknown"; }

  function sparkline(zone, key) {
    const W = 240, H = 44, pts = (trends.get(zone.id) || []).filter((w) => w.score !== null);
    const box = svg("svg", {viewBox: `0 0 ${W} ${H}`, class: "spark", role: "img", preserveAspectRatio: "none",
                            "aria-label": D.t("trend_aria", {zone: zone.name})});
    box.append(svg("line", {x1: 0, x2: W, y1: H - 1, y2: H - 1, class: "ref"}));
    if (pts.length > 1) {
      const t0 = Date.parse(pts[0].start), t1 = Date.parse(pts[pts.length - 1].start) || t0 + 1;
      const top = Math.max(20, ...pts.map((w) => w.score));  /* the trend's own scale, never noise blown up */
      const xy = pts.map((w) => [((Date.parse(w.start) - t0) / Math.max(1, t1 - t0)) * W,
                                 H - 3 - (w.score / top) * (H - 8)]);
      const line = xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
      box.append(svg("polygon", {points: `0,${H} ${line} ${W},${H}`, class: "area"}),
                 svg("polyline", {points: line}));
    }
    return box;
  }

  function tile(zone, now) {
    const l = lives.get(zone.id), key = keyOf(zone.id, now), o = l && l.obj;
    const q = o ? o.quality : {coverage: 0, sensors_reporting: 0, sensors_expected: zone.sensors_expected};
    const fresh = key !== "unknown";
    return el("article", {class: `card tile lv lv-${key}`, "data-zone": zone.id, "data-level": key},
      el("h3", {}, el("a", {href: `/zone/${encodeURIComponent(zone.id)}?lang=${cfg.lang}`}, zone.name)),
      el("div", {class: "row"}, D.badge(key),
         el("span", {class: "idx"}, fresh && o.index !== null ? D.t("index", {n: D.fmt.num(o.index)}) : "–")),
      el("div", {class: "vsline"}, fresh ? D.vsText(o.vs_usual) : o && o.as_of ?
         D.t("last_data", {time: D.fmt.time(o.as_of)}) : D.t("no_data")),
      sparkline(zone, key),
      el("div", {class: "meta"}, el("span", {}, D.t("trend")),
         el("span", {}, D.t("coverage", {pct: D.fmt.pct(fresh ? q.coverage : 0)}))));
  }

  function map(now) {
    const W = 640, H = 400;
    const positions = (layout && layout[cfg.city_id]) || {};
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": D.t("map_aria", {city: cfg.city_name})});
    const deco = layout && layout["_decor"] && layout["_decor"][cfg.city_id];
    if (deco && deco.river) root.append(svg("path", {d: deco.river, class: "river"}));
    root.append(svg("ellipse", {cx: W / 2, cy: H / 2, rx: W / 2 - 20, ry: H / 2 - 16, class: "ring"}));
    const n = cfg.zones.length, cols = Math.ceil(Math.sqrt(n));
    cfg.zones.forEach((zone, i) => {
      const p = positions[zone.id] || {x: 100 + (i % cols) * (440 / Math.max(1, cols - 1)),
                                       y: 90 + Math.floor(i / cols) * 110, w: 110, r: 0};
      const key = keyOf(zone.id, now);
      const g = svg("g", {class: `lv lv-${key}`, transform: `translate(${p.x} ${p.y}) rotate(${p.r || 0})`});
      const w = p.w || 110;
      g.append(svg("rect", {x: -w / 2, y: -11, width: w, height: 22, rx: 11, class: "street"}));
      root.append(g);
      const label = svg("g", {transform: `translate(${p.x + (p.lx || 0)} ${p.y + (p.ly === undefined ? 32 : p.ly)})`});
      label.append(svg("text", {"text-anchor": "middle", class: "name"}, zone.name),
                   svg("text", {"text-anchor": "middle", y: 15, class: "lvl"}, D.levelLabel(key)));
      root.append(label);
    });
    $("map").replaceChildren(root);
  }

  function health(now) {
    $("health").replaceChildren(...cfg.zones.map((zone) => {
      const l = lives.get(zone.id), o = l && l.obj;
      const q = o ? o.quality : {sensors_reporting: 0, sensors_expected: zone.sensors_expected};
      const age = l ? l.ageS(now) : null;
      const stale = !l || l.stale(now);
      const state = stale ? "down" : q.sensors_reporting < q.sensors_expected ? "partial" : "ok";
      const lv = state === "ok" ? "quiet" : state === "partial" ? "busy" : "very_busy";
      return el("tr", {"data-zone": zone.id},
        el("th", {scope: "row"}, zone.name),
        el("td", {class: "num"}, `${stale ? 0 : q.sensors_reporting} / ${q.sensors_expected}`),
        el("td", {class: "num"}, age === null ? "–" : D.t("age_value", {n: D.fmt.num(Math.floor(age / 60))})),
        el("td", {}, el("span", {class: `dot lv lv-${lv}`, "aria-hidden": "true"}), D.t("health_" + state)));
    }));
  }

  function spending() {
    const box = $("spending");
    const have = cfg.zones.filter((z) => spend.get(z.id) && !(spend.get(z.id).all.suppressed &&
                                                               spend.get(z.id).all.reason === "no_data"));
    if (!have.length) {
      box.replaceChildren(el("p", {class: "empty-state", "data-state": "none"}, D.t("spending_none")));
      return;
    }
    const head = el("tr", {}, el("th", {scope: "col"}, D.t("zone")),
      el("th", {scope: "col", class: "num"}, D.t("spending_index")), el("th", {scope: "col"}, D.t("vs_header")),
      el("th", {scope: "col", class: "num"}, D.t("spend_per_visitor")), el("th", {scope: "col"}, D.t("sector")));
    const rows = cfg.zones.map((zone) => {
      const s = spend.get(zone.id), a = s && s.all;
      const open = a && !a.suppressed;
      const top = s ? (s.sectors || []).filter((c) => !c.suppressed && c.index !== null)
        .sort((x, y) => y.index - x.index).slice(0, 2)
        .map((c) => `${(c.label && c.label[cfg.lang]) || c.sector} ${D.fmt.num(c.index)}`).join(" · ") : "";
      return el("tr", {}, el("th", {scope: "row"}, zone.name),
        el("td", {class: "num"}, open ? D.fmt.num(a.index) : "–"),
        el("td", {}, open && a.vs_usual ? D.t("spend_" + a.vs_usual) : "–"),
        el("td", {class: "num"}, open ? D.fmt.num(a.spend_per_visitor) : "–"),
        el("td", {}, top || "–"));
    });
    box.replaceChildren(el("div", {class: "table-wrap"}, el("table", {}, el("thead", {}, head), el("tbody", {}, rows))),
                        el("p", {class: "muted"}, D.t("spending_help")));
  }

  function render() {
    const now = Date.now();
    $("tiles").replaceChildren(...cfg.zones.map((z) => tile(z, now)));
    map(now);
    health(now);
    spending();
    const newest = [...lives.values()].map((l) => l.obj.as_of).filter(Boolean).sort().pop();
    $("status").textContent = D.fmt.date(now) + (newest ? " · " + D.t("updated_at", {time: D.fmt.time(newest)}) : "");
  }

  async function loadTrend(zoneId) {
    try {
      const body = await D.getJSON(`/v1/zones/${encodeURIComponent(zoneId)}/windows?hours=3`);
      trends.set(zoneId, body ? body.windows : []);
    } catch (e) { /* keep the last trend */ }
  }
  async function loadSpending() {  /* every zone of the city in one request */
    try {
      const body = await D.getJSON(`/v1/cities/${encodeURIComponent(cfg.city_id)}/spending`);
      spend.clear();
      for (const obj of (body && body.zones) || []) spend.set(obj.zone_id, obj);
    } catch (e) { /* keep what we have */ }
  }

  D.privacyLine($("privacy"));
  D.connect(cfg.city_id, {
    onLive: async (obj) => {
      if (!cfg.zones.some((z) => z.id === obj.zone_id)) return;
      const old = lives.get(obj.zone_id);
      lives.set(obj.zone_id, new D.Live(obj));
      render();
      if (old && old.obj.as_of !== obj.as_of) { await loadTrend(obj.zone_id); render(); }
    },
    onSpending: async () => { await loadSpending(); render(); },
    onState: (ok) => {
      const b = $("banner"); b.textContent = ok ? "" : D.t("reconnecting"); b.classList.toggle("show", !ok);
    },
  });
  (async () => {
    try { layout = await D.getJSON("/static/layouts.json"); } catch (e) { layout = null; }
    await Promise.all(cfg.zones.map((z) => loadTrend(z.id)));
    await loadSpending();
    render();
  })();
  render();
  setInterval(render, 5000);
})();
