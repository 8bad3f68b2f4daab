/**
 * CVAT contract: requests shaped exactly as CVAT's lambda manager sends them, answers checked
 * field by field as CVAT reads them (stand-in engine and detector, no GPU).
 *
 * Built from cvat-ai/cvat:
 * - cvat/apps/lambda_manager/views.py: LambdaGateway._http (the x-nuclio-* headers, GET
 *   /api/functions, GET /api/functions/{id}), _invoke_via_dashboard (POST
 *   /api/function_invocations with x-nuclio-function-name and x-nuclio-path "/"),
 *   _invoke_directly (POST http://host:{status.httpPort} with the JSON payload),
 *   LambdaFunction.__init__ (the fields read from a function), LambdaFunction.invoke (the
 *   interactor payload {image, pos_points, neg_points, obj_bbox} and the detector payload
 *   {image, threshold?}) and _call_detector's parse_anno (a "mask" shape: the cropped mask
 *   then [xtl, ytl, xbr, ybr]; "points" taken when masks are converted to polygons).
 * - serverless/pytorch/facebookresearch/sam/nuclio/function.yaml and main.py: the function
 *   name pth-facebookresearch-sam-vit-h and the answer {blob}.
 * - cvat-ui/plugins/sam/src/ts/index.tsx: the plugin reads the blob as float32 [1, 256, 64, 64].
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { parseNpy } from "../../src/util/npy.ts";
import { fakeDetector, FakeEngine } from "./fake_engine.ts";
import { BASE, call, decodeCocoMask, FIXTURE_IMAGE } from "./helpers.ts";
import { COCO_CATEGORIES } from "../../src/detect/mod.ts";
import { interactorAnswerJson } from "../../src/server/cvat.ts";

/** The stand-in engine dressed as SAM ViT-H, with an embedding of ViT-H's shape. */
class VitHEngine extends FakeEngine {
  override readonly info = {
    model: "vit_h",
    arch: { img_size: 1024, encoder_width: 1280, encoder_depth: 32 },
    adapter: "none",
    meaningless: false,
  } as unknown as FakeEngine["info"];
  embeddingCalls = 0;
  override async getImageEmbedding(): Promise<{ data: Float32Array; shape: number[] }> {
    const small = await super.getImageEmbedding();
    this.embeddingCalls++;
    const data = new Float32Array(256 * 64 * 64);
    for (let i = 0; i < data.length; i++) data[i] = small.data[i % small.data.length] + i * 1e-3;
    return { data, shape: [1, 256, 64, 64] };
  }
}

/** CVAT's gateway headers (LambdaGateway._http). */
const NUCLIO_HEADERS = {
  "x-nuclio-project-name": "cvat",
  "x-nuclio-function-namespace": "nuclio",
  "x-nuclio-invoke-via": "domain-name",
  "X-Nuclio-Invoke-Timeout": "120s",
};

/** What CVAT's LambdaFunction.__init__ reads from one function, with its checks. */
function parseLikeCvat(data: Record<string, unknown>) {
  const metadata = data.metadata as Record<string, unknown>;
  const anno = metadata.annotations as Record<string, string>;
  assert.ok(["detector", "interactor", "reid", "tracker"].includes(anno.type), anno.type);
  const spec = JSON.parse(anno.spec || "[]") as { name: string; type?: string }[];
  assert.equal(new Set(spec.map((l) => l.name)).size, spec.length, "labels must be unique");
  const pyBool = (v: string | undefined) => v !== undefined && v !== "";
  const pyInt = (v: string | undefined, d: number) => {
    if (v === undefined) return d;
    assert.match(v, /^-?\d+$/, `int(${v})`);
    return Number(v);
  };
  return {
    id: metadata.name as string,
    kind: anno.type,
    labels: spec,
    description: (data.spec as Record<string, unknown>).description as string,
    port: (data.status as Record<string, unknown>).httpPort as number,
    name: anno.name ?? metadata.name,
    minPos: pyInt(anno.min_pos_points, 1),
    minNeg: pyInt(anno.min_neg_points, -1),
    startswithBox: pyBool(anno.startswith_box),
    startswithBoxOptional: pyBool(anno.startswith_box_optional),
    version: pyInt(anno.version, 1),
  };
}

async function frameBase64(): Promise<{ b64: string; bytes: Uint8Array<ArrayBuffer> }> {
  const bytes = await Deno.readFile(FIXTURE_IMAGE);
  return { b64: bytes.toBase64(), bytes };
}

function blobFloats(blob: string): Float32Array {
  const bytes = Uint8Array.fromBase64(blob);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Rebuilds a full mask from CVAT's detector form (cropped rows, then the inclusive box). */
function uncropCvatMask(points: number[], width: number, height: number): Uint8Array {
  const [xtl, ytl, xbr, ybr] = points.slice(-4);
  const w = xbr - xtl + 1, h = ybr - ytl + 1;
  assert.equal(points.length - 4, w * h, "cropped mask size");
  const out = new Uint8Array(width * height);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[(ytl + y) * width + xtl + x] = points[y * w + x];
  }
  return out;
}

Deno.test("CVAT: ViT-H interactor lists as pth-facebookresearch-sam-vit-h; blob = /embedding", async () => {
  const engine = new VitHEngine();
  const app = createApp({ engine, log: () => {} });
  const list = await call(app, "GET", "/api/functions", undefined, NUCLIO_HEADERS);
  assert.equal(list.status, 200);
  const names = Object.keys(list.json);
  assert.deepEqual(names, ["pth-facebookresearch-sam-vit-h", "wgsam-segment-everything"]);
  const sam = parseLikeCvat(list.json["pth-facebookresearch-sam-vit-h"] as Record<string, unknown>);
  assert.deepEqual(
    { ...sam, description: typeof sam.description },
    {
      id: "pth-facebookresearch-sam-vit-h",
      kind: "interactor",
      labels: [],
      description: "string",
      port: 8787, // the port of the URL CVAT reached us at (tests use http://localhost:8787)
      name: "Segment Anything (wgsam)",
      minPos: 0,
      minNeg: 0,
      startswithBox: false,
      startswithBoxOptional: true,
      version: 2,
    },
  );
  // The port is the one in the Host header CVAT sent (its CVAT_NUCLIO_PORT).
  const viaHost = await call(app, "GET", "/api/functions", undefined, {
    ...NUCLIO_HEADERS,
    host: "host.docker.internal:8787",
  });
  const described = viaHost.json["pth-facebookresearch-sam-vit-h"] as Record<string, unknown>;
  assert.equal(parseLikeCvat(described).port, 8787);
  const one = await call(
    app,
    "GET",
    "/api/functions/pth-facebookresearch-sam-vit-h",
    undefined,
    NUCLIO_HEADERS,
  );
  assert.deepEqual(one.json, list.json["pth-facebookresearch-sam-vit-h"]);
  assert.equal((await call(app, "GET", "/api/functions/nope")).status, 404);

  // _invoke_via_dashboard with LambdaFunction.invoke's interactor payload (obj_bbox None).
  const { b64, bytes } = await frameBase64();
  const payload = { image: b64, pos_points: [[40, 30]], neg_points: [], obj_bbox: null };
  const inv = await call(app, "POST", "/api/function_invocations", payload, {
    ...NUCLIO_HEADERS,
    "x-nuclio-function-name": "pth-facebookresearch-sam-vit-h",
    "x-nuclio-path": "/",
  });
  assert.equal(inv.status, 200, JSON.stringify(inv.json));
  assert.deepEqual(Object.keys(inv.json), ["blob"]);
  const floats = blobFloats(inv.json.blob as string);
  assert.equal(floats.length, 1 * 256 * 64 * 64);

  // The same image through the wgsam API: same id (content hash), same tensor, from the cache.
  const up = await call(app, "POST", "/api/images", bytes, { "content-type": "image/png" });
  assert.equal(up.json.cached, true, "the CVAT request stored and encoded the image");
  const npyRes = await app(new Request(`${BASE}/api/images/${up.json.id}/embedding`));
  const npy = parseNpy(new Uint8Array(await npyRes.arrayBuffer()));
  assert.deepEqual(npy.shape, [1, 256, 64, 64]);
  assert.deepEqual(floats, npy.data);

  // _invoke_directly: the payload posted to the function's port, path "/".
  const direct = await call(app, "POST", "/", payload);
  assert.equal(direct.status, 200, JSON.stringify(direct.json));
  assert.equal(direct.json.blob, inv.json.blob);
  // A box first (startswith_box_optional) and negative points: still the embedding.
  const boxed = await call(app, "POST", "/", {
    image: b64,
    pos_points: [],
    neg_points: [[5, 5]],
    obj_bbox: [[10, 10], [60, 50]],
    threshold: 0.5,
  });
  assert.equal(boxed.json.blob, inv.json.blob);

  // Refusals: each a 4xx with a JSON error.
  const cases: [
    string,
    string,
    Record<string, unknown> | undefined,
    Record<string, string>,
    number,
  ][] = [
    ["no function header", "/api/function_invocations", payload, {}, 400],
    [
      "unknown function",
      "/api/function_invocations",
      payload,
      { "x-nuclio-function-name": "x" },
      404,
    ],
    ["bad base64", "/", { ...payload, image: "%%%" }, {}, 400],
    ["no image", "/", { pos_points: [[1, 1]] }, {}, 400],
    ["point not a pair", "/", { ...payload, pos_points: [[1]] }, {}, 400],
    ["bad threshold", "/", { ...payload, threshold: 7 }, {}, 400],
    ["not an image", "/", { ...payload, image: "aGVsbG8=" }, {}, 400],
  ];
  for (const [name, path, body, headers, status] of cases) {
    const r = await call(app, "POST", path, body, headers);
    assert.equal(r.status, status, `${name}: ${r.status} ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error, "string", name);
  }
  assert.equal((await call(app, "GET", "/api/function_invocations")).status, 405);
  assert.equal((await call(app, "POST", "/api/functions")).status, 405);
  // Only a JSON body posted to / is an invocation; anything else is still the page's 405.
  assert.equal((await call(app, "POST", "/", "x")).status, 405);
  // The page is still GET /.
  assert.equal((await app(new Request(`${BASE}/`))).status, 200);
});

Deno.test("CVAT: another model is not named for the plugin, says why, and decodes itself", async () => {
  const lines: string[] = [];
  const engine = new FakeEngine();
  const app = createApp({ engine, log: (l) => lines.push(l) });
  assert.ok(
    lines.some((l) => /CVAT.*pth-facebookresearch-sam-vit-h.*fake/.test(l)),
    lines.join("\n"),
  );
  const list = await call(app, "GET", "/api/functions");
  assert.ok(!("pth-facebookresearch-sam-vit-h" in list.json));
  const f = parseLikeCvat(list.json["wgsam-sam-fake"] as Record<string, unknown>);
  assert.equal(f.kind, "interactor");
  assert.match(f.description, /SAM plugin.*ViT-H decoder.*pth-facebookresearch-sam-vit-h.*#8158/);
  assert.match(f.description, /--model vit_h/);

  const { b64, bytes } = await frameBase64();
  const r = await call(app, "POST", "/api/function_invocations", {
    image: b64,
    pos_points: [[40, 30]],
    neg_points: [],
    obj_bbox: null,
  }, { "x-nuclio-function-name": "wgsam-sam-fake" });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const mask = r.json.mask as number[][];
  assert.equal(mask.length, 107);
  assert.ok(mask.every((row) => row.length === 160 && row.every((v) => v === 0 || v === 255)));
  // The best of three candidates for one click, as the engine computes it.
  const up = await call(app, "POST", "/api/images", bytes, { "content-type": "image/png" });
  const seg = await call(app, "POST", `/api/images/${up.json.id}/segment`, {
    points: [[40, 30]],
    format: "rle",
  });
  const best = (seg.json.masks as { rle: { size: [number, number]; counts: string } }[])[
    seg.json.best as number
  ];
  assert.deepEqual(mask.flat().map((v) => v ? 1 : 0), [...decodeCocoMask(best.rle)]);
  const far = await call(app, "POST", "/", {
    image: b64,
    pos_points: [[4000, 30]],
    neg_points: [],
    obj_bbox: null,
  });
  assert.equal(far.status, 400);
  assert.match(String(far.json.error), /outside the 160x107 image/);
  // bounds: the mask's inclusive box.
  const [xtl, ytl, xbr, ybr] = r.json.bounds as number[];
  const rowsSet = mask.map((row) => row.some((v) => v));
  assert.deepEqual([ytl, ybr], [rowsSet.indexOf(true), rowsSet.lastIndexOf(true)]);
  const colsSet = mask[0].map((_, x) => mask.some((row) => row[x]));
  assert.deepEqual([xtl, xbr], [colsSet.indexOf(true), colsSet.lastIndexOf(true)]);
  const points = r.json.points as [number, number][];
  assert.ok(points.length >= 3 && points.every((p) => p.length === 2));
});

Deno.test("CVAT: detector functions answer CVAT's mask shapes", async () => {
  const app = createApp({ engine: new FakeEngine(), detector: fakeDetector(), log: () => {} });
  const list = await call(app, "GET", "/api/functions");
  const det = parseLikeCvat(list.json["wgsam-detect-segment"] as Record<string, unknown>);
  assert.equal(det.kind, "detector");
  assert.equal(det.labels.length, 80);
  assert.deepEqual(det.labels[16], { id: COCO_CATEGORIES[16].id, name: "dog", type: "mask" });
  const every = parseLikeCvat(list.json["wgsam-segment-everything"] as Record<string, unknown>);
  assert.deepEqual(every.labels, [{ id: 0, name: "object", type: "mask" }]);

  const { b64, bytes } = await frameBase64();
  // LambdaFunction.invoke's detector payload: the image and the threshold CVAT was given.
  const r = await call(app, "POST", "/api/function_invocations", { image: b64, threshold: 0.5 }, {
    ...NUCLIO_HEADERS,
    "x-nuclio-function-name": "wgsam-detect-segment",
    "x-nuclio-path": "/",
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const shapes = r.json as unknown as {
    label: string;
    type: string;
    points: number[];
    mask: number[];
    confidence: string;
  }[];
  assert.ok(Array.isArray(shapes));
  assert.deepEqual(shapes.map((s) => [s.label, s.type, s.confidence]), [
    ["dog", "mask", "0.9"],
    ["car", "mask", "0.6"],
  ]);
  // The masks are the /detect masks, cropped to their boxes.
  const up = await call(app, "POST", "/api/images", bytes, { "content-type": "image/png" });
  const ref = await call(app, "POST", `/api/images/${up.json.id}/detect`, { score_threshold: 0.5 });
  const anns = ref.json.annotations as {
    segmentation: { size: [number, number]; counts: string };
  }[];
  shapes.forEach((s, i) => {
    assert.deepEqual(uncropCvatMask(s.mask, 160, 107), decodeCocoMask(anns[i].segmentation));
    assert.ok(s.mask.slice(0, -4).every((v) => v === 0 || v === 1));
    assert.ok(s.points.length >= 6 && s.points.length % 2 === 0);
  });
  // A threshold above every score: no shapes.
  const none = await call(app, "POST", "/", { image: b64, threshold: 0.95 });
  assert.deepEqual(none.json, []);

  // Segment everything, invoked by name.
  const ev = await call(app, "POST", "/api/function_invocations", { image: b64 }, {
    "x-nuclio-function-name": "wgsam-segment-everything",
  });
  assert.equal(ev.status, 200, JSON.stringify(ev.json));
  const evShapes = ev.json as unknown as { label: string; mask: number[]; confidence: string }[];
  assert.ok(evShapes.length > 0);
  for (const s of evShapes) {
    assert.equal(s.label, "object");
    assert.ok(Number(s.confidence) > 0 && Number(s.confidence) <= 1.5);
    uncropCvatMask(s.mask, 160, 107);
  }
});

Deno.test("CVAT: a malformed %-escape in a function name is a 404, not a 500", async () => {
  const lines: string[] = [];
  const app = createApp({ engine: new FakeEngine(), log: (l) => lines.push(l) });
  for (const path of ["/api/functions/%E0", "/api/functions/%", "/api/functions/a%zz"]) {
    const r = await call(app, "GET", path);
    assert.equal(r.status, 404, `${path}: ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error, "string");
  }
  assert.ok(!lines.some((l) => l.startsWith("ERROR")), lines.join("\n"));
});

Deno.test("CVAT: the interactor's full-frame mask text equals the rows CVAT reads", () => {
  const W = 7, H = 5;
  const cases: [string, (x: number, y: number) => boolean][] = [
    ["inside", (x, y) => x >= 2 && x <= 4 && y >= 1 && y <= 2 && (x + y) % 3 !== 0],
    ["touching every edge", (x, y) => x === 0 || y === H - 1 || x === W - 1 || y === 0],
    ["one pixel in the corner", (x, y) => x === W - 1 && y === H - 1],
    ["empty", () => false],
  ];
  for (const [name, inMask] of cases) {
    const mask = new Uint8Array(W * H);
    const rows: number[][] = [];
    let xtl = W, ytl = H, xbr = -1, ybr = -1;
    for (let y = 0; y < H; y++) {
      rows.push([]);
      for (let x = 0; x < W; x++) {
        const v = inMask(x, y);
        mask[y * W + x] = v ? 1 : 0;
        rows[y].push(v ? 255 : 0);
        if (v) {
          xtl = Math.min(xtl, x), ytl = Math.min(ytl, y);
          xbr = Math.max(xbr, x), ybr = Math.max(ybr, y);
        }
      }
    }
    const text = interactorAnswerJson([[1, 2], [3, 4], [5, 1]], mask, W, H);
    const parsed = JSON.parse(text);
    assert.deepEqual(parsed.mask, rows, name);
    assert.deepEqual(parsed.points, [[1, 2], [3, 4], [5, 1]], name);
    assert.deepEqual(parsed.bounds, xbr < 0 ? [0, 0, 0, 0] : [xtl, ytl, xbr, ybr], name);
  }
});
