/**
 * Issue #21 (server side) and #22.2/#22.6: hostile inputs must not freeze, bloat or hijack the
 * server. Each test reproduces one finding against the application handler (or a real
 * Deno.serve where the event loop matters) with the stand-in engine.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { parseEverythingRequest } from "../../src/server/validate.ts";
import { DEFAULT_LIMITS } from "../../src/server/limits.ts";
import { countJpegScans } from "../../src/server/jpeg_scans.ts";
import { FakeEngine } from "./fake_engine.ts";
import { BASE, call, FIXTURE_IMAGE, makeJpeg } from "./helpers.ts";
import { hostileProgressiveJpeg } from "./hostile_jpeg.ts";

const quiet = () => {};

function setup(limits = {}, access = {}) {
  const engine = new FakeEngine();
  const app = createApp({ engine, limits, log: quiet, access });
  return { engine, app };
}

async function upload(app: ReturnType<typeof setup>["app"], bytes?: Uint8Array) {
  const r = await call(
    app,
    "POST",
    "/api/images",
    (bytes ?? await Deno.readFile(FIXTURE_IMAGE)) as Uint8Array<ArrayBuffer>,
    { "content-type": "image/png" },
  );
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as { id: string };
}

Deno.test("#21.1 a progressive JPEG of 10,000 scans is a quick 413, never decoded", async () => {
  const hostile = hostileProgressiveJpeg(4096, 10_000);
  assert.ok(hostile.length < 500_000, `${hostile.length} bytes`);
  assert.equal(countJpegScans(hostile), 10_001);
  // A baseline JPEG is one scan: the count is not fooled by entropy-coded data.
  assert.equal(countJpegScans(await makeJpeg(64, 48)), 1);
  const { app, engine } = setup();
  try {
    const t0 = performance.now();
    const r = await call(app, "POST", "/api/images", hostile as Uint8Array<ArrayBuffer>, {
      "content-type": "image/jpeg",
    });
    const ms = performance.now() - t0;
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.match(String(r.json.error), /10001 scans, over the limit of 64/);
    // Counting scans is a pass over the bytes; decoding them was ~80 s.
    assert.ok(ms < 20_000, `${ms} ms`);
    assert.equal(engine.calls, 0);
    await upload(app); // the decoder still serves the next upload
  } finally {
    app.close();
  }
});

Deno.test("#21.1 a decode past its time limit is ended (worker terminated), the loop stays free", async () => {
  // Scans allowed, decode time not: 1000 scans of 4096x4096 decode for many seconds.
  const { app } = setup({ maxJpegScans: 100_000, decodeTimeoutMs: 1000 });
  try {
    await upload(app); // a warm worker: the limit below is the decode's own time
    const hostile = hostileProgressiveJpeg(4096, 1000);
    let infoAnswers = 0;
    let done = false;
    const pending = call(app, "POST", "/api/images", hostile as Uint8Array<ArrayBuffer>, {
      "content-type": "image/jpeg",
    }).finally(() => done = true);
    // The event loop is free while the worker decodes: /api/info answers meanwhile.
    while (!done) {
      const info = await call(app, "GET", "/api/info");
      assert.equal(info.status, 200);
      infoAnswers++;
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await pending;
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.match(String(r.json.error), /decoding took longer than 1 s/);
    assert.ok(infoAnswers >= 3, `${infoAnswers} answers from /api/info during the decode`);
    await upload(app); // a fresh worker decodes the next one
  } finally {
    app.close();
  }
});

Deno.test("#21.7 Host and Origin allow-lists, JSON only, CORS for allowed origins only", async () => {
  const { app } = setup({}, {
    allowHosts: ["seg.example.org"],
    allowOrigins: ["http://tool.test:3000"],
  });
  try {
    const { id } = await upload(app);
    const seg = `/api/images/${id}/segment`;
    const at = (host: string, path: string, init: RequestInit = {}) =>
      app(new Request(`http://${host}${path}`, init));

    // DNS rebinding: a foreign name is refused, even for the embedding; IPs and localhost pass.
    const rebind = await at("rebind.attacker.example:8787", `/api/images/${id}/embedding`);
    assert.equal(rebind.status, 403);
    assert.match((await rebind.json()).error, /Host "rebind\.attacker\.example" is not allowed/);
    assert.equal((await at("rebind.attacker.example", "/")).status, 403);
    for (const host of ["127.0.0.1:8787", "[::1]:8787", "localhost:8787", "seg.example.org"]) {
      const r = await at(host, "/api/info");
      assert.equal(r.status, 200, host);
      await r.body?.cancel();
    }

    // Cross-site: multipart upload, text/plain "JSON", a form to /everything.
    const evil = { origin: "https://evil.example" };
    const form = new FormData();
    form.set("image", new Blob([await Deno.readFile(FIXTURE_IMAGE)]), "x.png");
    const up = await call(app, "POST", "/api/images", form, evil);
    assert.equal(up.status, 403);
    assert.match(String(up.json.error), /Origin "https:\/\/evil\.example" is not allowed/);
    const plain = await call(app, "POST", seg, '{"points":[[5,5]]}', {
      ...evil,
      "content-type": "text/plain",
    });
    assert.equal(plain.status, 403);
    const everything = await call(app, "POST", `/api/images/${id}/everything`, "a=1", {
      ...evil,
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(everything.status, 403);
    // Without Origin, a browser's cross-site mark is enough to refuse an API call.
    const img = await call(app, "GET", `/api/images/${id}/embedding`, undefined, {
      "sec-fetch-site": "cross-site",
    });
    assert.equal(img.status, 403);
    // ...but following a link to the page from another site works.
    const nav = await app(
      new Request(`${BASE}/`, { headers: { "sec-fetch-site": "cross-site" } }),
    );
    assert.equal(nav.status, 200);
    await nav.body?.cancel();

    // JSON routes want application/json even from the same origin (or no Origin at all).
    const textJson = await call(app, "POST", seg, '{"points":[[5,5]]}', {
      "content-type": "text/plain;charset=UTF-8",
    });
    assert.equal(textJson.status, 415);
    assert.match(String(textJson.json.error), /send application\/json/);
    const formJson = await call(app, "POST", `/api/images/${id}/everything`, "a=1", {
      "content-type": "application/x-www-form-urlencoded",
    });
    assert.equal(formJson.status, 415);

    // Same origin: allowed, no CORS headers needed.
    const same = await call(app, "POST", seg, { points: [[5, 5]] }, { origin: BASE });
    assert.equal(same.status, 200, JSON.stringify(same.json));
    assert.equal(same.headers.get("access-control-allow-origin"), null);

    // An allowed foreign origin: answers and preflights carry CORS headers for it.
    const tool = { origin: "http://tool.test:3000" };
    const cors = await call(app, "POST", seg, { points: [[5, 5]] }, tool);
    assert.equal(cors.status, 200);
    assert.equal(cors.headers.get("access-control-allow-origin"), "http://tool.test:3000");
    const pre = await app(
      new Request(BASE + seg, {
        method: "OPTIONS",
        headers: {
          ...tool,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      }),
    );
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "http://tool.test:3000");
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /content-type/);
    const badPre = await app(
      new Request(BASE + seg, {
        method: "OPTIONS",
        headers: { ...evil, "access-control-request-method": "POST" },
      }),
    );
    assert.equal(badPre.status, 403);
    assert.equal(badPre.headers.get("access-control-allow-origin"), null);
    await badPre.body?.cancel();
  } finally {
    app.close();
  }
});

Deno.test("#21.4 request bodies share one byte budget: past it a 503 with Retry-After, at once", async () => {
  // Room for two 1 MB bodies at once.
  const { app } = setup({ maxBufferedBytes: 2_500_000, maxUploadBytes: 2_000_000 });
  try {
    // Three uploads that declare 1 MB each and then stall: the third is refused before a byte.
    const stalled: ReadableStreamDefaultController<Uint8Array>[] = [];
    const pending: Promise<Response>[] = [];
    for (let k = 0; k < 2; k++) {
      const body = new ReadableStream<Uint8Array>({ start: (c) => void stalled.push(c) });
      pending.push(app(
        new Request(BASE + "/api/images", {
          method: "POST",
          body,
          headers: { "content-type": "image/png", "content-length": "1000000" },
        }),
      ));
    }
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(app.bufferedBytes(), 2_000_000);
    const t0 = performance.now();
    const third = await call(app, "POST", "/api/images", new Uint8Array(1_000_000), {
      "content-type": "image/png",
      "content-length": "1000000",
    });
    assert.equal(third.status, 503, JSON.stringify(third.json));
    assert.equal(third.headers.get("retry-after"), "2");
    assert.match(String(third.json.error), /request bodies in progress already hold/);
    assert.ok(performance.now() - t0 < 1000);
    // A body without Content-Length is counted as it arrives, and refused when it overflows.
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(100_000));
        c.close();
      },
    });
    const streamed = await call(app, "POST", "/api/images", chunked, {
      "content-type": "image/png",
    });
    assert.equal(streamed.status, 503);
    // The stalled ones end (the client goes away); their bytes are given back.
    for (const c of stalled) c.error(new Error("client gone"));
    for (const p of pending) assert.equal((await p).status, 400);
    assert.equal(app.bufferedBytes(), 0);
    await upload(app);
    assert.equal(app.bufferedBytes(), 0);
  } finally {
    app.close();
  }
});

Deno.test("#21.8 at the time limit, segment everything frees the GPU queue within one batch", async () => {
  // points_per_batch 1024 on a small image is cut to the work bound: 64 points at 1024^2.
  const p = parseEverythingRequest({ points_per_batch: 1024 }, 160, 107, DEFAULT_LIMITS);
  assert.equal(p.pointsPerBatch, 64);
  // Larger images: the logits' memory bound is the tighter one.
  const big = parseEverythingRequest({ points_per_batch: 1024 }, 2048, 2048, DEFAULT_LIMITS);
  assert.equal(big.pointsPerBatch, 5);

  const { app, engine } = setup({ requestTimeoutMs: 300 });
  try {
    const { id } = await upload(app);
    engine.delayMs = 200; // each batch of points: 200 ms
    const calls0 = engine.calls;
    // 16 x 16 = 256 points in batches of 8: 32 batches, 6.4 s if nothing stopped it.
    const t0 = performance.now();
    const r = await call(app, "POST", `/api/images/${id}/everything`, {
      points_per_side: 16,
      points_per_batch: 8,
    });
    assert.equal(r.status, 504, JSON.stringify(r.json));
    // The queue is free once the batch in flight ends, not after all 32.
    while (app.queue.stats().running) await new Promise((r) => setTimeout(r, 10));
    const heldMs = performance.now() - t0;
    const batches = engine.calls - calls0;
    assert.ok(batches <= 4, `${batches} engine calls after the deadline`);
    assert.ok(heldMs < 3000, `queue held ${heldMs} ms`);
  } finally {
    app.close();
  }
});

Deno.test("#21.12 an unknown field name is not echoed in full", async () => {
  const { app } = setup();
  try {
    const { id } = await upload(app);
    const name = "x".repeat(1_000_000);
    for (const route of ["segment", "everything"]) {
      const res = await app(
        new Request(`${BASE}/api/images/${id}/${route}`, {
          method: "POST",
          body: `{"${name}":1}`,
          headers: { "content-type": "application/json" },
        }),
      );
      const text = await res.text();
      assert.equal(res.status, 400, route);
      assert.ok(text.length < 1000, `${route}: ${text.length} bytes`);
      assert.match(
        JSON.parse(text).error,
        /unknown (field|parameter) "x{40}"\.\.\. \(1000000 characters\)/,
      );
    }
    // Names from Object.prototype are unknown too.
    const proto = await call(app, "POST", `/api/images/${id}/everything`, { toString: 1 });
    assert.equal(proto.status, 400);
    assert.match(String(proto.json.error), /unknown parameter "toString"/);
  } finally {
    app.close();
  }
});

Deno.test("#22.2 an encode longer than the time limit is not a 504: the upload waits for it", async () => {
  const { app, engine } = setup({ requestTimeoutMs: 200 });
  try {
    engine.delayMs = 600; // the encoder: three times the time limit
    const r = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
      "content-type": "image/png",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // A prompt is still bounded by the time limit...
    const seg = await call(app, "POST", `/api/images/${r.json.id}/segment`, { points: [[5, 5]] });
    assert.equal(seg.status, 504);
    while (app.queue.stats().running) await new Promise((r) => setTimeout(r, 10));
    // ...and waiting in the queue behind a long encode is bounded too.
    engine.delayMs = 600;
    const [a, b] = await Promise.all([
      call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
        "content-type": "image/png",
      }),
      (async () => {
        await new Promise((r) => setTimeout(r, 50));
        return await call(app, "POST", `/api/images/${r.json.id}/segment`, { points: [[5, 5]] });
      })(),
    ]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 503);
    assert.match(String(b.json.error), /waited longer than 200 ms in the queue/);
  } finally {
    app.close();
  }
});

Deno.test('#22.2 past uploadAnswerMs an upload answers 202 "encoding"; prompts wait for it', async () => {
  const { app, engine } = setup({ requestTimeoutMs: 200, uploadAnswerMs: 100 });
  try {
    engine.delayMs = 800; // the encode
    const up = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
      "content-type": "image/png",
    });
    assert.equal(up.status, 202, JSON.stringify(up.json));
    assert.equal(up.json.status, "encoding");
    assert.deepEqual([up.json.width, up.json.height], [160, 107]);
    engine.delayMs = 0; // prompts are quick
    const id = up.json.id as string;
    const during = await call(app, "GET", `/api/images/${id}`);
    assert.equal(during.json.status, "encoding");
    assert.ok((during.json.encoding_ms as number) >= 100);
    // A prompt sent meanwhile waits for the encode (longer than its own time limit) and runs.
    const seg = await call(app, "POST", `/api/images/${id}/segment`, { points: [[5, 5]] });
    assert.equal(seg.status, 200, JSON.stringify(seg.json));
    const after = await call(app, "GET", `/api/images/${id}`);
    assert.equal(after.json.status, "ready");
    // Uploaded again once ready: answered at once from the cache.
    const again = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
      "content-type": "image/png",
    });
    assert.equal(again.status, 200);
    assert.equal(again.json.cached, true);
  } finally {
    app.close();
  }
});

/** An engine whose predictions hold the thread (CPU work, as post-processing on lavapipe). */
class BusyEngine extends FakeEngine {
  spinMs = 0;
  started = Promise.withResolvers<void>();
  override predictBatch(...args: Parameters<FakeEngine["predictBatch"]>) {
    this.started.resolve();
    const end = performance.now() + this.spinMs;
    while (performance.now() < end) {
      // busy: nothing else runs on this thread meanwhile
    }
    return super.predictBatch(...args);
  }
}

Deno.test("#22.6 /api/info answers while segment everything runs", async () => {
  const engine = new BusyEngine();
  const app = createApp({ engine, log: quiet });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    const up = await fetch(`${base}/api/images`, {
      method: "POST",
      body: await Deno.readFile(FIXTURE_IMAGE),
      headers: { "content-type": "image/png" },
    });
    const { id } = await up.json();
    engine.spinMs = 150; // 32 batches: ~5 s of a blocked thread in all
    const order: string[] = [];
    const job = fetch(`${base}/api/images/${id}/everything`, {
      method: "POST",
      body: JSON.stringify({ points_per_side: 16, points_per_batch: 8 }),
      headers: { "content-type": "application/json" },
    }).then(async (r) => {
      await r.body?.cancel();
      order.push("everything");
      return r.status;
    });
    await engine.started.promise;
    const info = await fetch(`${base}/api/info`);
    const running = (await info.json()).queue.running;
    order.push("info");
    assert.equal(running, true, "the job was still running when /api/info answered");
    assert.equal(await job, 200);
    // Ordering, not timing: the answer came while the job still held the GPU queue.
    assert.deepEqual(order, ["info", "everything"]);
  } finally {
    app.close();
    await server.shutdown();
  }
});
