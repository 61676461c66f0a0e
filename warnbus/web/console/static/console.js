// 预警叫应值守台: small vanilla JS, no build step. Pages work without it; it adds the live
// board (server-sent events), the compose form's pre-fill and reach preview, confirmations.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const LEVEL_ZH = { red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色" };

  // One click plus confirmation for buttons that publish, cancel or send someone out.
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-confirm]");
    if (b && !window.confirm(b.dataset.confirm)) ev.preventDefault();
  });

  // ---------------------------------------------------------------- live board
  const board = document.getElementById("board");
  if (board && window.EventSource) {
    let unreached = null;
    const es = new EventSource(board.dataset.events);
    es.addEventListener("state", (ev) => {
      const s = JSON.parse(ev.data);
      for (const [k, v] of Object.entries(s.counts || {})) {
        const el = board.querySelector(`[data-c="${k}"]`);
        if (el) el.textContent = v;
      }
      for (const p of board.querySelectorAll("svg.map path[data-g]")) {
        const st = s.grids[p.dataset.g] || "none";
        const cls = "s-" + st;
        if (p.getAttribute("class") !== cls) p.setAttribute("class", cls);
      }
      for (const cell of board.querySelectorAll("[data-r][data-k]")) {
        const c = (s.towns[cell.dataset.r] || s.villages[cell.dataset.r] || {});
        cell.textContent = c[cell.dataset.k] || 0;
      }
      const names = { active: "进行中", cancelled: "已解除", expired: "已过期", done: "已完成" };
      const cs = document.getElementById("cstate");
      if (cs) cs.textContent = names[s.state] || s.state;
      board.dataset.state = s.state;
      const u = (s.grid_counts.unreached || 0) + "/" + (s.grid_counts.escalated || 0);
      if (unreached !== null && u !== unreached) refreshChase();
      unreached = u;
      board.dataset.updates = String(Number(board.dataset.updates || 0) + 1);
    });
    // The session ended (signed out, password reset, account disabled): say so, stop.
    es.addEventListener("end", (ev) => {
      es.close();
      let text = "登录已失效，请重新登录";
      try { text = JSON.parse(ev.data).message || text; } catch (e) { /* keep the default */ }
      liveNotice(text);
    });
    // Refused (too many live boards, signed out) or gone for good: the figures are frozen.
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) liveNotice("实时更新已停止，请刷新页面");
    });
  }
  function liveNotice(text) {
    let p = document.getElementById("live-ended");
    if (!p) {
      p = document.createElement("p");
      p.id = "live-ended";
      p.className = "err";
      board.prepend(p);
    }
    p.textContent = text;
  }
  function refreshChase() {
    const box = document.getElementById("chase");
    if (!box) return;
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((t) => { box.innerHTML = t; }).catch(() => {});
  }

  // Printable pages: a button, not an inline handler (the CSP allows no inline script).
  for (const b of document.querySelectorAll("[data-print]")) {
    b.addEventListener("click", () => window.print());
  }

  // ---------------------------------------------------------------- compose
  const form = document.getElementById("compose");
  if (!form) return;
  const draw = drawTool(document.getElementById("compose-map"), document.getElementById("polygon"));
  const hazards = {};
  for (const item of (form.dataset.hazards || "").split(";")) {
    const [k, lv] = item.split(":");
    if (k) hazards[k] = lv.split(",");
  }
  const hz = document.getElementById("hazard"), lv = document.getElementById("level");
  const headline = document.getElementById("headline"), instr = document.getElementById("instruction");
  let filled = { headline: headline.value, instruction: instr.value };
  function levels() {
    const want = hazards[hz.value] || Object.keys(LEVEL_ZH);
    const cur = lv.value;
    // No default level: the officer chooses one, after the hazard too.
    lv.innerHTML = '<option value="">请选择级别</option>' +
      want.map((l) => `<option value="${l}">${LEVEL_ZH[l]}</option>`).join("");
    if (want.includes(cur)) lv.value = cur;
  }
  function prefill() {
    if (!hz.value) return;
    const q = new URLSearchParams({ hazard: hz.value, level: lv.value });
    fetch("/console/compose/defaults?" + q, { credentials: "same-origin" })
      .then((r) => r.json()).then((d) => {
        // Only replace what the officer has not edited since the last pre-fill.
        if (headline.value === filled.headline) headline.value = d.headline;
        if (instr.value === filled.instruction) instr.value = d.instruction;
        filled = { headline: d.headline, instruction: d.instruction };
      });
  }
  hz.addEventListener("change", () => { levels(); prefill(); });
  lv.addEventListener("change", prefill);
  const whole = document.getElementById("whole-county");
  if (whole) {  // 全县 ticks (and shows) every township and village
    whole.addEventListener("change", () => {
      for (const b of form.querySelectorAll("input.town, input.vil")) b.checked = whole.checked;
    });
  }
  for (const t of form.querySelectorAll("input.town")) {
    t.addEventListener("change", () => {
      if (whole && !t.checked) whole.checked = false;
      for (const v of form.querySelectorAll(`input.vil[data-town="${t.value}"]`)) v.checked = t.checked;
    });
  }
  for (const v of form.querySelectorAll("input.vil")) {
    v.addEventListener("change", () => {
      const t = form.querySelector(`input.town[value="${v.dataset.town}"]`);
      const all = [...form.querySelectorAll(`input.vil[data-town="${v.dataset.town}"]`)];
      t.checked = all.every((x) => x.checked);
    });
  }
  form.addEventListener("submit", (ev) => {
    if (draw && !draw.settle()) ev.preventDefault();
  });
  document.getElementById("preview-btn").addEventListener("click", () => {
    if (draw && !draw.settle()) return;
    const body = new URLSearchParams(new FormData(form));
    const box = document.getElementById("preview");
    box.innerHTML = '<p class="muted">计算中…</p>';
    fetch("/console/compose/preview", { method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf } })
      .then((r) => r.json()).then((d) => {
        if (d.errors) {
          box.innerHTML = '<p class="err">' + Object.values(d.errors).map(esc).join("<br>") + "</p>";
          return;
        }
        box.innerHTML = d.html;
        const sel = new Set(d.grids);
        for (const p of document.querySelectorAll("svg.map path[data-g]")) {
          p.classList.toggle("sel", sel.has(p.dataset.g));
        }
      }).catch(() => { box.innerHTML = '<p class="err">预览失败，请重试</p>'; });
  });

  // ---------------------------------------------------------------- draw an area on the map
  // Click (or tap) corners on the offline map; the closed outline follows each click. A
  // point on the screen goes back through the map's own projection (data-proj, written by
  // svgmap.py) to latitude and longitude, so the server draws the ring exactly where it was
  // drawn. The form sends the ring in CAP form: "lat,lon" pairs, first = last.
  function drawTool(svg, input) {
    if (!svg || !input || !svg.dataset.proj) return null;
    const NS = "http://www.w3.org/2000/svg";
    const [pad, lon0, lat1, kx, ky] = svg.dataset.proj.split(" ").map(Number);
    const xy = (p) => [pad + (p[1] - lon0) * kx, pad + (lat1 - p[0]) * ky];
    const latlon = (x, y) => [round(lat1 - (y - pad) / ky), round(lon0 + (x - pad) / kx)];
    const $ = (id) => document.getElementById(id);
    const ui = { draw: $("draw-btn"), undo: $("undo-btn"), clear: $("clear-btn"),
      finish: $("finish-btn"), state: $("drawn-state"), hint: $("draw-hint") };
    const hintText = ui.hint ? ui.hint.textContent : "";
    const vb = svg.viewBox.baseVal;
    const dot = Math.max(vb.width, vb.height) / 130;
    const layer = document.createElementNS(NS, "g");
    const shape = document.createElementNS(NS, "polygon");
    const dots = document.createElementNS(NS, "g");
    layer.setAttribute("class", "draw-layer");
    layer.append(shape, dots);
    svg.appendChild(layer);
    let pts = [];  // corners [lat, lon], the ring left open
    let active = false;

    const closed = input.value.trim().split(/\s+/).filter(Boolean)
      .map((t) => t.split(",").map(Number));
    if (closed.length >= 4 && closed.every((p) => p.length === 2 && p.every(isFinite))) {
      pts = closed.slice(0, -1);  // a form shown again (error, update) keeps its area
    }

    function round(v) { return Math.round(v * 1e6) / 1e6; }
    function say(text, bad) {
      if (!ui.hint) return;
      ui.hint.textContent = text || hintText;
      ui.hint.classList.toggle("err", !!bad);
    }
    function capText() {
      return pts.concat([pts[0]]).map((p) => p[0] + "," + p[1]).join(" ");
    }
    function render() {
      shape.setAttribute("points", pts.map((p) => xy(p).join(",")).join(" "));
      shape.setAttribute("class", "draw-shape" + (active ? " active" : ""));
      dots.replaceChildren(...pts.map((p, i) => {
        const c = document.createElementNS(NS, "circle");
        const [x, y] = xy(p);
        c.setAttribute("cx", x); c.setAttribute("cy", y); c.setAttribute("r", dot);
        c.setAttribute("class", "draw-dot" + (i === 0 ? " first" : ""));
        return c;
      }));
      svg.classList.toggle("drawing", active);
      ui.draw.disabled = active;
      ui.draw.textContent = active ? "绘制中…" : (pts.length ? "重新绘制" : "在地图上绘制区域");
      ui.undo.disabled = pts.length === 0;
      ui.clear.disabled = pts.length === 0;
      ui.finish.disabled = !active || pts.length < 3;
      ui.state.textContent = active ? `绘制中（${pts.length}个点，未完成）`
        : (pts.length ? `已绘制（${pts.length}个顶点）` : "未绘制");
      input.value = !active && pts.length >= 3 ? capText() : "";
    }
    function stale() {
      const box = document.getElementById("preview");
      if (box && box.querySelector("[data-p]")) {
        box.innerHTML = '<p class="muted">区域已改变，请重新预览覆盖范围。</p>';
      }
    }
    function crosses() {
      // Two edges of the closed ring that are not neighbours must not meet.
      const n = pts.length;
      const side = (a, b, c) => Math.sign((b[1] - a[1]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[1] - a[1]));
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          if (j === i + 1 || (i === 0 && j === n - 1)) continue;
          const a = pts[i], b = pts[(i + 1) % n], c = pts[j], d = pts[(j + 1) % n];
          if (side(a, b, c) * side(a, b, d) < 0 && side(c, d, a) * side(c, d, b) < 0) return true;
        }
      }
      return false;
    }
    function finish() {
      if (pts.length < 3) { say("至少需要3个点才能围成区域", true); return false; }
      if (crosses()) { say("区域边界不能交叉：请撤销最后几个点后重新点击", true); return false; }
      active = false;
      say("区域已闭合。可修改区域名称，或点击“预览覆盖范围”。");
      render();
      return true;
    }
    svg.addEventListener("click", (ev) => {
      if (!active) return;
      ev.preventDefault();
      const m = svg.getScreenCTM();
      if (!m) return;
      const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
      if (pts.length >= 3) {  // a click on the first corner closes the ring
        const [fx, fy] = xy(pts[0]);
        if (Math.hypot(fx - p.x, fy - p.y) * m.a < 14) { finish(); return; }
      }
      const q = latlon(p.x, p.y);
      const last = pts[pts.length - 1];
      if (last && last[0] === q[0] && last[1] === q[1]) return;  // a double click
      pts.push(q);
      say("继续点击添加顶点；点击“完成”或首个点闭合区域。");
      stale();
      render();
    });
    ui.draw.addEventListener("click", () => {
      pts = []; active = true; stale(); say(); render();
    });
    ui.undo.addEventListener("click", () => {
      pts.pop(); active = pts.length > 0; stale(); say(); render();
    });
    ui.clear.addEventListener("click", () => {
      pts = []; active = false; stale(); say(); render();
    });
    ui.finish.addEventListener("click", finish);
    render();
    // Before the form is sent: a drawing still open is closed, or the officer is told why not.
    return { settle: () => !active || finish() };
  }

  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
})();
