// 预警叫应值守台: small vanilla JS, no build step. Pages work without it; it adds the live
// board (server-sent events), the compose form's pre-fill and reach preview, confirmations.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const LEVEL_ZH = { red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色" };

  // A message after an action (?msg=, signed for this session and page: base.flash) is shown
  // once: the address drops it, so a reload, the history or a copied link never repeats it.
  const here = new URL(window.location.href);
  if (["msg", "ms", "mt"].some((k) => here.searchParams.has(k))) {
    for (const k of ["msg", "ms", "mt"]) here.searchParams.delete(k);
    window.history.replaceState(window.history.state, "", here.pathname + here.search + here.hash);
  }

  // One click plus confirmation for buttons that publish, cancel or send someone out.
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-confirm]");
    if (b && !window.confirm(b.dataset.confirm)) ev.preventDefault();
  });

  // ---------------------------------------------------------------- notices and sound
  // A new message (alert, update, cancel) and a draft waiting for approval raise a notice
  // on any page that listens (the desk, a board): a bar, the tab's title and a beep made
  // with Web Audio (no sound file: nothing is downloaded). Browsers let a page make sound
  // only after a click on it: the switch says so, and the first click anywhere starts it.
  const KIND_ZH = { Alert: "新预警", Update: "预警更新", Cancel: "预警解除" };
  let title = document.title;  // a board's follows its headline (an Update may change it)
  let audio = null;
  const soundWanted = () => localStorage.getItem("wb-sound") !== "off";
  function audioCtx() {
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!audio && AC) audio = new AC();
    if (audio && audio.state === "suspended") audio.resume().then(soundState, soundState);
    return audio;
  }
  function soundState() {
    const btn = document.getElementById("sound-btn");
    const st = document.getElementById("sound-state");
    const running = !!audio && audio.state === "running";
    document.body.dataset.sound = soundWanted() ? (running ? "on" : "waiting") : "off";
    if (!btn) return;
    if (!soundWanted()) { btn.textContent = "开启声音提示"; st.textContent = "声音提示已关闭"; }
    else if (running) { btn.textContent = "关闭声音提示"; st.textContent = "声音提示已开启"; }
    else { btn.textContent = "开启声音提示"; st.textContent = "点击页面任意处后可响铃"; }
  }
  function beep(times) {
    if (!soundWanted()) return;
    const ac = audioCtx();
    if (!ac || ac.state !== "running") return;
    for (let i = 0; i < times; i++) {
      const o = ac.createOscillator(), g = ac.createGain(), t0 = ac.currentTime + i * 0.35;
      o.type = "square";
      o.frequency.value = i % 2 ? 660 : 880;
      g.gain.setValueAtTime(0.12, t0);
      g.gain.exponentialRampToValueAtTime(0.001, t0 + 0.3);
      o.connect(g).connect(ac.destination);
      o.start(t0);
      o.stop(t0 + 0.3);
    }
    document.body.dataset.beeps = String(Number(document.body.dataset.beeps || 0) + 1);
  }
  if (soundWanted()) {
    audioCtx();
    const start = () => { audioCtx(); soundState(); };
    document.addEventListener("pointerdown", start, { once: true });
    document.addEventListener("keydown", start, { once: true });
  }
  const soundBtn = document.getElementById("sound-btn");
  if (soundBtn) {
    soundBtn.addEventListener("click", () => {
      const running = !!audio && audio.state === "running";
      localStorage.setItem("wb-sound", soundWanted() && running ? "off" : "on");
      if (soundWanted()) { audioCtx(); beep(1); }
      setTimeout(soundState, 50);
    });
  }
  soundState();

  // What the page showed when it was served is known; a notice is for what comes after.
  const notices = document.getElementById("notices");
  const seen = new Set(((notices && notices.dataset.known) || "").split(" ").filter(Boolean));
  function deskNews(d) {
    if (!d || !notices) return;
    let fresh = 0;
    for (const m of d.msgs || []) {
      if (seen.has(m.id)) continue;
      seen.add(m.id);
      fresh += 1;
      notice("n-" + m.type.toLowerCase(), KIND_ZH[m.type] || "新消息",
        level(m.level) + (m.drill ? '<span class="drill">演练</span>' : "") + esc(m.headline) +
        '<span class="muted">（' + esc(m.source) + "）</span>", "/console/campaigns/" + m.cid);
    }
    for (const r of d.drafts || []) {
      if (seen.has(r.id)) continue;
      seen.add(r.id);
      fresh += 1;
      notice("n-draft", "待审批", level(r.level) + esc(r.headline) +
        '<span class="muted">（起草 ' + esc(r.by) + "）</span>", "/console/drafts/" + r.id);
    }
    if (fresh) {
      beep(3);
      document.title = "【" + fresh + "条新提示】" + title;
    }
  }
  function notice(cls, kind, body, href) {
    const box = document.createElement("div");
    box.className = "notice " + cls;
    box.innerHTML = "<b>" + esc(kind) + "</b> " + body + ' <a href="' + esc(href) + '">查看</a>' +
      '<button type="button" class="dismiss">知道了</button>';
    notices.prepend(box);
    document.body.dataset.notices = String(notices.children.length);
  }
  if (notices) {
    notices.addEventListener("click", (ev) => {
      const b = ev.target.closest(".dismiss");
      if (!b) return;
      b.parentElement.remove();
      document.body.dataset.notices = String(notices.children.length);
      if (!notices.children.length) document.title = title;
    });
  }
  function level(lv) {
    return lv ? '<span class="lv lv-' + esc(lv) + '">' + esc(LEVEL_ZH[lv] || lv) + "</span> " : "";
  }

  // ---------------------------------------------------------------- the desk (home page)
  const deskPage = document.getElementById("desk");
  if (deskPage && window.EventSource) {
    const es = new EventSource(deskPage.dataset.events);
    es.addEventListener("desk", (ev) => {
      const s = JSON.parse(ev.data);
      const live = document.getElementById("live");
      if (live && live.innerHTML !== s.live) live.innerHTML = s.live;
      const drafts = document.getElementById("drafts-box");
      if (drafts && s.drafts !== undefined && drafts.innerHTML !== s.drafts) drafts.innerHTML = s.drafts;
      deskNews(s.desk);
      deskPage.dataset.updates = String(Number(deskPage.dataset.updates || 0) + 1);
    });
    endings(es, deskPage);
  }

  // ---------------------------------------------------------------- live board
  const board = document.getElementById("board");
  if (board && window.EventSource) {
    let grids = null;
    const es = new EventSource(board.dataset.events);
    es.addEventListener("state", (ev) => {
      const s = JSON.parse(ev.data);
      for (const el of board.querySelectorAll("[data-c]")) {
        const v = (s.counts || {})[el.dataset.c];
        if (v !== undefined || el.dataset.c.match(/^([pgs]|site)_/)) el.textContent = v || 0;
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
      board.dataset.state = s.state;
      // The header (level, area, state, the alert's text, the message history, banners)
      // comes as a version: a new one fetches the header's parts.
      if (s.head && s.head !== board.dataset.head) refreshHead(s.head);
      const g = JSON.stringify([s.grid_counts, s.site_counts]) + "/" +
        ((s.counts || {}).p_confirmed || 0) + "/" + s.head;
      if (grids !== null && g !== grids) refreshChase();
      grids = g;
      deskNews(s.desk);
      board.dataset.updates = String(Number(board.dataset.updates || 0) + 1);
    });
    endings(es, board);
    tickElapsed();
  }
  function endings(es, where) {
    // The session ended (signed out, password reset, account disabled): say so, stop.
    es.addEventListener("end", (ev) => {
      es.close();
      let text = "登录已失效，请重新登录";
      try { text = JSON.parse(ev.data).message || text; } catch (e) { /* keep the default */ }
      liveNotice(where, text);
    });
    // Refused (too many live boards, signed out) or gone for good: the figures are frozen.
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) liveNotice(where, "实时更新已停止，请刷新页面");
    });
  }
  function liveNotice(where, text) {
    let p = document.getElementById("live-ended");
    if (!p) {
      p = document.createElement("p");
      p.id = "live-ended";
      p.className = "err";
      where.prepend(p);
    }
    p.textContent = text;
  }
  // Elapsed time since issue, counted by the page from the server's clock at load; it stops
  // at the campaign's end (data-end, which a new header brings).
  function tickElapsed() {
    const loaded = Date.now(), at = Number(board.dataset.since);
    const show = () => {
      const el = document.getElementById("elapsed");  // a new header brings a new one
      if (!el) return;
      const end = Number(board.dataset.end || 0);
      const now = end || at + (Date.now() - loaded) / 1000;
      el.textContent = duration(now - Number(board.dataset.t0));
    };
    show();
    setInterval(show, 1000);
  }
  // The header's parts for version `want` (at most one fetch at a time; a version that comes
  // meanwhile is fetched after it; a failed fetch is tried again a few times, 3 s apart: the
  // stream sends nothing more while nothing changes). The tools wait while the officer types.
  let headBusy = false, headWant = "", headFailed = 0;
  function refreshHead(want) {
    headWant = want;
    if (headBusy) return;
    headBusy = true;
    let ok = false, retry = false;
    fetch(board.dataset.headSrc, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((d) => {
        for (const [id, key] of [["board-head", "head"], ["alert-text", "alert"],
          ["history", "history"], ["board-map", "map"], ["board-regions", "regions"]]) {
          const el = document.getElementById(id);
          if (el && d[key] !== undefined && el.innerHTML !== d[key]) el.innerHTML = d[key];
        }
        const h1 = document.querySelector("main h1");
        if (h1 && d.title && h1.textContent !== d.title) {
          const was = title;
          title = d.title + " · 预警叫应值守台";
          document.title = document.title.split(was).join(title);
          h1.textContent = d.title;
        }
        board.dataset.t0 = String(d.t0);
        board.dataset.end = String(d.end || 0);
        putTools(d.tools);
        board.dataset.head = want;
        board.dataset.headRefreshed = String(Number(board.dataset.headRefreshed || 0) + 1);
        ok = true;
        headFailed = 0;
      })
      // Signed out (401/403): the stream's end event says so; anything else passes.
      .catch((status) => { retry = status !== 401 && status !== 403 && ++headFailed <= 10; })
      .finally(() => {
        headBusy = false;
        if (ok && headWant !== board.dataset.head) refreshHead(headWant);
        else if (retry) setTimeout(() => refreshHead(headWant), 3000);
      });
  }
  let toolsWant = "", toolsTimer = 0;
  function putTools(html) {
    toolsWant = html;
    if (toolsTimer) return;
    const box = document.getElementById("board-tools");
    if (!box || box.innerHTML === toolsWant) return;
    const typing = box.contains(document.activeElement) ||
      [...box.querySelectorAll("input[name=reason]")].some((i) => i.value);
    if (typing) {
      toolsTimer = setTimeout(() => { toolsTimer = 0; putTools(toolsWant); }, 1000);
      return;
    }
    box.innerHTML = toolsWant;
  }
  function duration(sec) {
    const s = Math.max(0, Math.floor(sec));
    if (s < 60) return s + "秒";
    if (s < 3600) return Math.floor(s / 60) + "分" + String(s % 60).padStart(2, "0") + "秒";
    return Math.floor(s / 3600) + "小时" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "分";
  }
  // The pending list follows the grids: at most one refresh every 2 s, and never while the
  // officer is typing in one of its forms (a refresh would drop what they typed).
  let chaseBusy = false, chaseAgain = false, chaseLast = 0;
  function refreshChase() {
    const box = document.getElementById("chase");
    if (!box) return;
    const typing = box.contains(document.activeElement) ||
      [...box.querySelectorAll("input[name=reason], input[name=note]")].some((i) => i.value);
    const wait = 2000 - (Date.now() - chaseLast);
    if (chaseBusy || typing || wait > 0) {
      if (!chaseAgain) {
        chaseAgain = true;
        setTimeout(() => { chaseAgain = false; refreshChase(); }, Math.max(wait, 1000));
      }
      return;
    }
    chaseBusy = true;
    chaseLast = Date.now();
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text().then((t) => [t, r.headers.get("X-Waiting")]) : Promise.reject(r.status)))
      .then(([t, n]) => {
        box.innerHTML = t;
        const w = document.querySelector('[data-c="waiting"]');
        if (w && n !== null) w.textContent = n;
        box.dataset.refreshed = String(Number(box.dataset.refreshed || 0) + 1);
      })
      .catch(() => {})
      .finally(() => { chaseBusy = false; });
  }
  // A grid clicked on the board's map (or its name): its people and calls in a panel.
  const panel = document.getElementById("grid-panel");
  if (board && panel) {
    board.addEventListener("click", (ev) => {
      if (ev.target.closest("#grid-panel .close")) { panel.hidden = true; return; }
      const hit = ev.target.closest("svg.map path[data-g]");
      if (!hit || document.querySelector("svg.map.drawing")) return;
      ev.preventDefault();
      fetch(board.dataset.gridSrc + encodeURIComponent(hit.dataset.g) + "?part=panel",
        { credentials: "same-origin" })
        .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
        .then((t) => {
          panel.innerHTML = t;
          panel.hidden = false;
          panel.dataset.grid = hit.dataset.g;
          panel.scrollIntoView({ block: "nearest" });
        }).catch(() => {});
    });
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
