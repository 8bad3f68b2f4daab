/**
 * The detector on the fixtures' stand-in models (/work/shared/fixtures/detector): fixed
 * detections in input pixels (truth.json), whatever the image. Checks which survive the
 * score threshold and class-aware NMS, and the exact mapping of boxes back to photos of
 * chosen sizes through the inverse letterbox; and the errors for bad detector files.
 */
import assert from "node:assert/strict";
import { COCO_CLASSES } from "../../src/detect/coco_classes.ts";
import { Detector, webgpuAdapterInfo } from "../../src/detect/detector.ts";
import type { RgbImage } from "../../src/types.ts";
import { sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { buildOnnx, ONNX_FLOAT, ONNX_UINT8 } from "./onnx_builder.ts";

const DETECTOR_DIR = sharedFixture("detector/");
const MODELS = ["yolo_nas_raw.onnx", "yolov8_raw.onnx"] as const;

interface Truth {
  detections_in_input_pixels: { box_xyxy: number[]; class_id: number; score: number }[];
  "expected_after_nms_iou_0.5_score_0.35": number[];
}

async function loadTruth(): Promise<Truth> {
  return JSON.parse(await Deno.readTextFile(new URL("truth.json", DETECTOR_DIR!)));
}

function photo(width: number, height: number, value = 90): RgbImage {
  return { width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(value) };
}

/** Boxes equal within float32 rounding of the stand-in's outputs (values up to 1000 px). */
function assertBoxClose(got: readonly number[], want: readonly number[], label: string) {
  for (let k = 0; k < 4; k++) {
    assert.ok(
      Math.abs(got[k] - want[k]) <= 1e-4 * Math.max(1, Math.abs(want[k])),
      `${label}: box ${JSON.stringify(got)} != ${JSON.stringify(want)}`,
    );
  }
}

// One wasm session per stand-in, shared by the tests below (wasm compile is the slow part).
const detectors = new Map<string, Detector>();
async function detector(model: string): Promise<Detector> {
  let d = detectors.get(model);
  if (!d) {
    d = await Detector.load(new URL(model, DETECTOR_DIR!).pathname, { executionProvider: "wasm" });
    detectors.set(model, d);
  }
  return d;
}

for (const model of MODELS) {
  Deno.test(`${model}: exactly truth.json's survivors at score 0.35 / IoU 0.5`, async () => {
    if (skipIfMissing(DETECTOR_DIR, "detector fixtures")) return;
    const truth = await loadTruth();
    const planted = truth.detections_in_input_pixels;
    const expected = truth["expected_after_nms_iou_0.5_score_0.35"];
    const d = await detector(model);
    assert.equal(d.layout.kind, model.startsWith("yolo_nas") ? "yolo-nas" : "yolov8");
    assert.deepEqual([d.inputWidth, d.inputHeight], [640, 640]); // from the input metadata
    // A 640 x 640 photo: the letterbox is the identity, photo boxes = input boxes.
    const dets = await d.detect(photo(640, 640), { scoreThreshold: 0.35, iouThreshold: 0.5 });
    assert.equal(dets.length, expected.length, JSON.stringify(dets));
    // Best first: the survivors in score order.
    const order = [...expected].sort((a, b) => planted[b].score - planted[a].score);
    dets.forEach((det, k) => {
      const p = planted[order[k]];
      assert.equal(det.classId, p.class_id);
      assert.equal(det.score, Math.fround(p.score));
      assertBoxClose(det.inputBox, p.box_xyxy, `planted ${order[k]}`);
      assertBoxClose(det.box, p.box_xyxy, `planted ${order[k]}`);
    });
    assert.deepEqual(
      dets.map((x) => x.className),
      order.map((i) => COCO_CLASSES[planted[i].class_id]),
    );
    assert.deepEqual(dets.map((x) => x.className), ["dog", "car", "person"]);
  });

  Deno.test(`${model}: the threshold and NMS are what removed the others`, async () => {
    if (skipIfMissing(DETECTOR_DIR, "detector fixtures")) return;
    const planted = (await loadTruth()).detections_in_input_pixels;
    const d = await detector(model);
    const img = photo(640, 640);
    const scoresOf = async (opts: Parameters<Detector["detect"]>[1]) =>
      (await d.detect(img, opts)).map((x) => x.score).sort((a, b) => a - b);
    const f = (i: number) => Math.fround(planted[i].score);
    // NMS off (IoU threshold 1): the overlapping dog (planted 1, IoU ~0.8 with 0) is back.
    assert.deepEqual(
      await scoresOf({ iouThreshold: 1 }),
      [0, 1, 2, 3].map(f).sort((a, b) => a - b),
    );
    // Score 0.25: the 0.3 dog (planted 4) too; it overlaps nothing.
    assert.deepEqual(
      await scoresOf({ scoreThreshold: 0.25 }),
      [0, 2, 3, 4].map(f).sort((a, b) => a - b),
    );
    // Class filter after the argmax: only the dogs.
    const dogs = await d.detect(img, { classes: ["Dog"], scoreThreshold: 0.25 });
    assert.deepEqual(dogs.map((x) => x.score), [0, 4].map(f));
    // maxDetections keeps the best.
    assert.deepEqual((await d.detect(img, { maxDetections: 1 })).map((x) => x.score), [f(0)]);
    // Concurrent calls on one session are queued, each gets its own answer.
    const [a, b] = await Promise.all([d.detect(img), d.detect(img, { classes: ["car"] })]);
    assert.deepEqual([a.length, b.map((x) => x.className)], [3, ["car"]]);
  });
}

/**
 * Expected photo-frame boxes of the three survivors, derived by hand from the letterbox
 * geometry (r, resized size, padding) of each photo size; order dog (0), car (2), person (3).
 */
const LETTERBOX_CASES: {
  w: number;
  h: number;
  geometry: [number, number, number, number, number]; // r, Wr, Hr, padLeft, padTop
  boxes: ([number, number, number, number] | null)[];
}[] = [
  {
    // Landscape 1000 x 500: r = 0.64, 640 x 320 at (0, 160); x' = x / 0.64, y' = (y - 160) / 0.64.
    w: 1000,
    h: 500,
    geometry: [0.64, 640, 320, 0, 160],
    boxes: [
      [156.25, 62.5, 468.75, 406.25],
      [546.875, 0, 937.5, 500], // y from -15.625 and 531.25, clipped
      [31.25, 0, 140.625, 62.5], // y0 from -203.125
    ],
  },
  {
    // Portrait 400 x 800: r = 0.8, 320 x 640 at (160, 0); x' = (x - 160) / 0.8, y' = y / 0.8.
    w: 400,
    h: 800,
    geometry: [0.8, 320, 640, 160, 0],
    boxes: [
      [0, 250, 175, 525], // x0 from -75
      [237.5, 187.5, 400, 625], // x1 from 550
      null, // x from -175 to -87.5: wholly in the padding, dropped
    ],
  },
  {
    // Portrait 300 x 450, odd padding: r = 640/450, Wr = round(426.67) = 427, pad 213 split
    // 106 left / 107 right; x' = (x - 106) * 300 / 427, y' = y * 450 / 640.
    w: 300,
    h: 450,
    geometry: [640 / 450, 427, 640, 106, 0],
    boxes: [
      [0, 140.625, (300 - 106) * 300 / 427, 295.3125],
      [244 * 300 / 427, 105.46875, 300, 351.5625], // x1 = 494 * 300/427 = 347.07, clipped
      null,
    ],
  },
];

for (const model of MODELS) {
  Deno.test(`${model}: boxes map back exactly through the letterbox (landscape, portrait)`, async () => {
    if (skipIfMissing(DETECTOR_DIR, "detector fixtures")) return;
    const d = await detector(model);
    for (const c of LETTERBOX_CASES) {
      const lb = d.geometry(c.w, c.h);
      assert.deepEqual(
        [lb.scale, lb.resizedWidth, lb.resizedHeight, lb.padLeft, lb.padTop],
        c.geometry,
        `${c.w}x${c.h} geometry`,
      );
      const dets = await d.detect(photo(c.w, c.h));
      const want = c.boxes.filter((b) => b !== null);
      assert.equal(dets.length, want.length, `${c.w}x${c.h}: ${JSON.stringify(dets)}`);
      dets.forEach((det, k) => assertBoxClose(det.box, want[k]!, `${c.w}x${c.h} #${k}`));
    }
  });
}

Deno.test("detector: the WebGPU execution provider gives the same detections as wasm", async () => {
  if (skipIfMissing(DETECTOR_DIR, "detector fixtures")) return;
  const adapter = await webgpuAdapterInfo();
  if (!adapter) {
    console.warn("SKIP: no WebGPU adapter");
    return;
  }
  const path = new URL("yolov8_raw.onnx", DETECTOR_DIR!).pathname;
  const gpu = await Detector.load(path, { executionProvider: "webgpu" });
  try {
    assert.equal(gpu.executionProvider, "webgpu");
    const img = photo(1000, 500);
    const want = await (await detector("yolov8_raw.onnx")).detect(img);
    assert.deepEqual(await gpu.detect(img), want);
  } finally {
    await gpu.dispose();
  }
  // "auto" takes WebGPU on hardware adapters only (wasm is far faster on a software one).
  const auto = await Detector.load(path, { executionProvider: "auto" });
  await auto.dispose();
  console.log(`  adapter ${adapter.description}: auto chose ${auto.executionProvider}`);
  assert.equal(auto.executionProvider, adapter.software ? "wasm" : "webgpu");
});

Deno.test("detector: bad model files fail clearly", async () => {
  const garbage = new Uint8Array(4096).map((_, i) => (i * 7919) % 251);
  await assert.rejects(
    Detector.load(garbage, { executionProvider: "wasm" }),
    /detector: detector model is not a loadable ONNX model/,
  );
  await assert.rejects(
    Detector.load("/nonexistent/model.onnx", { executionProvider: "wasm" }),
    /detector: cannot read \/nonexistent\/model\.onnx/,
  );
  // A valid ONNX model with an image input whose output is no detector layout.
  const identity = buildOnnx(
    [{ name: "images", shape: [1, 3, 640, 640] }],
    [{ op: "Identity", inputs: ["images"], output: "features" }],
    [{ name: "features", shape: [1, 3, 640, 640] }],
  );
  await assert.rejects(
    Detector.load(identity, { executionProvider: "wasm" }),
    /unknown detector output layout: outputs features \(1,3,640,640\); expected YOLO-NAS/,
  );
  // A model whose input is not an image.
  const vector = buildOnnx(
    [{ name: "x", shape: [1, 16] }],
    [{ op: "Identity", inputs: ["x"], output: "output0" }],
    [{ name: "output0", shape: [1, 16] }],
  );
  await assert.rejects(
    Detector.load(vector, { executionProvider: "wasm" }),
    /input x is float32 \(1,16\); expected a float32 or uint8 image \(1,3,H,W\)/,
  );
});

/**
 * A synthetic YOLOv8-layout detector with symbolic input size: Reshape(images, [1, 6, -1])
 * (after a Cast for the uint8 variant), i.e. 2 classes and N = H * W / 2 anchors. Row k of
 * the output is the k-th sixth of the flattened (3, H, W) input: rows 0-1 = the R plane,
 * 2-3 = G, 4-5 = B. In a black photo with one white pixel at (x, y) (y < H / 2) and R = G =
 * 255 at (x, y + H / 2), anchor y * W + x has cx = cy = w = h = 1 (float input) and class 0
 * score 1: box [0.5, 0.5, 1.5, 1.5]; every other score is 0 or the padding's 114 / 255.
 */
function reshapeDetector(inputType: number): Uint8Array {
  const pre = inputType === ONNX_UINT8
    ? [{ op: "Cast", inputs: ["images"], output: "x", ints: { to: ONNX_FLOAT } }]
    : [{ op: "Identity", inputs: ["images"], output: "x" }];
  return buildOnnx(
    [{ name: "images", shape: [1, 3, "height", "width"], type: inputType }],
    [...pre, { op: "Reshape", inputs: ["x", "shape"], output: "output0" }],
    [{ name: "output0", shape: [1, 6, "anchors"] }],
    { shape: [1, 6, -1] },
  );
}

Deno.test("detector: symbolic input size (default 640 or inputSize), uint8 input, custom classes", async () => {
  const size = 320;
  const img = photo(size, size, 0);
  const white = (x: number, y: number, rgb: number[]) => img.data.set(rgb, (y * size + x) * 3);
  white(7, 5, [255, 255, 255]);
  white(7, 5 + size / 2, [255, 255, 0]);
  for (const [type, scale] of [[ONNX_FLOAT, 1], [ONNX_UINT8, 255]]) {
    const model = reshapeDetector(type);
    await assert.rejects(
      Detector.load(model, { executionProvider: "wasm" }),
      /scores 2 classes but 80 class names are given \(the COCO default\)/,
    );
    const classNames = ["thing", "other"];
    const d640 = await Detector.load(model, { executionProvider: "wasm", classNames });
    assert.deepEqual([d640.inputWidth, d640.inputHeight, d640.inputType], [
      640,
      640,
      type === ONNX_UINT8 ? "uint8" : "float32",
    ]);
    await d640.dispose();
    const d = await Detector.load(model, {
      executionProvider: "wasm",
      classNames,
      inputSize: size,
    });
    try {
      const dets = await d.detect(img, { scoreThreshold: 0.5 });
      assert.equal(dets.length, 1, JSON.stringify(dets));
      assert.deepEqual([dets[0].className, dets[0].score], ["thing", scale]);
      // cx = cy = w = h = scale (1, or 255 for bytes); the box is clipped to the photo.
      const lo = scale / 2, hi = Math.min(scale * 1.5, size);
      assert.deepEqual(dets[0].box, [lo, lo, hi, hi]);
    } finally {
      await d.dispose();
    }
  }
});

Deno.test("detector: unknown class names fail before the run, with close matches", async () => {
  if (skipIfMissing(DETECTOR_DIR, "detector fixtures")) return;
  const d = await detector("yolo_nas_raw.onnx");
  await assert.rejects(
    d.detect(photo(64, 64), { classes: ["dgo", "car", "zebraa"] }),
    /unknown class names "dgo" \(did you mean "dog"[^)]*\), "zebraa" \(did you mean "zebra"\?\)/,
  );
  await assert.rejects(d.detect(photo(64, 64), { scoreThreshold: 2 }), /score threshold/);
});

Deno.test({
  name: "detector: release the shared sessions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    for (const d of detectors.values()) await d.dispose();
    detectors.clear();
  },
});
