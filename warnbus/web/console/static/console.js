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
  }
  function refreshChase() {
    const box = document.getElementById("chase");
    if (!box) return;
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((t) => { box.innerHTML = t; }).catch(() => {});
  }

  // ---------------------------------------------------------------- compose
  const form = document.getElementById("compose");
  if (!form) return;
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
    lv.innerHTML = want.map((l) => `<option value="${l}">${LEVEL_ZH[l]}</option>`).join("");
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
  for (const t of form.querySelectorAll("input.town")) {
    t.addEventListener("change", () => {
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
  document.getElementById("preview-btn").addEventListener("click", () => {
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
  function esc(s) {
    return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  }
})();
