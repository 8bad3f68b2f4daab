/**
 * The video session routes (src/server/video_routes.ts) over a stand-in tracker: the session
 * life cycle, frames as PNG and raw RGBA, prompts and a streamed NDJSON propagation equal to
 * the tracker's own masks, a cancelled stream that stops the tracker, the bounds (sessions,
 * frames, bytes, idle expiry, the GPU queue) and a battery of bad inputs with their 4xx.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { FakeEngine } from "./fake_engine.ts";
import { fakeFactory, type FakeTracker } from "./fake_tracker.ts";
import { BASE, call, decodeCocoMask, makePng } from "./helpers.ts";
import type { Limits } from "../../src/server/limits.ts";

const W = 24, H = 16;

function sam2App(
  opts: { limits?: Partial<Limits>; delayMs?: number; family?: string; engineDelayMs?: number } =
    {},
) {
  const engine = new FakeEngine();
  engine.delayMs = opts.engineDelayMs ?? 0;
  (engine.info as { family?: string }).family = opts.family ?? "sam2";
  const factory = fakeFactory(opts.delayMs ?? 0);
  const app = createApp({ engine, log: () => {}, limits: opts.limits, video: factory });
  return { app, factory, engine };
}

async function openWithFrames(app: ReturnType<typeof createApp>, n: number) {
  const created = await call(app, "POST", "/api/videos", {});
  assert.equal(created.status, 201, JSON.stringify(created.json));
  const id = created.json.id as string;
  for (let i = 0; i < n; i++) {
    const r = await call(app, "POST", `/api/videos/${id}/frames`, await makePng(W, H, i + 1), {
      "content-type": "image/png",
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.frame_idx, i);
  }
  return id;
}

/** The NDJSON lines of a streamed response. */
async function ndjson(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  assert.ok(text.endsWith("\n"), "NDJSON ends each line with a newline");
  return text.trimEnd().split("\n").map((l) => JSON.parse(l));
}

function assertFrameEquals(
  line: Record<string, unknown>,
  tracker: FakeTracker,
  frame: number,
) {
  const want = tracker.result(frame);
  assert.equal(line.frame_idx, frame);
  const objects = line.objects as {
    obj_id: number;
    object_score: number;
    area: number;
    rle: { size: [number, number]; counts: string };
  }[];
  assert.deepEqual(objects.map((o) => o.obj_id), want.objIds);
  objects.forEach((o, k) => {
    assert.equal(o.object_score, want.objScores[k]);
    const mask = decodeCocoMask(o.rle);
    const expected = want.maskLogits[k].map((v) => (v > 0 ? 1 : 0));
    assert.deepEqual([...mask], [...expected], `frame ${frame} obj ${o.obj_id} mask`);
    assert.equal(o.area, expected.reduce((a, b) => a + b, 0));
  });
}

Deno.test("video routes: session, PNG + raw RGBA frames, prompts, streamed propagation, remove, delete", async () => {
  const { app, factory } = sam2App();
  try {
    const id = await openWithFrames(app, 3);
    // A raw RGBA frame as a page sends it (canvas getImageData).
    const rgba = new Uint8Array(W * H * 4).fill(200);
    const raw = await call(app, "POST", `/api/videos/${id}/frames?width=${W}&height=${H}`, rgba, {
      "content-type": "application/octet-stream",
    });
    assert.equal(raw.status, 200, JSON.stringify(raw.json));
    assert.equal(raw.json.frame_idx, 3);
    const tracker = factory.made[0];
    assert.equal(tracker.numFrames, 4);
    assert.deepEqual([...tracker.frames[3].data.subarray(0, 4)], [200, 200, 200, 200]);

    const p1 = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 0,
      obj_id: 1,
      points: [[5, 6]],
      labels: [1],
    });
    assert.equal(p1.status, 200, JSON.stringify(p1.json));
    assertFrameEquals(p1.json, tracker, 0);
    const p2 = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 0,
      obj_id: 4,
      box: [10, 2, 14, 8],
    });
    assert.equal(p2.status, 200);
    assert.deepEqual((p2.json.objects as { obj_id: number }[]).map((o) => o.obj_id), [1, 4]);

    const res = await propagate(app, id, {});
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^application\/x-ndjson/);
    const lines = await ndjson(res);
    assert.equal(lines.length, 5);
    for (let f = 0; f < 4; f++) assertFrameEquals(lines[f], tracker, f);
    assert.deepEqual(lines[4], { done: true, frames: 4 });

    const rev = await propagate(app, id, { start_frame_idx: 2, reverse: true, format: "polygon" });
    const revLines = await ndjson(rev);
    assert.deepEqual(revLines.map((l) => l.frame_idx).slice(0, 3), [2, 1, 0]);
    const poly = (revLines[0].objects as { polygons: number[][] }[])[0].polygons;
    assert.ok(poly.length >= 1 && poly[0].length >= 8, "a polygon per object");

    const removed = await call(app, "DELETE", `/api/videos/${id}/objects/1`);
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.json.obj_ids, [4]);
    const info = await call(app, "GET", `/api/videos/${id}`);
    assert.equal(info.json.frames, 4);
    assert.equal(info.json.width, W);
    assert.deepEqual(info.json.obj_ids, [4]);

    const del = await call(app, "DELETE", `/api/videos/${id}`);
    assert.equal(del.status, 200);
    await app.queue.always(() => {}); // the tracker is freed in the GPU queue's order
    assert.equal(tracker.disposed, true);
    assert.equal((await call(app, "GET", `/api/videos/${id}`)).status, 404);
  } finally {
    app.close();
  }
});

Deno.test("video routes: closing the stream stops the propagation; a busy session answers 409", async () => {
  const { app, factory } = sam2App({ delayMs: 20 });
  try {
    const id = await openWithFrames(app, 12);
    await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 0,
      obj_id: 0,
      points: [[3, 3]],
      labels: [1],
    });
    const res = await propagate(app, id, {});
    assert.equal(res.status, 200);
    const busy = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 1,
      obj_id: 0,
      points: [[3, 3]],
      labels: [1],
    });
    assert.equal(busy.status, 409);
    assert.match(busy.json.error as string, /busy: a propagate call/);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0);
    await reader.cancel();
    await app.queue.always(() => {});
    const computed = factory.made[0].computed;
    assert.ok(computed < 12, `the tracker stopped after ${computed} of 12 frames`);
    // The session is free again.
    const after = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 1,
      obj_id: 0,
      points: [[3, 3]],
      labels: [1],
    });
    assert.equal(after.status, 200, JSON.stringify(after.json));
  } finally {
    app.close();
  }
});

Deno.test("video routes: session, frame and byte limits; idle sessions expire", async () => {
  const { app, factory } = sam2App({
    limits: {
      maxVideoSessions: 2,
      maxVideoFrames: 2,
      maxVideoBytes: W * H * 3 * 2,
      videoIdleMs: 1000,
    },
  });
  try {
    const a = await openWithFrames(app, 2);
    const more = await call(app, "POST", `/api/videos/${a}/frames`, await makePng(W, H), {
      "content-type": "image/png",
    });
    assert.equal(more.status, 413);
    assert.match(more.json.error as string, /already holds 2 frames, the limit \(2\)/);
    await openWithFrames(app, 0);
    const third = await call(app, "POST", "/api/videos", {});
    assert.equal(third.status, 429);
    assert.match(third.json.error as string, /too many video sessions open \(2\)/);
    assert.ok(third.headers.get("retry-after"));
    assert.equal(factory.made.length, 2, "no tracker built for a refused session");
    await new Promise((r) => setTimeout(r, 1200));
    const again = await call(app, "POST", "/api/videos", {});
    assert.equal(again.status, 201, "idle sessions expired and freed their slots");
    assert.equal((await call(app, "GET", `/api/videos/${a}`)).status, 404);
    await app.queue.always(() => {});
    assert.ok(factory.made[0].disposed && factory.made[1].disposed);
  } finally {
    app.close();
  }
  const bytes = sam2App({ limits: { maxVideoBytes: W * H * 3 + 10 } });
  try {
    const id = await openWithFrames(bytes.app, 1);
    const r = await call(bytes.app, "POST", `/api/videos/${id}/frames`, await makePng(W, H), {
      "content-type": "image/png",
    });
    assert.equal(r.status, 413);
    assert.match(r.json.error as string, /would exceed \d+ bytes/);
  } finally {
    bytes.app.close();
  }
});

Deno.test("video routes: a full GPU queue is a 503 with Retry-After", async () => {
  const { app, engine } = sam2App({ limits: { maxQueue: 0 }, engineDelayMs: 300 });
  try {
    const id = await openWithFrames(app, 1);
    // An image upload holds the GPU (the fake engine takes 300 ms); nothing may wait.
    const upload = call(app, "POST", "/api/images", await makePng(8, 8), {
      "content-type": "image/png",
    });
    while (engine.active === 0) await new Promise((r) => setTimeout(r, 5));
    const r = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 0,
      obj_id: 0,
      points: [[3, 3]],
      labels: [1],
    });
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.ok(r.headers.get("retry-after"));
    assert.equal((await upload).status, 200);
  } finally {
    app.close();
  }
});

Deno.test("video routes: a propagation frame past the time limit is a 504, and frees the session", async () => {
  const { app } = sam2App({ limits: { requestTimeoutMs: 100 }, delayMs: 400 });
  try {
    const id = await openWithFrames(app, 0);
    for (let i = 0; i < 2; i++) {
      // Raw frames: no decode worker to start within the 100 ms.
      const raw = await call(
        app,
        "POST",
        `/api/videos/${id}/frames?width=${W}&height=${H}`,
        new Uint8Array(W * H * 4),
        { "content-type": "application/octet-stream" },
      );
      assert.equal(raw.status, 200, JSON.stringify(raw.json));
    }
    const p = await call(app, "POST", `/api/videos/${id}/prompts`, {
      frame_idx: 0,
      obj_id: 0,
      points: [[3, 3]],
      labels: [1],
    });
    assert.equal(p.status, 200);
    const r = await call(app, "POST", `/api/videos/${id}/propagate`, {});
    assert.equal(r.status, 504, JSON.stringify(r.json));
    assert.match(r.json.error as string, /took longer than 100 ms/);
    await new Promise((resolve) => setTimeout(resolve, 450)); // the frame in flight ends
    const info = await call(app, "GET", `/api/videos/${id}`);
    assert.equal(info.json.busy, null);
  } finally {
    app.close();
  }
});

Deno.test("video routes: bad inputs answer a clear 4xx", async () => {
  const sam1 = sam2App({ family: "sam" });
  try {
    const r = await call(sam1.app, "POST", "/api/videos", {});
    assert.equal(r.status, 400);
    assert.match(r.json.error as string, /needs a SAM 2\.1 model; this server runs fake/);
  } finally {
    sam1.app.close();
  }
  const { app } = sam2App();
  try {
    const id = await openWithFrames(app, 0);
    const v = `/api/videos/${id}`;
    const json = { "content-type": "application/json" };
    const cases: RouteCase[] = [
      ["POST", "/api/videos", { model: "x" }, 400, /unknown field "model"/],
      [
        "POST",
        "/api/videos",
        { history_frames: 1.5 },
        400,
        /history_frames must be a non-negative integer/,
      ],
      ["POST", "/api/videos", "{}", 415, /Content-Type/, { "content-type": "text/plain" }],
      ["GET", "/api/videos", "", 405, /use POST/],
      ["GET", "/api/videos/0123", "", 404, /unknown video session/],
      ["PUT", v, "", 405, /GET or DELETE/],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1, 1]], labels: [1] },
        400,
        /no frames yet/,
      ],
      ["POST", `${v}/propagate`, {}, 400, /no frames yet/],
      ["POST", `${v}/frames`, "hello", 400, /not a PNG or JPEG/, { "content-type": "image/png" }],
      ["POST", `${v}/frames`, "", 400, /empty image body/, { "content-type": "image/png" }],
      ["POST", `${v}/frames`, "x", 415, /Content-Type/, { "content-type": "text/plain" }],
      [
        "POST",
        `${v}/frames?width=2&height=2`,
        new Uint8Array(15),
        400,
        /is 16 bytes; the body has 15/,
        { "content-type": "application/octet-stream" },
      ],
      [
        "POST",
        `${v}/frames?width=2&height=2`,
        new Uint8Array(16),
        415,
        /application\/octet-stream/,
        { "content-type": "image/png" },
      ],
      [
        "POST",
        `${v}/frames?width=2`,
        new Uint8Array(16),
        400,
        /height must be a positive integer/,
        { "content-type": "application/octet-stream" },
      ],
      [
        "POST",
        `${v}/frames?width=0&height=2`,
        new Uint8Array(0),
        400,
        /width must be a positive integer/,
        { "content-type": "application/octet-stream" },
      ],
      ["POST", `${v}/frames?width=9000&height=2`, new Uint8Array(0), 413, /over the limit/, {
        "content-type": "application/octet-stream",
      }],
    ];
    await runCases(app, cases, json);
    // With frames and an object.
    await call(app, "POST", `${v}/frames`, await makePng(W, H), { "content-type": "image/png" });
    const cases2: typeof cases = [
      [
        "POST",
        `${v}/frames`,
        await makePng(W + 1, H),
        400,
        /frame is 25x16; this video's frames are 24x16/,
        { "content-type": "image/png" },
      ],
      ["POST", `${v}/propagate`, {}, 400, /nothing to track: prompt an object first/],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 1, obj_id: 1, points: [[1, 1]], labels: [1] },
        400,
        /frame_idx 1 is not a frame of this video \(0\.\.0\)/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: -1, obj_id: 1, points: [[1, 1]], labels: [1] },
        400,
        /frame_idx must be a non-negative integer/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1.5, points: [[1, 1]], labels: [1] },
        400,
        /obj_id must be an integer/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1 },
        400,
        /give points \(with labels\) or a box/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1, 1]] },
        400,
        /points and labels go together/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1, 1]], labels: [1, 0] },
        400,
        /labels must be an array of 1 labels/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1, 1]], labels: [3] },
        400,
        /labels must be 0 \(background\) or 1/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1, "a"]], labels: [1] },
        400,
        /points\[0\] must be \[x, y\]/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, points: [[1000, 1]], labels: [1] },
        400,
        /outside the 24x16 image/,
      ],
      ["POST", `${v}/prompts`, { frame_idx: 0, obj_id: 1, box: [5, 5, 1, 1] }, 400, /x1 >= x0/],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, box: [1, 2, 3] },
        400,
        /box must be \[x0, y0, x1, y1\]/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, box: [1, 1, 3, 3], format: "png" },
        400,
        /format must be "rle" or "polygon"/,
      ],
      [
        "POST",
        `${v}/prompts`,
        { frame_idx: 0, obj_id: 1, box: [1, 1, 3, 3], mask: 1 },
        400,
        /unknown field "mask"/,
      ],
      ["POST", `${v}/prompts`, "{", 400, /malformed JSON/, { "content-type": "application/json" }],
      ["DELETE", `${v}/objects/7`, "", 404, /no object 7 in this video/],
      ["DELETE", `${v}/objects/x`, "", 400, /object id must be a non-negative integer/],
      ["GET", `${v}/prompts`, "", 405, /use POST/],
    ];
    await runCases(app, cases2, json);
    const ok = await call(app, "POST", `${v}/prompts`, {
      frame_idx: 0,
      obj_id: 1,
      box: [1, 1, 6, 6],
    });
    assert.equal(ok.status, 200);
    const cases3: typeof cases = [
      ["POST", `${v}/propagate`, { reverse: "yes" }, 400, /reverse must be a boolean/],
      ["POST", `${v}/propagate`, { start_frame_idx: 3 }, 400, /start_frame_idx 3 is not a frame/],
      [
        "POST",
        `${v}/propagate`,
        { max_frames: -2 },
        400,
        /max_frames must be a non-negative integer/,
      ],
      ["POST", `${v}/propagate`, { frames: 2 }, 400, /unknown field "frames"/],
    ];
    await runCases(app, cases3, json);
    // A foreign Host is refused before any route, as for every other route.
    const foreign = await app(
      new Request(`http://evil.example/api/videos`, { method: "POST", headers: json, body: "{}" }),
    );
    assert.equal(foreign.status, 403);
  } finally {
    app.close();
  }
});

/** method, path, body, the status and error message expected, request headers. */
type RouteCase = [
  string,
  string,
  BodyInit | Record<string, unknown>,
  number,
  RegExp,
  Record<string, string>?,
];

/** POST /propagate with a JSON body: the streaming Response itself (NDJSON). */
function propagate(
  app: ReturnType<typeof createApp>,
  id: string,
  body: Record<string, unknown>,
): Promise<Response> {
  return Promise.resolve(app(
    new Request(`${BASE}/api/videos/${id}/propagate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  ));
}

async function runCases(
  app: ReturnType<typeof createApp>,
  cases: RouteCase[],
  json: Record<string, string>,
) {
  for (const [method, path, body, status, message, headers] of cases) {
    const isObject = typeof body === "object" && body !== null &&
      Object.getPrototypeOf(body) === Object.prototype;
    const r = await call(
      app,
      method,
      path,
      method === "GET" || method === "DELETE" || (method === "PUT" && body === "")
        ? undefined
        : body,
      isObject ? json : headers ?? {},
    );
    assert.equal(
      r.status,
      status,
      `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`,
    );
    assert.match(String(r.json.error), message, `${method} ${path}`);
  }
}
