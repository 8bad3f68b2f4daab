/**
 * The HTTP application against a stand-in engine (no GPU): routes, uploads, prompts, formats,
 * handles, and the bad-input battery, each refusal with its exact status code and a JSON error.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { encodeMaskPng } from "../../src/image.ts";
import { parseNpy } from "../../src/util/npy.ts";
import { FakeEngine } from "./fake_engine.ts";
import {
  BASE,
  call,
  decodeCocoMask,
  decodePngMask,
  FIXTURE_IMAGE,
  makeJpeg,
  makePng,
} from "./helpers.ts";

const quiet = () => {};

function setup(limits = {}) {
  const engine = new FakeEngine();
  const app = createApp({ engine, limits, log: quiet });
  return { engine, app };
}

async function uploadFixture(app: ReturnType<typeof setup>["app"]) {
  const r = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "image/png",
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as { id: string; width: number; height: number; cached: boolean };
}

Deno.test("info, page and upload (raw, multipart, JPEG, cached)", async () => {
  const { app } = setup();
  const info = await call(app, "GET", "/api/info");
  assert.equal(info.status, 200);
  assert.equal((info.json.server as { name: string }).name, "wgsam");
  assert.equal((info.json.model as { name: string }).name, "fake");
  assert.match(String(info.json.warning), /meaningless/);

  const page = await app(new Request(BASE + "/"));
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /text\/html/);
  assert.match(await page.text(), /<canvas/);
  const js = await app(new Request(BASE + "/app.js"));
  assert.equal(js.status, 200);
  await js.body?.cancel();

  const first = await uploadFixture(app);
  assert.deepEqual([first.width, first.height, first.cached], [160, 107, false]);
  const again = await uploadFixture(app);
  assert.equal(again.id, first.id);
  assert.equal(again.cached, true);

  const form = new FormData();
  form.append(
    "image",
    new Blob([await Deno.readFile(FIXTURE_IMAGE)], { type: "image/png" }),
    "x.png",
  );
  const multi = await call(app, "POST", "/api/images", form);
  assert.equal(multi.status, 200);
  assert.equal(multi.json.id, first.id);

  const jpeg = await call(app, "POST", "/api/images", await makeJpeg(40, 30), {
    "content-type": "image/jpeg",
  });
  assert.equal(jpeg.status, 200);
  assert.deepEqual([jpeg.json.width, jpeg.json.height], [40, 30]);

  // curl --data-binary @photo.png without -H: curl says form-urlencoded; the bytes say PNG.
  const curlDefault = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "application/x-www-form-urlencoded",
  });
  assert.equal(curlDefault.status, 200, JSON.stringify(curlDefault.json));
  assert.equal(curlDefault.json.id, first.id);
  const form415 = await call(app, "POST", "/api/images", "a=1&b=2", {
    "content-type": "application/x-www-form-urlencoded",
  });
  assert.equal(form415.status, 415);
  assert.match(String(form415.json.error), /unsupported Content-Type/);

  const got = await call(app, "GET", `/api/images/${first.id}`);
  assert.deepEqual(got.json, { id: first.id, width: 160, height: 107, status: "ready" });
});

Deno.test("segment: PNG and RLE masks, handles, batches, embedding, everything", async () => {
  const { app } = setup();
  const { id } = await uploadFixture(app);
  const w = 160, h = 107;
  // The fake's candidate c is a disc of radius 5 + 4c around the foreground point.
  const disc = (cx: number, cy: number, r: number) => {
    const m = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) m[y * w + x] = r - Math.hypot(x - cx, y - cy) > 0 ? 1 : 0;
    }
    return m;
  };

  const png = await call(app, "POST", `/api/images/${id}/segment`, {
    points: [[50, 40]],
    labels: [1],
  });
  assert.equal(png.status, 200, JSON.stringify(png.json));
  const masks = png.json.masks as { png_base64: string; score: number; low_res_handle: string }[];
  assert.equal(masks.length, 3); // one point, multimask by default
  for (let c = 0; c < 3; c++) {
    const got = await decodePngMask(masks[c].png_base64);
    assert.deepEqual([got.w, got.h], [w, h]);
    assert.deepEqual(got.mask, disc(50, 40, 5 + 4 * c));
    assert.ok(Math.abs(masks[c].score - (0.9 + 0.03 * c)) < 1e-6);
  }
  assert.equal(png.json.best, 2);
  assert.equal(png.json.low_res_handle, masks[2].low_res_handle);

  const rle = await call(app, "POST", `/api/images/${id}/segment`, {
    points: [[50, 40]],
    labels: [1],
    multimask: false,
    format: "rle",
  });
  assert.equal(rle.status, 200);
  const rleMasks = rle.json.masks as { rle: { size: [number, number]; counts: string } }[];
  assert.equal(rleMasks.length, 1);
  assert.deepEqual(rleMasks[0].rle.size, [h, w]);
  assert.deepEqual(decodeCocoMask(rleMasks[0].rle), disc(50, 40, 5));

  // mask_input from the earlier answer: the fake shifts its logits by the input's first value (1).
  const refined = await call(app, "POST", `/api/images/${id}/segment`, {
    points: [[50, 40]],
    labels: [1],
    multimask: false,
    format: "rle",
    mask_input: png.json.low_res_handle as string,
  });
  assert.equal(refined.status, 200, JSON.stringify(refined.json));
  assert.deepEqual(decodeCocoMask((refined.json.masks as typeof rleMasks)[0].rle), disc(50, 40, 6));

  const batch = await call(app, "POST", `/api/images/${id}/segment`, {
    boxes: [[10, 10, 30, 20], [100, 50, 150, 100]],
    format: "rle",
  });
  assert.equal(batch.status, 200, JSON.stringify(batch.json));
  const results = batch.json.results as { masks: typeof rleMasks }[];
  assert.equal(results.length, 2);
  const boxMask = decodeCocoMask(results[1].masks[0].rle);
  assert.equal(boxMask[75 * w + 125], 1);
  assert.equal(boxMask[20 * w + 20], 0);
  // The masks come once, per box: no flat copy beside the results.
  assert.equal(batch.json.masks, undefined);

  const emb = await app(new Request(`${BASE}/api/images/${id}/embedding`));
  assert.equal(emb.status, 200);
  const npy = parseNpy(new Uint8Array(await emb.arrayBuffer()));
  assert.deepEqual(npy.shape, [1, 2, 2, 2]);

  const all = await call(app, "POST", `/api/images/${id}/everything`, {
    points_per_side: 4,
  });
  assert.equal(all.status, 200, JSON.stringify(all.json));
  const anns = all.json.annotations as { segmentation: { counts: string; size: number[] } }[];
  assert.ok(anns.length > 0);
  assert.equal(typeof anns[0].segmentation.counts, "string");
  assert.deepEqual(anns[0].segmentation.size, [h, w]);
  assert.equal(all.json.count, anns.length);

  const del = await call(app, "DELETE", `/api/images/${id}`);
  assert.equal(del.status, 200);
  assert.equal((await call(app, "GET", `/api/images/${id}`)).status, 404);
});

Deno.test("bad-input battery: exact status codes, JSON errors, server healthy after", async () => {
  const { app, engine } = setup({
    maxUploadBytes: 200_000,
    maxJsonBytes: 4096,
    maxPixels: 300 * 300,
  });
  const { id } = await uploadFixture(app);
  const seg = `/api/images/${id}/segment`;
  const json = { "content-type": "application/json" };
  const cases: [
    string,
    string,
    string,
    BodyInit | Record<string, unknown> | unknown[] | undefined,
    number,
    Record<string, string>?,
  ][] = [
    // routes and methods
    ["unknown route", "GET", "/nope", undefined, 404],
    ["unknown api route", "GET", "/api/images/x/y/z", undefined, 404],
    ["unknown id segment", "POST", "/api/images/deadbeef/segment", { points: [[1, 1]] }, 404],
    ["unknown id embedding", "GET", "/api/images/deadbeef/embedding", undefined, 404],
    ["unknown id everything", "POST", "/api/images/deadbeef/everything", {}, 404],
    ["odd id", "GET", "/api/images/%2E%2E%2Fetc", undefined, 404],
    ["malformed escape", "POST", "/api/images/%E0%A4%A/segment", { points: [[1, 1]] }, 404],
    ["GET upload", "GET", "/api/images", undefined, 405],
    ["POST info", "POST", "/api/info", {}, 405],
    ["GET segment", "GET", seg, undefined, 405],
    ["PUT image", "PUT", `/api/images/${id}`, undefined, 405],
    ["POST page", "POST", "/", "x", 405],
    // JSON bodies
    ["malformed JSON", "POST", seg, "{points: [", 400, json],
    ["JSON array", "POST", seg, [[1, 2]], 400],
    ["JSON string", "POST", seg, '"points"', 400, json],
    ["not UTF-8", "POST", seg, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 400, json],
    [
      "JSON too large",
      "POST",
      seg,
      JSON.stringify({ points: [[1, 1]], pad: "x".repeat(5000) }),
      413,
      json,
    ],
    ["empty prompt", "POST", seg, {}, 400],
    ["unknown field", "POST", seg, { points: [[1, 1]], pointz: 1 }, 400],
    // points and labels
    ["point outside", "POST", seg, { points: [[1000, 10]] }, 400],
    ["point negative outside", "POST", seg, { points: [[10, -100]] }, 400],
    ["point NaN string", "POST", seg, { points: [["NaN", 10]] }, 400],
    ["point null", "POST", seg, { points: [[null, 10]] }, 400],
    ["point Infinity", "POST", seg, '{"points": [[1e999, 10]]}', 400, json],
    ["point huge", "POST", seg, { points: [[1e300, 10]] }, 400],
    ["point 3 coords", "POST", seg, { points: [[1, 2, 3]] }, 400],
    ["points not array", "POST", seg, { points: "1,2" }, 400],
    ["too many points", "POST", seg, { points: Array.from({ length: 65 }, () => [1, 1]) }, 400],
    ["label 2", "POST", seg, { points: [[1, 1]], labels: [2] }, 400],
    ["label -1", "POST", seg, { points: [[1, 1]], labels: [-1] }, 400],
    ["label string", "POST", seg, { points: [[1, 1]], labels: ["1"] }, 400],
    ["label 0.5", "POST", seg, { points: [[1, 1]], labels: [0.5] }, 400],
    ["labels count", "POST", seg, { points: [[1, 1], [2, 2]], labels: [1] }, 400],
    ["labels alone", "POST", seg, { labels: [1] }, 400],
    // boxes
    ["box x0 > x1", "POST", seg, { box: [50, 10, 20, 30] }, 400],
    ["box y0 > y1", "POST", seg, { box: [10, 50, 20, 30] }, 400],
    ["box 3 numbers", "POST", seg, { box: [1, 2, 3] }, 400],
    ["box outside", "POST", seg, { box: [0, 0, 5000, 50] }, 400],
    ["box NaN", "POST", seg, { box: [0, 0, "NaN", 50] }, 400],
    ["box and boxes", "POST", seg, { box: [0, 0, 5, 5], boxes: [[0, 0, 5, 5]] }, 400],
    ["boxes empty", "POST", seg, { boxes: [] }, 400],
    ["too many boxes", "POST", seg, { boxes: Array.from({ length: 65 }, () => [0, 0, 5, 5]) }, 400],
    // other fields
    ["multimask string", "POST", seg, { points: [[1, 1]], multimask: "yes" }, 400],
    ["format jpg", "POST", seg, { points: [[1, 1]], format: "jpg" }, 400],
    ["mask_input unknown", "POST", seg, { points: [[1, 1]], mask_input: "abc" }, 400],
    ["mask_input number", "POST", seg, { points: [[1, 1]], mask_input: 5 }, 400],
    // segment everything
    ["amg unknown param", "POST", `/api/images/${id}/everything`, { points_per_sid: 4 }, 400],
    ["amg too many points", "POST", `/api/images/${id}/everything`, { points_per_side: 1000 }, 400],
    ["amg fractional", "POST", `/api/images/${id}/everything`, { points_per_side: 2.5 }, 400],
    ["amg NaN", "POST", `/api/images/${id}/everything`, { pred_iou_thresh: "NaN" }, 400],
    ["amg threshold > 1", "POST", `/api/images/${id}/everything`, { pred_iou_thresh: 7 }, 400],
    [
      "amg output mode",
      "POST",
      `/api/images/${id}/everything`,
      { output_mode: "binary_mask" },
      400,
    ],
    ["amg crop layers", "POST", `/api/images/${id}/everything`, { crop_n_layers: 9 }, 400],
    ["amg grids bad", "POST", `/api/images/${id}/everything`, { point_grids: [[[2, 0]]] }, 400],
    // uploads
    ["upload text type", "POST", "/api/images", "hello", 415, { "content-type": "text/plain" }],
    ["upload empty", "POST", "/api/images", new Uint8Array(0), 400, {
      "content-type": "image/png",
    }],
    ["upload garbage", "POST", "/api/images", crypto.getRandomValues(new Uint8Array(1000)), 400, {
      "content-type": "image/png",
    }],
    ["upload too large", "POST", "/api/images", new Uint8Array(300_000), 413, {
      "content-type": "image/png",
    }],
    [
      "multipart no field",
      "POST",
      "/api/images",
      (() => {
        const f = new FormData();
        f.append("picture", new Blob([new Uint8Array(10)]), "x.png");
        return f;
      })(),
      400,
    ],
    [
      "multipart text field",
      "POST",
      "/api/images",
      (() => {
        const f = new FormData();
        f.append("image", "not a file");
        return f;
      })(),
      400,
    ],
    ["multipart broken", "POST", "/api/images", "--xx\r\nbroken", 400, {
      "content-type": "multipart/form-data; boundary=yy",
    }],
  ];
  for (const [name, method, path, body, status, headers] of cases) {
    const r = await call(app, method, path, body, headers);
    assert.equal(r.status, status, `${name}: got ${r.status} ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error, "string", `${name}: no JSON error`);
    if (status === 405) assert.ok(r.headers.get("allow"), `${name}: no Allow header`);
  }

  // Random bodies (seeded, bounded): only 200 or 400, never a 500.
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const values = [
    0,
    1,
    -1,
    2,
    0.5,
    1e308,
    -1e308,
    80,
    50,
    "1",
    "NaN",
    null,
    true,
    [],
    {},
    [1],
    [
      1,
      2,
    ],
    [1, 2, 3, 4],
    [[1, 2]],
    [[1, 2], [3, 4]],
    [[1, 2, 3, 4]],
    "png",
    "rle",
  ];
  const keys = ["points", "labels", "box", "boxes", "multimask", "format", "mask_input"];
  for (let i = 0; i < 300; i++) {
    const body: Record<string, unknown> = {};
    for (const k of keys) if (rand() < 0.5) body[k] = values[Math.floor(rand() * values.length)];
    const r = await call(app, "POST", seg, body);
    assert.ok(r.status === 200 || r.status === 400, `${JSON.stringify(body)}: ${r.status}`);
  }

  // Truncated PNG: a valid header, then nothing.
  const png = await Deno.readFile(FIXTURE_IMAGE);
  const cut = await call(app, "POST", "/api/images", png.slice(0, 60), {
    "content-type": "image/png",
  });
  assert.equal(cut.status, 400, JSON.stringify(cut.json));

  // Decompression bombs: a valid 5000x5000 PNG of a few kB, and a header claiming 100000^2.
  const bomb = await encodeMaskPng(new Uint8Array(5000 * 5000), 5000, 5000);
  assert.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`);
  const t0 = performance.now();
  const b1 = await call(app, "POST", "/api/images", bomb, { "content-type": "image/png" });
  assert.equal(b1.status, 413, JSON.stringify(b1.json));
  assert.ok(
    performance.now() - t0 < 2000,
    "the bomb was decoded instead of refused from its header",
  );
  const fakeHeader = png.slice(0, 33);
  new DataView(fakeHeader.buffer).setUint32(16, 100_000);
  new DataView(fakeHeader.buffer).setUint32(20, 100_000);
  assert.equal(
    (await call(app, "POST", "/api/images", fakeHeader, { "content-type": "image/png" })).status,
    413,
  );
  // An image over the pixel limit: 400 x 300 > 300 x 300.
  assert.equal(
    (await call(app, "POST", "/api/images", await makePng(400, 300), {
      "content-type": "image/png",
    })).status,
    413,
  );

  // A body streamed without Content-Length stops at the limit.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(50_000));
      c.close();
    },
  });
  const streamed = await app(
    new Request(BASE + "/api/images", {
      method: "POST",
      body: stream,
      headers: { "content-type": "image/png" },
    }),
  );
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();

  // An unexpected exception in the engine is a 500 JSON, and the next request works.
  const realPredict = engine.predict.bind(engine);
  engine.predict = () => Promise.reject(new Error("kaboom"));
  const logs: string[] = [];
  const crashApp = createApp({ engine, log: (l) => logs.push(l) });
  const { id: id2 } = await uploadFixture(crashApp);
  const boom = await call(crashApp, "POST", `/api/images/${id2}/segment`, { points: [[5, 5]] });
  assert.equal(boom.status, 500);
  assert.match(String(boom.json.error), /kaboom/);
  assert.ok(logs.some((l) => l.startsWith("ERROR") && l.includes("kaboom")));
  engine.predict = () => Promise.reject(new RangeError("mask_input has the wrong size"));
  assert.equal(
    (await call(crashApp, "POST", `/api/images/${id2}/segment`, { points: [[5, 5]] })).status,
    400,
  );
  engine.predict = realPredict;
  assert.equal(
    (await call(crashApp, "POST", `/api/images/${id2}/segment`, { points: [[5, 5]] })).status,
    200,
  );

  const info = await call(app, "GET", "/api/info");
  assert.equal(info.status, 200);
  assert.equal((info.json.queue as { running: boolean }).running, false);
  const ok = await call(app, "POST", seg, { points: [[5, 5]] });
  assert.equal(ok.status, 200);
});

Deno.test("GPU queue: one call at a time, 503 with Retry-After when full, time limits", async () => {
  const { app, engine } = setup({ maxQueue: 2, requestTimeoutMs: 2000 });
  const { id } = await uploadFixture(app);
  engine.delayMs = 100;
  engine.maxActive = 0;
  const seg = `/api/images/${id}/segment`;
  // Each segment is two engine calls (setImage, predict) of 100 ms: 1 runs, 2 wait, 3 refused.
  const answers = await Promise.all(
    Array.from({ length: 6 }, () => call(app, "POST", seg, { points: [[5, 5]] })),
  );
  const codes = answers.map((a) => a.status).sort();
  assert.deepEqual(codes, [200, 200, 200, 503, 503, 503]);
  for (const a of answers.filter((a) => a.status === 503)) {
    assert.equal(a.headers.get("retry-after"), "2");
    assert.match(String(a.json.error), /busy/);
  }
  assert.equal(engine.maxActive, 1);

  // Time limit: a running request past it gets 504; one still waiting gets 503 and never runs;
  // the queue stays usable and never overlaps the late work with the next job.
  const slow = setup({ maxQueue: 4, requestTimeoutMs: 150 });
  const { id: sid } = await uploadFixture(slow.app);
  slow.engine.delayMs = 120; // setImage + predict = 240 ms > 150 ms
  slow.engine.maxActive = 0;
  const sseg = `/api/images/${sid}/segment`;
  const [first, second] = await Promise.all([
    call(slow.app, "POST", sseg, { points: [[5, 5]] }),
    call(slow.app, "POST", sseg, { points: [[5, 5]] }),
  ]);
  assert.equal(first.status, 504, JSON.stringify(first.json));
  assert.equal(second.status, 503, JSON.stringify(second.json));
  slow.engine.delayMs = 0;
  const after = await call(slow.app, "POST", sseg, { points: [[5, 5]] });
  assert.equal(after.status, 200);
  assert.equal(slow.engine.maxActive, 1);
  const q = (await call(slow.app, "GET", "/api/info")).json.queue as Record<string, number>;
  assert.equal(q.waiting, 0);
  assert.ok(q.timedOut >= 2);
});

Deno.test("image store and handles are bounded LRUs", async () => {
  // Room for two 160x107 RGB images (51 kB each).
  const { app } = setup({ imageCacheBytes: 120_000, handleCacheBytes: 8 * 8 * 4 * 4 });
  const ids: string[] = [];
  for (let s = 0; s < 3; s++) {
    const r = await call(app, "POST", "/api/images", await makePng(160, 107, s), {
      "content-type": "image/png",
    });
    assert.equal(r.status, 200);
    ids.push(r.json.id as string);
  }
  assert.equal((await call(app, "GET", `/api/images/${ids[0]}`)).status, 404);
  assert.equal((await call(app, "GET", `/api/images/${ids[2]}`)).status, 200);
  const cache = (await call(app, "GET", "/api/info")).json.cache as {
    images: { count: number; bytes: number };
  };
  assert.equal(cache.images.count, 2);
  assert.ok(cache.images.bytes <= 120_000);
  // An image larger than the whole store is refused before the encoder runs.
  const { app: small, engine: smallEngine } = setup({ imageCacheBytes: 10_000 });
  const tooBig = await call(small, "POST", "/api/images", await makePng(160, 107, 0), {
    "content-type": "image/png",
  });
  assert.equal(tooBig.status, 413);
  assert.match(String(tooBig.json.error), /larger than the whole image cache/);
  assert.equal(smallEngine.calls, 0);

  // Four handles fit; the fifth evicts the first.
  const seg = `/api/images/${ids[2]}/segment`;
  const a = await call(app, "POST", seg, { points: [[5, 5]], multimask: true });
  const handle0 = (a.json.masks as { low_res_handle: string }[])[0].low_res_handle;
  await call(app, "POST", seg, { points: [[5, 5]], multimask: true });
  const stale = await call(app, "POST", seg, { points: [[5, 5]], mask_input: handle0 });
  assert.equal(stale.status, 400);
  assert.match(String(stale.json.error), /expired/);
  // A handle of another image is refused.
  const other = await call(app, "POST", `/api/images/${ids[1]}/segment`, {
    points: [[5, 5]],
    mask_input: a.json.low_res_handle as string,
  });
  assert.ok(other.status === 400);
});

Deno.test("DELETE forgets the image and its low_res_handles, and only those", async () => {
  const { app } = setup();
  const ids: string[] = [];
  for (let k = 0; k < 2; k++) {
    const r = await call(app, "POST", "/api/images", await makePng(40, 30, k), {
      "content-type": "image/png",
    });
    ids.push(r.json.id as string);
  }
  const segment = (id: string, body: Record<string, unknown>) =>
    call(app, "POST", `/api/images/${id}/segment`, body);
  const gone = await segment(ids[0], { points: [[5, 5]], multimask: false });
  const kept = await segment(ids[1], { points: [[5, 5]], multimask: false });
  assert.equal((await call(app, "DELETE", `/api/images/${ids[0]}`)).status, 200);
  assert.equal((await call(app, "GET", `/api/images/${ids[0]}`)).status, 404);
  // Uploaded again (same pixels, same id): the old handle is no longer valid.
  await call(app, "POST", "/api/images", await makePng(40, 30, 0), {
    "content-type": "image/png",
  });
  const reused = await segment(ids[0], { mask_input: gone.json.low_res_handle as string });
  assert.equal(reused.status, 400);
  assert.match(String(reused.json.error), /unknown or expired/);
  const other = await segment(ids[1], { mask_input: kept.json.low_res_handle as string });
  assert.equal(other.status, 200, JSON.stringify(other.json));
});
