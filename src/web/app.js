// wgsam's page: upload a photo, prompt SAM with clicks and boxes, see the masks.
// Plain browser JavaScript talking to the JSON API of src/server/app.ts.
"use strict";

const $ = (id) => document.getElementById(id);
const imageCanvas = $("image");
const overlayCanvas = $("overlay");
const marksCanvas = $("marks");

const state = {
  imageId: null,
  width: 0,
  height: 0,
  fileName: "image",
  /** Prompt actions in order: {kind: "point", x, y, label} | {kind: "box", box: [x0,y0,x1,y1]}. */
  actions: [],
  /** Last answer of /segment: masks [{png_base64, score, ...}] and the shown index. */
  masks: [],
  current: 0,
  /** Index of the candidate with the highest predicted IoU. */
  best: 0,
  /** Last answer of /everything or /detect (kind "detect": masks drawn with their labels). */
  everything: null,
  /** Sequence number of the newest segment request; older answers are ignored. */
  seq: 0,
  drag: null,
  /** Who decodes the prompts of the current image: "browser" (this page) or "server". */
  decoder: "server",
};

// ---- decoding in the page ----------------------------------------------------------------
// With WebGPU, the page runs the server's own decoder (src/web/decoder.js, bundled from
// src/decoder/, src/sam2/mask_decoder.ts and src/kernels/) on the image embedding it downloads
// once per image (SAM 2.1: three tensors), so a click costs no round trip. Without WebGPU, or
// when anything here fails, the server decodes.

const pageDecoding = {
  /** Resolves to the PageDecoder, or null with `reason` set. */
  ready: null,
  reason: "",
};

async function startPageDecoder() {
  try {
    if (!globalThis.isSecureContext || !navigator.gpu) {
      throw new Error("this browser offers no WebGPU here");
    }
    const mod = await import("/decoder.js");
    const gpu = await mod.requestGpuDevice(navigator.gpu);
    if (!gpu) throw new Error("WebGPU found no adapter");
    const meta = await api("GET", "/api/decoder");
    const res = await fetch(meta.url); // immutable: the browser cache keeps it
    if (!res.ok) throw new Error(`decoder weights: HTTP ${res.status}`);
    return await mod.PageDecoder.create(gpu, await res.arrayBuffer());
  } catch (e) {
    pageDecoding.reason = e.message;
    return null;
  }
}

/** Downloads the image's embedding into the page decoder; says who decodes this image. */
async function prepareDecoder(id, width, height) {
  state.decoder = "server";
  const decoder = await pageDecoding.ready;
  if (decoder) {
    try {
      // SAM 1: the embedding; SAM 2.1: image_embed, then high_res_feats_0/1 (?tensor=).
      const tensors = await Promise.all(decoder.featureNames.map(async (name, i) => {
        const query = i === 0 ? "" : `?tensor=${encodeURIComponent(name)}`;
        const res = await fetch(`/api/images/${encodeURIComponent(id)}/embedding${query}`);
        if (!res.ok) throw new Error(`embedding ${name}: HTTP ${res.status}`);
        return await res.arrayBuffer();
      }));
      await decoder.setImage(tensors, [height, width]);
      state.decoder = "browser";
      document.body.dataset.pageAdapter = decoder.adapter;
    } catch (e) {
      pageDecoding.reason = e.message;
    }
  }
  document.body.dataset.decoder = state.decoder;
}

function decoderNote() {
  return state.decoder === "browser"
    ? "Decoding in this page."
    : `Decoding on the server (${pageDecoding.reason || "page decoder not ready"}).`;
}

/** Test hook: decodes one prompt in the page and returns its low-res logits and IoU. */
globalThis.wgsamDecodeLowRes = async (prompt) => {
  const decoder = await pageDecoding.ready;
  if (!decoder || state.decoder !== "browser") throw new Error("the page is not decoding");
  const p = { ...prompt };
  if (p.maskInput) p.maskInput = Float32Array.from(p.maskInput);
  const r = await decoder.decode(p);
  return {
    count: r.count,
    iou: [...r.iou],
    lowRes: [...r.lowRes],
    areas: r.areas,
    best: r.best,
    objScore: r.objScore,
  };
};

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.style.color = isError ? "#b00" : "";
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ArrayBuffer || body instanceof Uint8Array) {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
  }
  const res = await fetch(path, init);
  const json = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(json.error ?? `HTTP ${res.status}`);
  return json;
}

/** Adapters that run WebGPU on the CPU (Mesa llvmpipe/lavapipe, SwiftShader). */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

async function loadInfo() {
  try {
    const info = await api("GET", "/api/info");
    $("model-name").textContent = `${info.model.name} on ${info.adapter}`;
    if (info.detector) {
      $("detect-tools").hidden = false;
      $("classes").title = `The detector knows: ${info.detector.classes.join(", ")}`;
    }
    if (SOFTWARE_ADAPTER.test(info.adapter ?? "")) {
      // A CPU-emulated GPU: the official 32x32 grid would outlast the server's time limit.
      $("pps").value = "4";
      $("pps").title = `${info.adapter} is a software adapter: keep the grid small`;
    }
    if (info.warning) {
      const banner = $("banner");
      banner.textContent = "⚠ " + info.warning;
      banner.hidden = false;
    }
    setStatus("Ready. Open a photo.");
    // Weights load while a photo is chosen.
    pageDecoding.ready = startPageDecoder();
  } catch (e) {
    setStatus(`Server not reachable: ${e.message}`, true);
  }
}

// ---- opening a photo -------------------------------------------------------------------

async function openFile(file) {
  if (!file) return;
  state.fileName = file.name.replace(/\.[^.]*$/, "") || "image";
  setStatus(`Uploading ${file.name} and computing its embedding…`);
  try {
    const type = file.type === "image/png" || file.type === "image/jpeg"
      ? file.type
      : "application/octet-stream";
    const t0 = performance.now();
    // The server's answer first: its refusals name the reason (size limits, not a PNG/JPEG),
    // where the browser's own decoder only says "could not be decoded".
    const decoding = createImageBitmap(file).catch((e) => e);
    const info = await api("POST", "/api/images", file, { "content-type": type });
    // 202: the encoder is still running (minutes on a CPU-only host); ask until it is done.
    while (info.status === "encoding" || info.status === "waiting") {
      const s = Math.round((performance.now() - t0) / 1000);
      setStatus(
        `${info.status === "waiting" ? "Waiting for the GPU" : "Computing the embedding"}… ${s} s`,
      );
      await new Promise((r) => setTimeout(r, 2000));
      Object.assign(info, await api("GET", `/api/images/${encodeURIComponent(info.id)}`));
    }
    const bitmap = await decoding;
    if (bitmap instanceof Error) {
      throw new Error(`this browser cannot display the photo (${bitmap.message})`);
    }
    state.imageId = info.id;
    state.width = info.width;
    state.height = info.height;
    await prepareDecoder(info.id, info.width, info.height);
    for (const c of [imageCanvas, overlayCanvas, marksCanvas]) {
      c.width = info.width;
      c.height = info.height;
    }
    imageCanvas.getContext("2d").drawImage(bitmap, 0, 0);
    $("stage").hidden = false;
    $("hint").hidden = true;
    fitStage();
    clearPrompts();
    $("everything").disabled = false;
    $("detect").disabled = false;
    const took = Math.round(performance.now() - t0);
    setStatus(
      `${info.width}×${info.height} ready (${
        info.cached
          ? "embedding cached"
          : info.encodeMs === undefined
          ? "embedding computed"
          : `encoder ${Math.round(info.encodeMs)} ms`
      }, ${took} ms in all). ` +
        "Left click: foreground, right click: background, drag: box. " + decoderNote(),
    );
    fitStage(); // again: the status line may have grown to two lines
  } catch (e) {
    setStatus(`Upload failed: ${e.message}`, true);
  }
}

$("file").addEventListener("change", (ev) => openFile(ev.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (ev) => {
  ev.preventDefault();
  drop.classList.add("dragging");
});
drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("dragging");
  openFile(ev.dataTransfer.files[0]);
});

/**
 * Shows the photo as large as the window allows (small photos are scaled up), leaving the
 * status line below it in view: the height left is measured, since the banner and the
 * wrapping toolbar take more or less room.
 */
function fitStage() {
  if (!state.width) return;
  const maxW = Math.max(200, document.documentElement.clientWidth - 48);
  const above = drop.getBoundingClientRect().top + globalThis.scrollY;
  const below = document.querySelector("footer").offsetHeight + 8; // + the drop zone's border
  const maxH = Math.max(200, globalThis.innerHeight - above - below);
  const scale = Math.min(maxW / state.width, maxH / state.height);
  const stage = $("stage");
  stage.style.width = `${Math.floor(state.width * scale)}px`;
  stage.style.height = `${Math.floor(state.height * scale)}px`;
}
globalThis.addEventListener("resize", fitStage);

// ---- prompting -------------------------------------------------------------------------

/** Image pixel coordinates of a mouse event on the (CSS-scaled) canvas. */
function toImage(ev) {
  const r = marksCanvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * (state.width / r.width);
  const y = (ev.clientY - r.top) * (state.height / r.height);
  return [Math.min(Math.max(x, 0), state.width), Math.min(Math.max(y, 0), state.height)];
}

marksCanvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
marksCanvas.addEventListener("mousedown", (ev) => {
  if (!state.imageId) return;
  ev.preventDefault();
  state.drag = {
    start: toImage(ev),
    end: toImage(ev),
    button: ev.button,
    clientX: ev.clientX,
    clientY: ev.clientY,
  };
});
marksCanvas.addEventListener("mousemove", (ev) => {
  if (!state.drag) return;
  state.drag.end = toImage(ev);
  drawMarks();
});
globalThis.addEventListener("mouseup", (ev) => {
  const drag = state.drag;
  if (!drag) return;
  state.drag = null;
  const moved = Math.hypot(ev.clientX - drag.clientX, ev.clientY - drag.clientY);
  if (moved > 5 && drag.button === 0) {
    const [ax, ay] = drag.start;
    const [bx, by] = toImage(ev);
    // One box at a time: a new box replaces the old one.
    state.actions = state.actions.filter((a) => a.kind !== "box");
    state.actions.push({
      kind: "box",
      box: [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)],
    });
  } else if (moved <= 5 && (drag.button === 0 || drag.button === 2)) {
    const [x, y] = drag.start;
    state.actions.push({ kind: "point", x, y, label: drag.button === 0 ? 1 : 0 });
  } else {
    drawMarks();
    return;
  }
  promptChanged();
});

function currentPrompt() {
  const points = state.actions.filter((a) => a.kind === "point");
  const box = state.actions.find((a) => a.kind === "box");
  const prompt = { multimask: $("multimask").checked, format: "png" };
  if (points.length) {
    prompt.points = points.map((p) => [p.x, p.y]);
    prompt.labels = points.map((p) => p.label);
  }
  if (box) prompt.box = box.box;
  return prompt;
}

async function promptChanged() {
  drawMarks();
  updateButtons();
  if (state.actions.length === 0) {
    state.seq++; // answers still on their way are stale now
    state.masks = [];
    drawMask();
    showScores();
    return;
  }
  const seq = ++state.seq;
  setStatus("Segmenting…");
  const t0 = performance.now();
  try {
    let answer, where = "";
    if (state.decoder === "browser") {
      answer = await decodeInPage();
      if (!answer) where = ` on the server (${pageDecoding.reason})`;
      else where = " in this page";
    }
    answer ??= await api("POST", `/api/images/${state.imageId}/segment`, currentPrompt());
    if (seq !== state.seq) return; // a newer prompt is on its way
    const ms = answer.decodeMs ?? performance.now() - t0;
    state.masks = answer.masks;
    state.best = answer.best ?? 0;
    state.current = state.best;
    state.everything = null;
    await drawMask();
    showScores();
    // decodeMs: the decoder (page) or the round trip (server); clickMs: that plus drawing.
    document.body.dataset.decodeMs = String(Math.round(ms * 10) / 10);
    document.body.dataset.clickMs = String(Math.round((performance.now() - t0) * 10) / 10);
    document.body.dataset.maskArea = String(state.masks[state.best]?.area ?? 0);
    setStatus(`${answer.masks.length} mask(s)${where} in ${Math.round(ms)} ms.`);
  } catch (e) {
    if (seq === state.seq) setStatus(`Segment failed: ${e.message}`, true);
  }
  updateButtons();
}

/**
 * The current prompt decoded by the page's decoder, in /segment's answer shape (masks as
 * 0/1 bytes instead of PNGs); null after a failure, which sends this image to the server.
 */
async function decodeInPage() {
  const { points, labels, box, multimask } = currentPrompt();
  try {
    const decoder = await pageDecoding.ready;
    const r = await decoder.decode({ points, labels, box, multimask });
    const masks = r.masks.map((bits, i) => ({ bits, score: r.iou[i], area: r.areas[i] }));
    return { masks, best: r.best, decodeMs: r.ms };
  } catch (e) {
    pageDecoding.reason = `the page decoder failed: ${e.message}`;
    state.decoder = "server";
    document.body.dataset.decoder = "server";
    return null;
  }
}

$("multimask").addEventListener("change", () => state.actions.length && promptChanged());
$("undo").addEventListener("click", () => {
  state.actions.pop();
  promptChanged();
});
$("clear").addEventListener("click", () => {
  clearPrompts();
  setStatus("Cleared.");
});

function clearPrompts() {
  state.actions = [];
  state.masks = [];
  state.everything = null;
  state.seq++;
  drawMarks();
  drawMask();
  showScores();
  updateButtons();
}

function updateButtons() {
  $("undo").disabled = state.actions.length === 0;
  $("clear").disabled = state.actions.length === 0 && !state.everything;
  $("prev").disabled = state.masks.length < 2;
  $("next").disabled = state.masks.length < 2;
  $("download-mask").disabled = state.masks.length === 0;
  $("download-coco").disabled = state.masks.length === 0 && !state.everything;
}

// ---- candidates ------------------------------------------------------------------------

function showScores() {
  const el = $("scores");
  el.textContent = "";
  if (state.masks.length === 0) {
    const e = state.everything;
    el.textContent = !e
      ? "No mask yet."
      : e.kind === "detect"
      ? `${detections(e.count)}: ${e.annotations.map((a) => a.category_name).join(", ")}`
      : `${e.count} masks (segment everything)`;
    return;
  }
  state.masks.forEach((m, i) => {
    const span = document.createElement("span");
    span.className = "score" + (i === state.current ? " current" : "");
    span.dataset.index = String(i);
    span.textContent = `#${i + 1} IoU ${m.score.toFixed(3)}${i === state.best ? " ★" : ""}`;
    span.title = i === state.best ? "highest predicted IoU" : "";
    span.addEventListener("click", () => selectCandidate(i));
    el.appendChild(span);
  });
}

function selectCandidate(i) {
  if (state.masks.length === 0) return;
  state.current = (i + state.masks.length) % state.masks.length;
  drawMask();
  showScores();
}

$("prev").addEventListener("click", () => selectCandidate(state.current - 1));
$("next").addEventListener("click", () => selectCandidate(state.current + 1));

// ---- drawing ---------------------------------------------------------------------------

function drawMarks() {
  const ctx = marksCanvas.getContext("2d");
  ctx.clearRect(0, 0, marksCanvas.width, marksCanvas.height);
  const r = Math.max(3, Math.round(Math.max(state.width, state.height) / 120));
  ctx.lineWidth = Math.max(1, r / 2);
  for (const a of state.actions) {
    if (a.kind === "point") {
      ctx.beginPath();
      ctx.arc(a.x, a.y, r, 0, 2 * Math.PI);
      ctx.fillStyle = a.label === 1 ? "#22c55e" : "#ef4444";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    } else {
      const [x0, y0, x1, y1] = a.box;
      ctx.strokeStyle = "#facc15";
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
  }
  if (state.drag && state.drag.button === 0) {
    const [ax, ay] = state.drag.start;
    const [bx, by] = state.drag.end;
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = "#facc15";
    ctx.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
    ctx.setLineDash([]);
  }
}

async function decodePngMask(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const c = document.createElement("canvas");
  c.width = bitmap.width;
  c.height = bitmap.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, c.width, c.height).data;
}

async function drawMask() {
  const ctx = overlayCanvas.getContext("2d");
  const mask = state.masks[state.current];
  if (!mask) {
    ctx.clearRect(0, 0, overlayCanvas.width, overlayCanvas.height);
    return;
  }
  const pixels = mask.bits ?? await decodePngMask(mask.png_base64);
  if (state.masks[state.current] !== mask) return; // changed meanwhile
  const on = mask.bits ? (i) => pixels[i] === 1 : (i) => pixels[4 * i] > 127;
  const out = ctx.createImageData(state.width, state.height);
  for (let i = 0; i < state.width * state.height; i++) {
    if (on(i)) {
      out.data[4 * i] = 30;
      out.data[4 * i + 1] = 144;
      out.data[4 * i + 2] = 255;
      out.data[4 * i + 3] = 140;
    }
  }
  ctx.putImageData(out, 0, 0);
}

/** COCO compressed RLE (pycocotools rleFrString) to a row-major 0/1 mask. */
function decodeCocoRle(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, scale = 1, more = true, group = 0;
    while (more) {
      group = s.charCodeAt(p++) - 48;
      x += (group & 0x1f) * scale;
      scale *= 32;
      more = (group & 0x20) !== 0;
    }
    if (group & 0x10) x -= scale;
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  // Runs go down the columns (column-major), zeros first.
  const mask = new Uint8Array(h * w);
  let idx = 0;
  counts.forEach((n, k) => {
    if (k % 2 === 1) {
      for (let j = idx; j < idx + n; j++) mask[(j % h) * w + Math.floor(j / h)] = 1;
    }
    idx += n;
  });
  return mask;
}

/** Every annotation's mask in its own colour; with `labelled`, its box and "name score" too. */
function drawEverything(annotations, labelled = false) {
  const ctx = overlayCanvas.getContext("2d");
  const out = ctx.createImageData(state.width, state.height);
  // Largest first, so that small masks stay visible on top.
  const sorted = [...annotations].sort((a, b) => b.area - a.area);
  const colours = sorted.map((_, k) => hslToRgb(((k * 137.508) % 360) / 360, 0.75, 0.55));
  sorted.forEach((ann, k) => {
    const [r, g, b] = colours[k];
    const mask = decodeCocoRle(ann.segmentation);
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      out.data[4 * i] = r;
      out.data[4 * i + 1] = g;
      out.data[4 * i + 2] = b;
      out.data[4 * i + 3] = 150;
    }
  });
  ctx.putImageData(out, 0, 0);
  if (!labelled) return;
  const px = Math.max(10, Math.round(Math.max(state.width, state.height) / 50));
  ctx.font = `${px}px sans-serif`;
  ctx.lineWidth = Math.max(1, px / 6);
  sorted.forEach((ann, k) => {
    const [x, y, w, h] = ann.bbox;
    const colour = `rgb(${colours[k].join(",")})`;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    const label = `${ann.category_name} ${ann.score.toFixed(2)}`;
    const ty = y >= px + 2 ? y - 2 : y + px + 2;
    ctx.fillStyle = colour;
    ctx.fillRect(x, ty - px, ctx.measureText(label).width + 4, px + 2);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x + 2, ty - 1);
  });
}

function hslToRgb(h, s, l) {
  const f = (n) => {
    const k = (n + h * 12) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

$("everything").addEventListener("click", async () => {
  if (!state.imageId) return;
  const pps = Number($("pps").value) || 32;
  const threshold = (id, fallback) => {
    const v = Number($(id).value);
    return $(id).value.trim() !== "" && v >= 0 && v <= 1 ? v : fallback;
  };
  const predIou = threshold("pred-iou", 0.88);
  const stability = threshold("stability", 0.95);
  state.actions = [];
  state.masks = [];
  state.seq++;
  drawMarks();
  $("everything").disabled = true;
  setStatus(`Segmenting everything (${pps}×${pps} points)…`);
  try {
    const answer = await api("POST", `/api/images/${state.imageId}/everything`, {
      points_per_side: pps,
      pred_iou_thresh: predIou,
      stability_score_thresh: stability,
    });
    state.everything = answer;
    drawEverything(answer.annotations);
    showScores();
    setStatus(`${answer.count} masks in ${answer.ms} ms. ${describeFiltered(answer)}`);
  } catch (e) {
    setStatus(`Segment everything failed: ${e.message}`, true);
  }
  $("everything").disabled = false;
  updateButtons();
});

/**
 * Where the candidate masks went (the answer's `filtered` counts), with a hint when a
 * threshold removed everything: sam-tiny's random masks never pass the official defaults.
 */
function describeFiltered(answer) {
  const f = answer.filtered;
  if (!f) return "";
  const names = {
    pred_iou_thresh: "below the IoU threshold",
    stability_score_thresh: "below the stability threshold",
    near_crop_edge: "touching a crop edge",
    box_nms_thresh: "duplicates",
    crop_nms_thresh: "duplicates across crops",
    min_mask_region_area: "duplicates after small-region cleanup",
  };
  const drops = Object.entries(f.dropped).filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${names[k] ?? k}`);
  let text = `${f.candidates} candidates` + (drops.length ? `: ${drops.join(", ")}` : "") + ".";
  if (answer.count === 0 && (f.dropped.pred_iou_thresh || f.dropped.stability_score_thresh)) {
    text += " Lower the IoU and stability thresholds to keep more.";
  }
  return text;
}

const detections = (n) => `${n} detection${n === 1 ? "" : "s"}`;

$("detect").addEventListener("click", async () => {
  if (!state.imageId) return;
  const classes = $("classes").value.split(",").map((c) => c.trim()).filter((c) => c);
  state.actions = [];
  state.masks = [];
  state.seq++;
  drawMarks();
  $("detect").disabled = true;
  setStatus(`Detecting ${classes.length ? classes.join(", ") : "objects"}…`);
  try {
    const answer = await api(
      "POST",
      `/api/images/${state.imageId}/detect`,
      classes.length ? { classes } : {},
    );
    state.everything = { kind: "detect", count: answer.detections, ...answer };
    drawEverything(answer.annotations, true);
    showScores();
    setStatus(`${detections(answer.detections)} in ${answer.ms} ms.`);
  } catch (e) {
    setStatus(`Detect failed: ${e.message}`, true);
  }
  $("detect").disabled = false;
  updateButtons();
});

// ---- downloads -------------------------------------------------------------------------

function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

$("download-mask").addEventListener("click", async () => {
  const mask = state.masks[state.current];
  if (!mask) return;
  const name = `${state.fileName}_mask.png`;
  if (mask.png_base64) {
    const bytes = Uint8Array.from(atob(mask.png_base64), (c) => c.charCodeAt(0));
    download(name, new Blob([bytes], { type: "image/png" }));
    return;
  }
  // A mask decoded in the page: white on black, as the server's PNGs.
  const c = document.createElement("canvas");
  c.width = state.width;
  c.height = state.height;
  const ctx = c.getContext("2d");
  const img = ctx.createImageData(state.width, state.height);
  mask.bits.forEach((v, i) => {
    img.data.fill(v ? 255 : 0, 4 * i, 4 * i + 3);
    img.data[4 * i + 3] = 255;
  });
  ctx.putImageData(img, 0, 0);
  download(name, await new Promise((resolve) => c.toBlob(resolve, "image/png")));
});

$("download-coco").addEventListener("click", async () => {
  let annotations;
  if (state.masks.length) {
    // The shown candidate, as a COCO RLE record.
    const answer = await api("POST", `/api/images/${state.imageId}/segment`, {
      ...currentPrompt(),
      format: "rle",
    });
    const m = answer.masks[state.current] ?? answer.masks[0];
    annotations = [{ segmentation: m.rle, area: m.area, predicted_iou: m.score }];
  } else if (state.everything) {
    annotations = state.everything.annotations;
  } else {
    return;
  }
  const coco = {
    image: { file_name: state.fileName, width: state.width, height: state.height },
    annotations,
  };
  download(
    `${state.fileName}_masks.json`,
    new Blob([JSON.stringify(coco)], { type: "application/json" }),
  );
});

// Keys: z or Backspace undo, Escape clears, arrows step the candidates.
document.addEventListener("keydown", (ev) => {
  if (ev.target instanceof HTMLInputElement || !state.imageId) return;
  if ((ev.key === "z" || ev.key === "Backspace") && state.actions.length) {
    state.actions.pop();
    promptChanged();
  } else if (ev.key === "Escape") {
    clearPrompts();
  } else if (ev.key === "ArrowRight") {
    selectCandidate(state.current + 1);
  } else if (ev.key === "ArrowLeft") {
    selectCandidate(state.current - 1);
  } else {
    return;
  }
  ev.preventDefault();
});

loadInfo();
