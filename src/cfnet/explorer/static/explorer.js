// cfnet explorer: the page's logic, plain JavaScript (no library, nothing loaded from elsewhere).
//
// One forward pass per image happens on the server when an image is opened; a click asks the
// server for the query cell's p(c|t) rows of every head (the K mixture components and their
// combination) and draws them. Switching heads or components redraws from that answer: no request.
"use strict";

const $ = (id) => document.getElementById(id);
const DISPLAY = 512; // px: the long side the image is shown at (pixelated when enlarged)
const state = {
  info: null, image: null, answer: null, rows: null, head: 0, map: 0, scale: 1,
  busy: false, pending: null, pairs: null,
};

// ---- talking to the server -------------------------------------------------------------------
async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function guarded(action) {
  try {
    showError("");
    return await action();
  } catch (err) {
    showError(err.message);
  }
}

// ---- colours ---------------------------------------------------------------------------------
// "hot": black → red → yellow → white. r + g + b grows linearly with the value, so the map a
// canvas shows can be read back from its pixels and range (the browser test does).
function hot(v) {
  const c = (t) => Math.round(255 * Math.min(1, Math.max(0, t)));
  return [c(3 * v), c(3 * v - 1), c(3 * v - 2)];
}

function rgb(colour) {
  return `rgb(${colour[0]}, ${colour[1]}, ${colour[2]})`;
}

function swatch(classId) {
  const span = document.createElement("span");
  span.className = "swatch";
  span.style.background = rgb(state.info.palette[classId]);
  return span;
}

// ---- the model -------------------------------------------------------------------------------
async function start() {
  const info = await api("/api/info");
  state.info = info;
  $("model-line").textContent =
    `${info.checkpoint} · ${info.model} · dataset ${info.dataset} (${info.class_names.length} classes)`;
  $("split-label").textContent = info.split;
  $("index").max = Math.max(info.images - 1, 0);
  $("image-count").textContent = info.images
    ? `of 0–${info.images - 1}` : `(none: ${info.dataset_note})`;
  $("name").placeholder = info.example_name || "";
  const legend = $("legend");
  info.class_names.forEach((name, c) => {
    const item = document.createElement("li");
    item.append(swatch(c), `${c} ${name}`);
    legend.append(item);
  });
  if (info.message) {
    $("no-map").textContent = `No co-occurrence map: ${info.message}. The page shows the prediction only.`;
    $("no-map").hidden = false;
    $("map-controls").hidden = true;
    $("heat-slider").hidden = true;
  } else {
    choices("heads", "head", Array.from({ length: info.heads }, (_, h) => `head ${h}`), (h) => { state.head = h; draw(); });
  }
  pollMatrix();
}

function choices(container, name, labels, onPick) {
  const box = $(container);
  box.replaceChildren();
  labels.forEach((label, i) => {
    const input = Object.assign(document.createElement("input"), {
      type: "radio", name, id: `${name}-${i}`, value: i, checked: i === 0,
    });
    input.addEventListener("change", () => onPick(i));
    const tag = document.createElement("label");
    tag.append(input, ` ${label}`);
    box.append(tag);
  });
}

function select(name, i) {
  const input = $(`${name}-${i}`);
  if (input) input.checked = true;
}

// ---- opening an image ------------------------------------------------------------------------
async function openWith(request) {
  const summary = await request;
  state.image = summary;
  state.answer = null;
  state.rows = null;
  const [h, w] = summary.size;
  state.scale = Math.max(h, w) >= DISPLAY ? DISPLAY / Math.max(h, w) : Math.floor(DISPLAY / Math.max(h, w));
  const key = encodeURIComponent(summary.key);
  await Promise.all([
    paint($("image-canvas"), `/api/images/${key}/image.png`, w, h),
    paint($("mask-canvas"), `/api/images/${key}/prediction.png`, w, h),
  ]);
  const heat = $("heat-canvas");
  heat.width = 1; heat.height = 1;
  heat.getContext("2d").clearRect(0, 0, 1, 1);
  for (const id of ["heat-canvas"]) size($(id), w, h);
  $("view").style.width = `${w * state.scale}px`;
  $("view").style.height = `${h * state.scale}px`;
  $("marker").hidden = true;
  $("image-line").textContent = `${summary.name}: ${w}×${h}` + (summary.note ? ` (${summary.note})` : "");
  $("readout").textContent = "Click a pixel to see where the model looks from it.";
  $("main").hidden = false;
  $("panels-section").hidden = !!state.info.message;
  if (!state.info.message) {
    const labels = summary.prior[0].map((_, k) => `component k=${k}`).concat(["combined p(c|t)"]);
    choices("maps", "map", labels, (j) => { state.map = j; draw(); });
    state.map = Math.min(state.map, labels.length - 1);
    select("map", state.map);
    select("head", state.head);
  }
  applyOpacity();
  return summary;
}

function size(canvas, w, h) {
  canvas.style.width = `${w * state.scale}px`;
  canvas.style.height = `${h * state.scale}px`;
}

function paint(canvas, url, w, h) {
  return new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => {
      canvas.width = w; canvas.height = h;
      canvas.getContext("2d").drawImage(picture, 0, 0);
      size(canvas, w, h);
      resolve();
    };
    picture.onerror = () => reject(new Error(`cannot load ${url}`));
    picture.src = url;
  });
}

function openSample(body) {
  return openWith(api("/api/open", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  }));
}

async function upload(file) {
  const limit = state.info.max_upload_mb * 1048576;
  if (file.size === 0) throw new Error(`upload '${file.name}' is empty (0 bytes): nothing to read`);
  if (file.size > limit) {
    throw new Error(`upload '${file.name}' is ${(file.size / 1048576).toFixed(1)} MB, more than the ` +
      `${state.info.max_upload_mb} MB the explorer accepts (max_upload_mb); resize or recompress it first`);
  }
  return openWith(api("/api/upload", {
    method: "POST", body: file,
    headers: { "content-type": "application/octet-stream", "x-filename": encodeURIComponent(file.name) },
  }));
}

// ---- clicks ----------------------------------------------------------------------------------
function pixelAt(event) {
  const box = $("view").getBoundingClientRect();
  const [h, w] = state.image.size;
  const x = Math.floor((event.clientX - box.left) / state.scale);
  const y = Math.floor((event.clientY - box.top) / state.scale);
  return x >= 0 && y >= 0 && x < w && y < h ? [y, x] : null;
}

async function query(y, x) {
  if (state.busy) { state.pending = [y, x]; return; } // the latest waits; older ones are dropped
  state.busy = true;
  try {
    const key = encodeURIComponent(state.image.key);
    const answer = await api(`/api/images/${key}/query?y=${y}&x=${x}`);
    state.answer = answer;
    state.rows = answer.maps ? decode(answer.maps) : null;
    draw();
  } finally {
    state.busy = false;
    if (state.pending) { const [py, px] = state.pending; state.pending = null; guarded(() => query(py, px)); }
  }
}

function decode(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// ---- drawing an answer -----------------------------------------------------------------------
function row(head, map) {
  const [, maps, m] = state.answer.maps_shape;
  const start = (head * maps + map) * m;
  return state.rows.subarray(start, start + m);
}

// One key cell a canvas pixel, coloured from the row's smallest value (black) to its largest
// (white): a trained model's rows start near 0, an untrained one's are nearly uniform, and both
// show their structure. The range is kept on the canvas (data-min, data-max) and printed.
function drawHeat(canvas, values, grid) {
  const [gh, gw] = grid;
  let min = Infinity, max = -Infinity;
  for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
  canvas.width = gw; canvas.height = gh;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(gw, gh);
  values.forEach((v, i) => {
    const [r, g, b] = hot(max > min ? (v - min) / (max - min) : 0);
    pixels.data.set([r, g, b, 255], 4 * i);
  });
  context.putImageData(pixels, 0, 0);
  canvas.dataset.min = String(min);
  canvas.dataset.max = String(max);
  return [min, max];
}

function draw() {
  const answer = state.answer;
  if (!answer) return;
  const [y, x] = answer.pixel;
  const marker = $("marker");
  marker.style.left = `${(x + 0.5) * state.scale}px`;
  marker.style.top = `${(y + 0.5) * state.scale}px`;
  marker.hidden = false;
  const readout = $("readout");
  readout.replaceChildren(`pixel (y=${y}, x=${x}) · predicted `, swatch(answer.class),
    `${answer.class_name}, p = ${answer.probability.toFixed(3)}`);
  readout.dataset.pixel = `${y},${x}`;
  readout.dataset.cls = answer.class;
  if (!state.rows) return;
  readout.append(` · query cell (${answer.cell[0]}, ${answer.cell[1]}) of ${answer.query_grid[0]}×${answer.query_grid[1]}`);
  const [min, max] = drawHeat($("heat-canvas"), row(state.head, state.map), answer.key_grid);
  $("heat-min").textContent = min.toPrecision(4);
  $("heat-max").textContent = max.toPrecision(4);
  drawPrior(answer.prior);
  drawClasses();
  drawPanels();
}

function drawPrior(prior) {
  const table = $("prior");
  const header = ["π", ...prior[0].map((_, k) => `k=${k}`)];
  table.replaceChildren(tableRow("th", header));
  prior.forEach((weights, h) => table.append(tableRow("td", [`head ${h}`, ...weights.map((p) => p.toFixed(3))])));
}

function tableRow(cell, values) {
  const tr = document.createElement("tr");
  for (const value of values) {
    const td = document.createElement(cell);
    td.append(value);
    tr.append(td);
  }
  return tr;
}

function drawClasses() {
  const answer = state.answer;
  const mass = answer.mass[state.head][state.map];
  const table = $("classes");
  table.replaceChildren(tableRow("th", ["class", "attention", "share of image", "lift"]));
  const order = mass.map((m, c) => c).filter((c) => mass[c] > 0 || answer.share[c] > 0)
    .sort((a, b) => mass[b] - mass[a]);
  for (const c of order) {
    const name = document.createElement("span");
    name.append(swatch(c), state.info.class_names[c]);
    const lift = answer.share[c] > 0 ? `${(mass[c] / answer.share[c]).toFixed(2)}×` : "–";
    table.append(tableRow("td", [name, pct(mass[c]), pct(answer.share[c]), lift]));
  }
}

function pct(v) {
  return `${(100 * v).toFixed(1)} %`;
}

function drawPanels() {
  const answer = state.answer;
  const [heads, maps] = answer.maps_shape;
  const box = $("panels");
  box.style.gridTemplateColumns = `repeat(${maps}, max-content)`;
  box.replaceChildren();
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < maps; j++) {
      const panel = document.createElement("div");
      panel.className = "panel" + (h === state.head && j === state.map ? " selected" : "");
      const thumb = document.createElement("div"); // the image under the map, as in the big view
      thumb.className = "thumb";
      thumb.style.backgroundImage = `url(/api/images/${encodeURIComponent(state.image.key)}/image.png)`;
      const canvas = document.createElement("canvas");
      canvas.style.opacity = $("heat-opacity").value;
      drawHeat(canvas, row(h, j), answer.key_grid);
      thumb.append(canvas);
      const title = j < maps - 1 ? `head ${h} · k=${j} (π=${answer.prior[h][j].toFixed(2)})` : `head ${h} · p(c|t)`;
      panel.append(thumb, title);
      panel.addEventListener("click", () => {
        state.head = h; state.map = j; select("head", h); select("map", j); draw();
      });
      box.append(panel);
    }
  }
}

function applyOpacity() {
  $("mask-canvas").style.opacity = $("mask-opacity").value;
  for (const canvas of document.querySelectorAll("#heat-canvas, .thumb canvas")) {
    canvas.style.opacity = $("heat-opacity").value;
  }
}

// ---- the class co-occurrence matrix ----------------------------------------------------------
async function pollMatrix() {
  const status = $("matrix-status");
  let matrix;
  try {
    matrix = await api("/api/cooccurrence");
  } catch (err) {
    status.textContent = err.message;
    return;
  }
  if (matrix.state === "computing") {
    status.textContent = `computing on the ${state.info.split} split: ${matrix.done} / ${matrix.total} images…`;
    setTimeout(pollMatrix, 700);
  } else if (matrix.state === "done") {
    status.textContent = `${matrix.images} ${matrix.split} images`;
    drawMatrices(matrix);
  } else {  // unavailable (no ACF module, no images of the split) or failed: say why
    status.textContent = matrix.message || matrix.state;
    $("matrix-help").hidden = true;
    $("matrices").hidden = true;
  }
}

function drawMatrices(matrix) {
  const names = matrix.class_names;
  state.pairs = new Map(matrix.strongest_images.map((p) => [`${p.a},${p.b}`, p.images]));
  const liftColour = (v) => {
    const t = Math.max(-1, Math.min(1, Math.log2(v) / 3));
    const fade = Math.round(255 * (1 - Math.abs(t)) ** 0.8);
    return t >= 0 ? `rgb(255, ${fade}, ${fade})` : `rgb(${fade}, ${fade}, 255)`;
  };
  const greens = (v) => `rgba(40, 150, 60, ${0.85 * v})`;
  fillMatrix($("lift-table"), names, matrix.lift, (v) => `${v.toPrecision(2)}×`, liftColour, "a looks at b (lift)", true);
  fillMatrix($("labels-table"), names, matrix.label_cooccurrence, (v) => `${Math.round(100 * v)}%`, greens, "images with a also hold b", false);
}

function fillMatrix(table, names, values, text, colour, corner, clickable) {
  table.replaceChildren(tableRow("th", [corner, ...names.map((n) => `b: ${n}`)]));
  values.forEach((line, a) => {
    const tr = tableRow("th", [`a: ${names[a]}`]);
    line.forEach((v, b) => {
      const td = document.createElement("td");
      if (v !== null) {
        td.textContent = text(v);
        td.style.background = colour(v);
      }
      if (clickable) {
        td.className = "cell";
        td.id = `lift-${a}-${b}`;
        td.addEventListener("click", () => showPair(a, b, names, td));
      }
      tr.append(td);
    });
    table.append(tr);
  });
}

function showPair(a, b, names, cell) {
  document.querySelectorAll("#lift-table td.chosen").forEach((td) => td.classList.remove("chosen"));
  cell.classList.add("chosen");
  const box = $("pair-images");
  const images = state.pairs.get(`${a},${b}`) || [];
  box.replaceChildren(images.length
    ? `Images where ${names[a]} looks at ${names[b]} most (its pixel that looks there most is queried): `
    : `No ${state.info.split} image holds both ${names[a]} and ${names[b]}.`);
  for (const entry of images) {
    const button = document.createElement("button");
    button.textContent = `${entry.name} · ${entry.lift.toFixed(2)}×`;
    button.addEventListener("click", () => guarded(async () => {
      await openSample({ index: entry.index });
      $("index").value = entry.index;
      await query(entry.point[0], entry.point[1]);
    }));
    box.append(button);
  }
}

// ---- wiring ----------------------------------------------------------------------------------
window.addEventListener("DOMContentLoaded", () => {
  guarded(start);
  $("by-index").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => openSample({ index: Number($("index").value) }));
  });
  $("by-name").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(() => openSample({ name: $("name").value.trim() }));
  });
  $("upload").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) guarded(() => upload(file));
    e.target.value = "";
  });
  $("view").addEventListener("click", (e) => {
    const pixel = state.image && pixelAt(e);
    if (pixel) guarded(() => query(...pixel));
  });
  $("view").addEventListener("mousemove", (e) => {
    if (!$("hover").checked || !state.image) return;
    const pixel = pixelAt(e);
    if (pixel) guarded(() => query(...pixel));
  });
  $("mask-opacity").addEventListener("input", applyOpacity);
  $("heat-opacity").addEventListener("input", applyOpacity);
});
