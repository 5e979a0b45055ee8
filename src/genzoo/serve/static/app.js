// genzoo playground: the page's logic. Plain JavaScript, no libraries; talks to the JSON API of
// genzoo/serve/server.py. Every failure shows the server's one-line message in #error.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { runs: [], limits: {}, run: null, pixels: null, known: null, picture: null, painting: false };

async function api(path, body, raw) {
  const opts = {};
  if (raw !== undefined) {
    opts.method = "POST";
    opts.headers = { "Content-Type": raw.type };
    opts.body = raw;
  } else if (body !== undefined) {
    opts.method = "POST";
    opts.headers = { "Content-Type": "application/json" };
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data;
  try {
    data = await res.json();
  } catch (e) {
    throw new Error(`HTTP ${res.status}`);
  }
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function showError(e) {
  $("error").textContent = e ? String(e.message || e) : "";
  $("error").hidden = !e;
}

function guard(fn) {
  return async (...args) => {
    try {
      showError(null);
      await fn(...args);
    } catch (e) {
      showError(e);
    }
  };
}

function int(id) {
  return Number.parseInt($(id).value, 10);
}

function num(id) {
  return Number.parseFloat($(id).value);
}

function classValue() {
  const v = $("class").value;
  return state.run && state.run.conditional && v !== "" ? Number.parseInt(v, 10) : null;
}

// A job: POST, then poll with ?wait= until it ends, showing sub-pixels drawn for autoregressive models.
async function runJob(path, body, bar, status) {
  bar.value = 0;
  const started = await api(path, body);
  let job = started;
  while (job.state === "queued" || job.state === "running") {
    if (job.total) {
      bar.max = job.total;
      bar.value = job.done;
      status.textContent = `${job.done} / ${job.total} sub-pixels`;
    } else {
      status.textContent = `${job.state}...`;
    }
    job = await api(`/api/jobs/${started.job}?wait=0.25`);
  }
  if (job.state === "error") throw new Error(job.error);
  bar.max = 1;
  bar.value = 1;
  status.textContent = `done in ${job.seconds} s`;
  return job;
}

// -- runs ------------------------------------------------------------------------------------
async function loadRuns() {
  const info = await api("/api/runs");
  state.runs = info.runs;
  state.limits = info.limits;
  const select = $("run");
  select.replaceChildren(...info.runs.map((r) => new Option(`${r.name} (${r.model}, step ${r.step})`, r.index)));
  $("mask-preset").replaceChildren(...info.masks.map((m) => new Option(m, m)));
  $("sample-n").max = info.limits.samples;
  $("complete-samples").max = info.limits.completions;
  $("interp-steps").max = info.limits.path_steps;
  await selectRun(0);
}

async function selectRun(index) {
  const r = state.runs[index];
  state.run = r;
  $("run-info").textContent = `${r.family}; data ${r.data}; images ${r.shape.join(" x ")}`;
  $("class-label").hidden = !r.conditional;
  $("class").replaceChildren(new Option("each in turn", ""), ...r.classes.map((c, i) => new Option(c, i)));
  $("sample-panel").hidden = !r.can_sample;
  $("complete-panel").hidden = !r.can_complete;
  $("latent-panel").hidden = !r.latent;
  for (const id of ["complete-index", "latent-index", "interp-a", "interp-b"]) $(id).max = r.test_images - 1;
  if (r.can_complete) await loadTestImage();
  if (r.latent) {
    buildSliders(r.latent_dim);
    await decode();
  }
}

// -- completion: the image, the painted mask ----------------------------------------------
async function loadTestImage() {
  const img = await api("/api/image", { run: state.run.index, index: int("complete-index") });
  await setPicture(img);
}

async function uploadImage() {
  const file = $("complete-upload").files[0];
  if (!file) return;
  const img = await api(`/api/upload?run=${state.run.index}`, undefined, file);
  await setPicture(img);
}

async function setPicture(img) {
  const [, h, w] = img.shape;
  state.pixels = img.pixels;
  state.shape = img.shape;
  if (!state.known || state.known.length !== h * w) state.known = new Array(h * w).fill(1);
  const picture = new Image();
  await new Promise((resolve, reject) => {
    picture.onload = resolve;
    picture.onerror = () => reject(new Error("the image did not decode"));
    picture.src = img.image;
  });
  state.picture = picture;
  const canvas = $("mask-canvas");
  const scale = Math.max(1, Math.floor(320 / Math.max(h, w)));
  canvas.width = w * scale;
  canvas.height = h * scale;
  drawMask();
}

function drawMask() {
  const canvas = $("mask-canvas");
  const ctx = canvas.getContext("2d");
  if (!state.picture) return;
  const [, h, w] = state.shape;
  const sx = canvas.width / w;
  const sy = canvas.height / h;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(state.picture, 0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "rgba(255, 0, 255, 0.85)";
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!state.known[y * w + x]) ctx.fillRect(x * sx, y * sy, sx, sy);
    }
  }
  canvas.dataset.hidden = String(state.known.filter((k) => !k).length);
}

function paintAt(event) {
  const canvas = $("mask-canvas");
  const rect = canvas.getBoundingClientRect();
  const [, h, w] = state.shape;
  const cx = Math.floor(((event.clientX - rect.left) / rect.width) * w);
  const cy = Math.floor(((event.clientY - rect.top) / rect.height) * h);
  const radius = int("brush");
  const value = $("erase").checked ? 1 : 0;
  for (let y = cy - radius; y <= cy + radius; y++) {
    for (let x = cx - radius; x <= cx + radius; x++) {
      if (x >= 0 && y >= 0 && x < w && y < h && (x - cx) ** 2 + (y - cy) ** 2 <= radius * radius + radius) {
        state.known[y * w + x] = value;
      }
    }
  }
  drawMask();
}

async function applyPreset() {
  const m = await api("/api/mask", { run: state.run.index, mask: $("mask-preset").value });
  state.known = m.known;
  drawMask();
}

function clearMask() {
  state.known = state.known.map(() => 1);
  drawMask();
}

async function complete() {
  const body = {
    run: state.run.index,
    image: { pixels: state.pixels },
    known: state.known,
    samples: int("complete-samples"),
    seed: int("complete-seed"),
    temperature: num("complete-temperature"),
    class: classValue(),
  };
  const job = await runJob("/api/complete", body, $("complete-progress"), $("complete-status"));
  $("complete-image").src = job.image;
}

// -- sampling ---------------------------------------------------------------------------------
async function sample() {
  const body = {
    run: state.run.index,
    n: int("sample-n"),
    seed: int("sample-seed"),
    temperature: num("sample-temperature"),
    class: classValue(),
  };
  const job = await runJob("/api/sample", body, $("sample-progress"), $("sample-status"));
  $("sample-image").src = job.image;
}

// -- latent sliders: one request in flight, the newest values sent next -----------------------
let decoding = false;
let decodeAgain = false;
let decodes = 0;

function buildSliders(dim) {
  const box = $("sliders");
  box.replaceChildren();
  for (let i = 0; i < dim; i++) {
    const label = document.createElement("label");
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = -3;
    slider.max = 3;
    slider.step = 0.05;
    slider.value = 0;
    slider.className = "z-slider";
    slider.dataset.dim = i;
    const shownValue = document.createElement("output");
    shownValue.textContent = "0.00";
    slider.addEventListener("input", () => {
      shownValue.textContent = Number(slider.value).toFixed(2);
      guard(decode)();
    });
    label.append(`z${i} `, slider, shownValue);
    box.append(label);
  }
}

function code() {
  return [...document.querySelectorAll(".z-slider")].map((s) => Number.parseFloat(s.value));
}

function setCode(z) {
  document.querySelectorAll(".z-slider").forEach((s, i) => {
    s.value = z[i];
    s.nextSibling.textContent = Number(z[i]).toFixed(2);
  });
}

async function decode() {
  if (decoding) {
    decodeAgain = true;
    return;
  }
  decoding = true;
  try {
    do {
      decodeAgain = false;
      const started = performance.now();
      const out = await api("/api/decode", { run: state.run.index, z: code(), class: classValue() });
      $("latent-image").src = out.image;
      $("latent-image").dataset.decoded = String(++decodes); // tells apart two answers with the same picture
      $("latent-status").textContent = `decoded in ${Math.round(performance.now() - started)} ms`;
    } while (decodeAgain);
  } finally {
    decoding = false;
  }
}

async function encode() {
  const out = await api("/api/encode", { run: state.run.index, image: { test: int("latent-index") }, class: classValue() });
  setCode(out.z);
  await decode();
}

async function resetCode() {
  setCode(code().map(() => 0));
  await decode();
}

async function interpolatePath() {
  const out = await api("/api/interpolate", {
    run: state.run.index,
    a: { test: int("interp-a") },
    b: { test: int("interp-b") },
    steps: int("interp-steps"),
    kind: $("interp-kind").value,
    class: classValue(),
  });
  $("interp-image").src = out.image;
}

// -- compare -----------------------------------------------------------------------------------
function fmt(v) {
  if (v === null || v === undefined) return "\u2014";
  return Math.abs(v) < 10 ? v.toFixed(4) : v.toFixed(2);
}

async function compareTable() {
  const c = await api("/api/compare");
  const notes = [...c.notes, ...c.missing.map((m) => `${m.run}: ${m.why}`)];
  $("compare-notes").replaceChildren(...notes.map((n) => Object.assign(document.createElement("p"), { textContent: n })));
  const table = $("compare-table");
  const head = document.createElement("tr");
  head.append(Object.assign(document.createElement("th"), { textContent: "run" }));
  for (const col of c.columns) {
    const fields = Object.entries(col.fields).map(([k, v]) => `${k}=${v}`).join(", ");
    head.append(Object.assign(document.createElement("th"), { textContent: `${col.metric} [${col.unit}] ${fields}` }));
  }
  const rows = c.runs.map((name, j) => {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { textContent: name }));
    for (const v of c.rows[j]) tr.append(Object.assign(document.createElement("td"), { textContent: fmt(v) }));
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

// -- wiring ----------------------------------------------------------------------------------
function wire() {
  $("run").addEventListener("change", guard(() => selectRun(Number.parseInt($("run").value, 10))));
  $("sample-button").addEventListener("click", guard(sample));
  $("complete-load").addEventListener("click", guard(loadTestImage));
  $("complete-upload").addEventListener("change", guard(uploadImage));
  $("mask-apply").addEventListener("click", guard(applyPreset));
  $("mask-clear").addEventListener("click", clearMask);
  $("complete-button").addEventListener("click", guard(complete));
  $("latent-encode").addEventListener("click", guard(encode));
  $("latent-reset").addEventListener("click", guard(resetCode));
  $("interp-button").addEventListener("click", guard(interpolatePath));
  $("compare-button").addEventListener("click", guard(compareTable));
  const canvas = $("mask-canvas");
  canvas.addEventListener("mousedown", (e) => {
    if (!state.picture) return;
    state.painting = true;
    paintAt(e);
  });
  canvas.addEventListener("mousemove", (e) => {
    if (state.painting) paintAt(e);
  });
  window.addEventListener("mouseup", () => {
    state.painting = false;
  });
}

wire();
guard(async () => {
  await loadRuns();
  document.body.dataset.ready = "1";
})();
