// wgsam's page, video mode (SAM 2.1): open a video file (or PNG/JPEG frames, or the webcam),
// click objects on any frame, track them through the video, correct them, export the
// per-frame masks as COCO JSON (RLE). Plain browser JavaScript over /api/videos
// (src/server/video_routes.ts); frames are decoded here, from a <video>, and sent as raw RGBA.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const imageCanvas = $("v-image");
  const overlayCanvas = $("v-overlay");
  const source = $("v-source");
  /** Largest frame side sent to the server (bigger videos are scaled down in the page). */
  const MAX_SIDE = 1024;

  const video = {
    session: null,
    name: "video",
    width: 0,
    height: 0,
    /** ImageData per frame, as sent. */
    frames: [],
    /** Per frame: Map objId -> {rle, score, area} (the last answer for that frame). */
    masks: [],
    /** `${frame}:${objId}` -> {points, labels}: the clicks of an object on a frame. */
    clicks: new Map(),
    objIds: [1],
    objId: 1,
    shown: 0,
    /** AbortController of the running propagation (or frame capture). */
    running: null,
    webcam: null,
  };

  function setStatus(text, isError = false) {
    const el = $("status");
    el.textContent = text;
    el.style.color = isError ? "#b00" : "";
  }

  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
      init.body = body;
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
    const res = await fetch(path, init);
    const json = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(json.error ?? `HTTP ${res.status}`);
    return json;
  }

  // ---- mode switch ------------------------------------------------------------------------

  function showVideoMode(on) {
    document.body.dataset.mode = on ? "video" : "photo";
    for (const el of document.querySelectorAll(".photo-only")) el.hidden = on;
    $("video").hidden = !on;
    if (on) {
      setStatus(video.session ? statusLine() : "Video mode: open a video, frames or the webcam.");
    } else setStatus("Ready. Open a photo.");
  }
  $("video-toggle").addEventListener("click", () => showVideoMode(true));
  $("v-back").addEventListener("click", () => showVideoMode(false));

  api("GET", "/api/info").then((info) => {
    if (info.model.family !== "sam2") {
      $("video-toggle").disabled = true;
      $("video-toggle").title =
        `Video tracking needs a SAM 2.1 model; this server runs ${info.model.name}`;
    }
  }).catch(() => {});

  // ---- frames in --------------------------------------------------------------------------

  async function newSession(name) {
    stopRunning();
    if (video.session) await api("DELETE", `/api/videos/${video.session}`).catch(() => {});
    const s = await api("POST", "/api/videos", {});
    Object.assign(video, {
      session: s.id,
      name,
      width: 0,
      height: 0,
      frames: [],
      masks: [],
      clicks: new Map(),
      objIds: [1],
      objId: 1,
      shown: 0,
    });
    refreshObjects();
    updateControls();
  }

  /** Sends one frame (a drawable: <video>, ImageBitmap) as raw RGBA; shows it. */
  async function addFrame(drawable, w, h) {
    const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    const width = Math.max(1, Math.round(w * scale)), height = Math.max(1, Math.round(h * scale));
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(drawable, 0, 0, width, height);
    const data = ctx.getImageData(0, 0, width, height);
    const r = await api(
      "POST",
      `/api/videos/${video.session}/frames?width=${width}&height=${height}`,
      new Uint8Array(data.data.buffer),
      { "content-type": "application/octet-stream" },
    );
    video.width = width;
    video.height = height;
    video.frames[r.frame_idx] = data;
    video.masks[r.frame_idx] = new Map();
    show(r.frame_idx);
    setStatus(`Frame ${r.frame_idx + 1} sent…`);
  }

  function once(target, event) {
    return new Promise((resolve, reject) => {
      target.addEventListener(event, resolve, { once: true });
      target.addEventListener(
        "error",
        () => reject(new Error(`cannot read this ${event === "seeked" ? "frame" : "video"}`)),
        {
          once: true,
        },
      );
    });
  }

  async function openFiles(files) {
    if (!files.length) return;
    try {
      const images = [...files].filter((f) => /^image\//.test(f.type));
      if (images.length) {
        // A folder's frames: in natural name order.
        images.sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
        await newSession(images[0].name.replace(/\.[^.]*$/, ""));
        const max = Math.min(images.length, Number($("v-max").value) || images.length);
        for (let i = 0; i < max; i++) {
          const bitmap = await createImageBitmap(images[i]);
          await addFrame(bitmap, bitmap.width, bitmap.height);
        }
      } else {
        await openVideoFile(files[0]);
      }
      setStatus(`${statusLine()} Click an object (right click: background).`);
    } catch (e) {
      setStatus(`Video: ${e.message}`, true);
    }
    updateControls();
  }

  /** Samples a video file at the chosen rate by seeking (at most the chosen frame count). */
  async function openVideoFile(file) {
    await newSession(file.name.replace(/\.[^.]*$/, "") || "video");
    source.srcObject = null;
    source.src = URL.createObjectURL(file);
    await once(source, "loadedmetadata");
    const fps = Number($("v-fps").value) || 4;
    const max = Number($("v-max").value) || 48;
    let duration = source.duration;
    if (!Number.isFinite(duration)) duration = max / fps; // a stream without an index
    const n = Math.max(1, Math.min(max, Math.floor(duration * fps + 1e-6)));
    for (let i = 0; i < n; i++) {
      // The middle of the sampled frame's interval, inside the file.
      source.currentTime = Math.min((i + 0.5) / fps, Math.max(0, duration - 1e-3));
      await once(source, "seeked");
      await addFrame(source, source.videoWidth, source.videoHeight);
    }
    URL.revokeObjectURL(source.src);
  }

  /** Webcam: frames at the chosen rate until Stop or the frame limit. */
  async function openWebcam() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      await newSession("webcam");
      video.webcam = stream;
      source.srcObject = stream;
      await source.play();
      const fps = Number($("v-fps").value) || 4;
      const max = Number($("v-max").value) || 48;
      const abort = new AbortController();
      video.running = abort;
      updateControls();
      setStatus("Recording from the webcam… (Stop to end)");
      for (let i = 0; i < max && !abort.signal.aborted; i++) {
        const t0 = performance.now();
        await addFrame(source, source.videoWidth, source.videoHeight);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 / fps - (performance.now() - t0))));
      }
      stream.getTracks().forEach((t) => t.stop());
      video.webcam = null;
      video.running = null;
      setStatus(`${statusLine()} Click an object (right click: background).`);
    } catch (e) {
      setStatus(`Webcam: ${e.message}`, true);
    }
    updateControls();
  }

  $("v-file").addEventListener("change", (ev) => openFiles(ev.target.files));
  $("v-webcam").addEventListener("click", openWebcam);

  // ---- showing ----------------------------------------------------------------------------

  const COLORS = [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211], [
    0,
    206,
    209,
  ]];
  const colorOf = (objId) => COLORS[((objId % COLORS.length) + COLORS.length) % COLORS.length];

  function show(f) {
    if (!video.frames[f]) return;
    video.shown = f;
    const data = video.frames[f];
    for (const c of [imageCanvas, overlayCanvas]) {
      if (c.width !== data.width || c.height !== data.height) {
        c.width = data.width;
        c.height = data.height;
      }
    }
    imageCanvas.getContext("2d").putImageData(data, 0, 0);
    const ctx = overlayCanvas.getContext("2d");
    const overlay = ctx.createImageData(data.width, data.height);
    const H = data.height;
    let drawn = 0;
    for (const [objId, m] of video.masks[f] ?? []) {
      if (!m.area) continue;
      const [r, g, b] = colorOf(objId);
      const counts = rleCounts(m.rle.counts);
      let pos = 0;
      for (let k = 0; k < counts.length; k++) {
        if (k % 2 === 1) {
          for (let i = pos; i < pos + counts[k]; i++) {
            const x = Math.floor(i / H), y = i % H; // COCO RLE runs go down the columns
            const o = 4 * (y * data.width + x);
            overlay.data[o] = r;
            overlay.data[o + 1] = g;
            overlay.data[o + 2] = b;
            overlay.data[o + 3] = 120;
          }
        }
        pos += counts[k];
      }
      drawn++;
    }
    ctx.putImageData(overlay, 0, 0);
    // Clicks of this frame: foreground filled, background hollow.
    for (const [key, c] of video.clicks) {
      const [cf, objId] = key.split(":").map(Number);
      if (cf !== f) continue;
      const [r, g, b] = colorOf(objId);
      c.points.forEach(([x, y], i) => {
        ctx.beginPath();
        ctx.arc(x, y, Math.max(2, data.width / 120), 0, 2 * Math.PI);
        ctx.lineWidth = 2;
        ctx.strokeStyle = "#fff";
        ctx.fillStyle = `rgb(${r},${g},${b})`;
        if (c.labels[i] === 1) ctx.fill();
        ctx.stroke();
      });
    }
    $("v-stage").hidden = false;
    fitStage();
    $("v-frame").max = String(Math.max(0, video.frames.length - 1));
    $("v-frame").value = String(f);
    $("v-frame-label").textContent = `frame ${f + 1} / ${video.frames.length}`;
    document.body.dataset.videoShown = String(f);
    document.body.dataset.videoMasksShown = String(drawn);
  }

  function fitStage() {
    const maxW = Math.max(200, document.documentElement.clientWidth - 48);
    const maxH = Math.max(
      200,
      globalThis.innerHeight - $("v-stage").getBoundingClientRect().top - 40,
    );
    const scale = Math.min(maxW / video.width, maxH / video.height);
    $("v-stage").style.width = `${Math.floor(video.width * scale)}px`;
    $("v-stage").style.height = `${Math.floor(video.height * scale)}px`;
  }

  $("v-frame").addEventListener("input", (ev) => show(Number(ev.target.value)));

  /** pycocotools' compressed RLE string -> run lengths. */
  function rleCounts(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++;
        k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  // ---- prompting --------------------------------------------------------------------------

  function toFrame(ev) {
    const r = overlayCanvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * (video.width / r.width);
    const y = (ev.clientY - r.top) * (video.height / r.height);
    return [Math.min(Math.max(x, 0), video.width), Math.min(Math.max(y, 0), video.height)];
  }

  overlayCanvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  overlayCanvas.addEventListener("mousedown", async (ev) => {
    if (!video.session || video.running || (ev.button !== 0 && ev.button !== 2)) return;
    ev.preventDefault();
    const f = video.shown;
    const key = `${f}:${video.objId}`;
    const c = video.clicks.get(key) ?? { points: [], labels: [] };
    c.points.push(toFrame(ev).map((v) => Math.round(v * 10) / 10));
    c.labels.push(ev.button === 0 ? 1 : 0);
    video.clicks.set(key, c);
    setStatus(`Segmenting object ${video.objId} on frame ${f + 1}…`);
    try {
      const answer = await api("POST", `/api/videos/${video.session}/prompts`, {
        frame_idx: f,
        obj_id: video.objId,
        points: c.points,
        labels: c.labels,
      });
      takeFrame(answer);
      show(f);
      setStatus(`Object ${video.objId} on frame ${f + 1}. Track to follow it through the video.`);
    } catch (e) {
      c.points.pop();
      c.labels.pop();
      if (!c.points.length) video.clicks.delete(key);
      setStatus(`Prompt: ${e.message}`, true);
    }
    updateControls();
  });

  /** Keeps one frame's answer (prompt or propagation line). */
  function takeFrame(answer) {
    const m = new Map();
    for (const o of answer.objects) {
      m.set(o.obj_id, { rle: o.rle, score: o.object_score, area: o.area });
    }
    video.masks[answer.frame_idx] = m;
  }

  function refreshObjects() {
    const select = $("v-obj");
    select.replaceChildren(...video.objIds.map((id) => {
      const o = document.createElement("option");
      o.value = String(id);
      o.textContent = `object ${id}`;
      o.style.color = `rgb(${colorOf(id).join(",")})`;
      return o;
    }));
    select.value = String(video.objId);
  }
  $("v-obj").addEventListener("change", (ev) => (video.objId = Number(ev.target.value)));
  $("v-new-obj").addEventListener("click", () => {
    video.objId = Math.max(0, ...video.objIds) + 1;
    video.objIds.push(video.objId);
    refreshObjects();
    setStatus(`Object ${video.objId}: click it.`);
  });
  $("v-remove-obj").addEventListener("click", async () => {
    const id = video.objId;
    try {
      if (prompted().includes(id)) {
        await api("DELETE", `/api/videos/${video.session}/objects/${id}`);
      }
      for (const key of [...video.clicks.keys()]) {
        if (key.endsWith(`:${id}`)) video.clicks.delete(key);
      }
      for (const m of video.masks) m?.delete(id);
      video.objIds = video.objIds.filter((o) => o !== id);
      if (!video.objIds.length) video.objIds = [id + 1];
      video.objId = video.objIds[0];
      refreshObjects();
      show(video.shown);
      setStatus(`Object ${id} removed.`);
    } catch (e) {
      setStatus(`Remove: ${e.message}`, true);
    }
    updateControls();
  });

  function prompted() {
    return [...new Set([...video.clicks.keys()].map((k) => Number(k.split(":")[1])))];
  }

  // ---- tracking ---------------------------------------------------------------------------

  /** One propagation, shown frame by frame as its NDJSON lines arrive. */
  async function propagate(body, signal) {
    const res = await fetch(`/api/videos/${video.session}/propagate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    if (!res.ok) {
      const json = await res.json().catch(() => ({}));
      throw new Error(json.error ?? `HTTP ${res.status}`);
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        if (line.error) throw new Error(line.error);
        if (line.done) return line.frames;
        takeFrame(line);
        show(line.frame_idx);
        setStatus(`Tracking… frame ${line.frame_idx + 1} / ${video.frames.length}`);
      }
    }
    throw new Error("the tracking stream ended early");
  }

  $("v-track").addEventListener("click", async () => {
    const starts = [...video.clicks.keys()].map((k) => Number(k.split(":")[0]));
    if (!starts.length) return;
    const start = Math.min(...starts);
    const abort = new AbortController();
    video.running = abort;
    updateControls();
    const t0 = performance.now();
    try {
      let n = await propagate({ start_frame_idx: start }, abort.signal);
      if (start > 0) n += await propagate({ start_frame_idx: start, reverse: true }, abort.signal);
      const ms = Math.round((performance.now() - t0) / Math.max(1, n));
      document.body.dataset.videoTracked = String(video.masks.filter((m) => m?.size).length);
      setStatus(
        `Tracked ${prompted().length} object(s) through ${video.frames.length} frames (${ms} ms a frame). Correct any frame by clicking it, then Track again.`,
      );
    } catch (e) {
      setStatus(
        abort.signal.aborted ? "Tracking stopped." : `Tracking: ${e.message}`,
        !abort.signal.aborted,
      );
    }
    video.running = null;
    updateControls();
  });

  function stopRunning() {
    video.running?.abort();
    video.running = null;
    if (video.webcam) {
      video.webcam.getTracks().forEach((t) => t.stop());
      video.webcam = null;
    }
  }
  $("v-stop").addEventListener("click", () => {
    stopRunning();
    updateControls();
  });

  // ---- export -----------------------------------------------------------------------------

  /** Per-frame masks as COCO: one image per frame, one annotation per object and frame. */
  function exportCoco() {
    const images = [], annotations = [];
    video.frames.forEach((_, f) => {
      images.push({
        id: f + 1,
        file_name: `${video.name}_${String(f).padStart(5, "0")}.png`,
        frame_idx: f,
        width: video.width,
        height: video.height,
      });
      for (const [objId, m] of video.masks[f] ?? []) {
        if (!m.area) continue;
        annotations.push({
          id: annotations.length + 1,
          image_id: f + 1,
          category_id: 1,
          track_id: objId,
          segmentation: m.rle,
          area: m.area,
          bbox: rleBox(m.rle),
          iscrowd: 0,
          object_score: m.score,
        });
      }
    });
    return {
      info: { description: `wgsam video masks of ${video.name}` },
      images,
      annotations,
      categories: [{ id: 1, name: "object" }],
    };
  }

  /** [x, y, w, h] of an RLE mask. */
  function rleBox(rle) {
    const [h] = rle.size;
    const counts = rleCounts(rle.counts);
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1, pos = 0;
    for (let k = 0; k < counts.length; k++) {
      if (k % 2 === 1 && counts[k] > 0) {
        const a = pos, b = pos + counts[k] - 1;
        const xa = Math.floor(a / h), xb = Math.floor(b / h);
        x0 = Math.min(x0, xa);
        x1 = Math.max(x1, xb);
        y0 = Math.min(y0, xa === xb ? a % h : 0);
        y1 = Math.max(y1, xa === xb ? b % h : h - 1);
      }
      pos += counts[k];
    }
    return x1 < 0 ? [0, 0, 0, 0] : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
  }

  $("v-export").addEventListener("click", () => {
    const blob = new Blob([JSON.stringify(exportCoco())], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${video.name}_masks_coco.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });

  // ---- controls ---------------------------------------------------------------------------

  function statusLine() {
    return `${video.frames.length} frame(s) of ${video.width}x${video.height}.`;
  }

  function updateControls() {
    const have = video.frames.length > 0;
    const busy = !!video.running;
    $("v-track").disabled = !have || busy || video.clicks.size === 0;
    $("v-stop").disabled = !busy;
    $("v-new-obj").disabled = !have || busy;
    $("v-remove-obj").disabled = !have || busy;
    $("v-export").disabled = !video.masks.some((m) => m?.size);
    $("v-frame").disabled = !have;
    $("v-file").disabled = busy;
    $("v-webcam").disabled = busy;
  }

  globalThis.addEventListener("resize", () => video.width && fitStage());
  // For scripts and tests: the export as an object, and the state in words.
  globalThis.wgsamVideo = { exportCoco, show, state: video };
})();
