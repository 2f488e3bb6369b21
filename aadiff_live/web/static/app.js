// The aadiff-live status page. Everything shown comes from /api/status and is written with textContent only
// (never as HTML); the Content-Security-Policy allows no inline script.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const auth = { Authorization: "Bearer " + token };
  const $ = (id) => document.getElementById(id);
  const COLOURS = ["#ffffff", "#6aa9ff", "#ffb347", "#3ecf6e", "#ff5a4f"];
  let status = null;
  let previewMs = 250;
  let previewUrl = null;
  let scenesShown = "";
  let gainTouched = false;

  function text(id, value) {
    const el = $(id);
    const t = value === null || value === undefined || value === "" ? "-" : String(value);
    if (el.textContent !== t) el.textContent = t;
  }

  function duration(s) {
    s = Math.floor(s);
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min " + (s % 60) + " s";
  }

  function bytes(n) {
    if (n === null || n === undefined) return null;
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function fillList(ul, items, make) {
    while (ul.firstChild) ul.removeChild(ul.firstChild);
    for (const item of items) ul.appendChild(make(item));
  }

  function render(s) {
    status = s;
    const st = $("state");
    st.className = "state " + (s.healthy ? "ok" : "alert");
    st.textContent = s.healthy ? "running" : (s.fresh ? "alert" : "not running");
    text("clock", s.time_utc);
    text("fps", s.fps);
    text("lat50", s.latency_ms_p50);
    text("lat95", s.latency_ms_p95);
    text("atlas", s.atlas);
    text("level", s.level_db);
    text("input-status", s.input_status);
    text("input", s.input);
    text("prompt-now", s.prompt);
    text("words", (s.words || []).join(", "));
    text("weight", s.weight);
    const hasTempo = !!s.tempo || (s.bpm !== null && s.bpm !== undefined);
    $("bpm-label").hidden = !hasTempo;
    $("bpm-box").hidden = !hasTempo;
    if (hasTempo) text("bpm", s.tempo || s.bpm + " BPM");
    text("gain", s.gain);
    text("seed", s.seed);
    text("scene", s.scene);
    text("frozen", s.frozen ? "yes" : "no");
    text("uptime", duration(s.uptime_s || 0));
    const rec = s.recording;
    text("recording", rec ? (rec.path || "starting") + " (segment " + rec.segments + ", " +
      (bytes(s.recording_bytes) || "-") + ")" : "off");
    text("disk", bytes(s.disk_free_bytes));
    text("notes", (s.notes || []).join(" · "));
    const alerts = s.alerts || [];
    $("alerts-box").hidden = alerts.length === 0;
    fillList($("alerts"), alerts, (a) => { const li = document.createElement("li"); li.textContent = a; return li; });
    fillList($("routes"), s.routes || [], (r) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = r.label + " " + r.weight;
      const m = document.createElement("meter");
      m.min = 0; m.max = 1; m.value = r.fill || 0;
      li.append(name, m);
      return li;
    });
    $("freeze").classList.toggle("on", !!s.frozen);
    $("freeze").textContent = s.frozen ? "Frozen (tap to release)" : "Freeze";
    const scenes = (s.scenes || []).join("\n");
    if (scenes !== scenesShown) {
      scenesShown = scenes;
      fillList($("scene-input"), s.scenes || [], (name) => {
        const o = document.createElement("option");
        o.value = String((s.scenes || []).indexOf(name) + 1);
        o.textContent = o.value + ": " + name;
        return o;
      });
      $("scene-send").disabled = !(s.scenes || []).length;
    }
    if (s.refused) text("control-result", "refused: " + s.refused);
    if (!gainTouched && s.gain !== null) { $("gain-input").value = s.gain; $("gain-out").textContent = s.gain; }
    if (s.preview_fps) previewMs = 1000 / s.preview_fps;
    plot(s);
    document.body.dataset.live = "1";
  }

  function plot(s) {
    const c = $("plot");
    const w = c.clientWidth || 600, h = c.clientHeight || 160;
    if (c.width !== w * devicePixelRatio) { c.width = w * devicePixelRatio; c.height = h * devicePixelRatio; }
    const g = c.getContext("2d");
    g.setTransform(devicePixelRatio, 0, 0, devicePixelRatio, 0, 0);
    g.clearRect(0, 0, w, h);
    const rows = s.history || [];
    const labels = s.history_labels || [];
    const legend = $("legend");
    fillList(legend, labels, (label) => {
      const sp = document.createElement("span");
      sp.textContent = "\u25A0 " + label;
      sp.style.color = COLOURS[labels.indexOf(label) % COLOURS.length];
      return sp;
    });
    if (rows.length < 2) return;
    const t1 = rows[rows.length - 1][0], t0 = t1 - 60;
    const lo = Math.min(s.w_min, 0), hi = Math.max(s.w_max, 1);
    for (let k = 1; k < rows[0].length; k++) {
      g.strokeStyle = COLOURS[(k - 1) % COLOURS.length];
      g.lineWidth = k === 1 ? 1 : 1.5;
      g.beginPath();
      rows.forEach((r, i) => {
        const x = (r[0] - t0) / 60 * w;
        const v = k === 1 ? r[k] : (r[k] - lo) / ((hi - lo) || 1);
        const y = h - 4 - Math.max(0, Math.min(1, v)) * (h - 8);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/status", { headers: auth, cache: "no-store" });
      if (r.status === 401) { $("state").textContent = "wrong token"; $("state").className = "state alert"; }
      else if (r.ok) render(await r.json());
    } catch (e) {
      $("state").textContent = "offline";
      $("state").className = "state alert";
    }
    setTimeout(poll, 500);
  }

  async function preview() {
    try {
      const r = await fetch("/api/preview.jpg", { headers: auth, cache: "no-store" });
      if (r.status === 200) {
        const url = URL.createObjectURL(await r.blob());
        $("preview").src = url;
        if (previewUrl) URL.revokeObjectURL(previewUrl);
        previewUrl = url;
      }
    } catch (e) { /* the status poll says offline */ }
    setTimeout(preview, document.hidden ? 2000 : previewMs);
  }

  async function send(name, value) {
    text("control-result", "sending " + name + " ...");
    try {
      const r = await fetch("/api/control", {
        method: "POST", headers: { ...auth, "Content-Type": "application/json" },
        body: JSON.stringify({ name: name, value: value }),
      });
      const body = await r.json().catch(() => ({}));
      text("control-result", r.ok ? name + " sent" : "refused: " + (body.error || r.status));
    } catch (e) {
      text("control-result", "not sent: the show cannot be reached");
    }
  }

  $("prompt-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("prompt-input").value.trim();
    if (v) send("prompt", v);
  });
  $("gain-input").addEventListener("input", () => {
    gainTouched = true; $("gain-out").textContent = $("gain-input").value; });
  $("gain-input").addEventListener("change", () => send("gain", parseFloat($("gain-input").value)));
  $("scene-send").addEventListener("click", () => send("scene", parseInt($("scene-input").value, 10)));
  $("seed-send").addEventListener("click", () => send("seed", parseInt($("seed-input").value, 10)));
  $("seed-random").addEventListener("click", () => {
    const seed = Math.floor(Math.random() * 4294967295);
    $("seed-input").value = String(seed);
    send("seed", seed);
  });
  $("freeze").addEventListener("click", () => send("freeze", status && status.frozen ? 0 : 1));
  poll();
  preview();
})();
