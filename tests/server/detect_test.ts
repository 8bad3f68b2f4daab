/**
 * POST /api/images/:id/detect with the fixture stand-in detector (yolov8_raw.onnx: planted
 * dog, car and person boxes) and sam-tiny on WebGPU: the answer's annotations must equal
 * `detectAndSegment` run in-process on the same image with the same detector and predictor
 * (same boxes, same RLE), class filtering must keep only the named classes, each bad request
 * must get its status code, and the server must answer normally afterwards.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { loadServerDetector } from "../../src/server/detector.ts";
import { detectAndSegment } from "../../src/detect/mod.ts";
import { decodeImage } from "../../src/image.ts";
import { sharedFixture, skipIfMissing } from "../util/fixtures.ts";
import { FakeEngine } from "./fake_engine.ts";
import { call, FIXTURE_IMAGE } from "./helpers.ts";
import { withTestEngine } from "./test_engine.ts";

Deno.test("detect: 404 with a clear message without a detector; info says null", async () => {
  const app = createApp({ engine: new FakeEngine(), log: () => {} });
  const up = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "image/png",
  });
  const r = await call(app, "POST", `/api/images/${up.json.id}/detect`, {});
  assert.equal(r.status, 404);
  assert.match(String(r.json.error), /no detector configured.*--detector/);
  assert.equal((await call(app, "GET", "/api/info")).json.detector, null);
});

Deno.test({
  name: "detect: yolov8 stand-in + sam-tiny over HTTP equals detectAndSegment in-process",
  sanitizeResources: false, // the GPU device and the ONNX Runtime session live for the process
  sanitizeOps: false,
  fn: async () => {
    const detectorFile = sharedFixture("detector/yolov8_raw.onnx");
    if (skipIfMissing(detectorFile, "detector fixtures")) return;
    const detector = await loadServerDetector(detectorFile!.pathname);
    try {
      await withTestEngine(async (engine) => {
        const app = createApp({ engine, detector, log: () => {} });
        const bytes = await Deno.readFile(FIXTURE_IMAGE);
        const up = await call(app, "POST", "/api/images", bytes, { "content-type": "image/png" });
        assert.equal(up.status, 200, JSON.stringify(up.json));
        const path = `/api/images/${up.json.id}/detect`;

        const info = (await call(app, "GET", "/api/info")).json.detector as Record<
          string,
          unknown
        >;
        assert.equal(info.path, detectorFile!.pathname);
        assert.equal(info.layout, "yolov8");
        assert.deepEqual(info.input_size, [640, 640]);
        assert.equal((info.classes as string[]).length, 80);

        const all = await call(app, "POST", path, {});
        assert.equal(all.status, 200, JSON.stringify(all.json));
        const image = await decodeImage(bytes);
        const local = await detectAndSegment(image, detector.detector, engine);
        const anns = all.json.annotations as typeof local.annotations;
        assert.deepEqual(anns.map((a) => a.category_name), ["dog", "car", "person"]);
        assert.equal(all.json.detections, 3);
        assert.deepEqual([all.json.width, all.json.height], [160, 107]);
        // Same boxes and the same RLE, field for field (JSON round trip of the same numbers).
        assert.deepEqual(anns, JSON.parse(JSON.stringify(local.annotations)));
        const categories = all.json.categories as { id: number; name: string }[];
        assert.deepEqual(categories[16], { id: 18, name: "dog", supercategory: "animal" });

        // Class filtering, names as the detector knows them (case and "_" ignored).
        const dogs = await call(app, "POST", path, { classes: ["Dog", "person"] });
        assert.equal(dogs.status, 200, JSON.stringify(dogs.json));
        const kept = dogs.json.annotations as typeof anns;
        assert.deepEqual(kept.map((a) => a.category_name), ["dog", "person"]);
        assert.deepEqual(
          kept.map((a) => a.segmentation),
          [anns[0], anns[2]].map((a) => a.segmentation),
        );
        // A threshold above every score: nothing detected, SAM not run, still a 200.
        const none = await call(app, "POST", path, { score_threshold: 0.999 });
        assert.equal(none.status, 200, JSON.stringify(none.json));
        assert.deepEqual([none.json.detections, none.json.annotations], [0, []]);

        const json = { "content-type": "application/json" };
        const cases: [string, unknown, number, Record<string, string>?][] = [
          ["unknown class", { classes: ["dgo"] }, 400],
          ["classes not an array", { classes: "dog" }, 400],
          ["class not a string", { classes: [16] }, 400],
          ["score NaN string", { score_threshold: "NaN" }, 400],
          ["score > 1", { score_threshold: 1.5 }, 400],
          ["score < 0", { score_threshold: -0.1 }, 400],
          ["score as string", { score_threshold: "0.5" }, 400],
          ["score null", { score_threshold: null }, 400],
          ["iou Infinity", '{"iou_threshold": 1e999}', 400, json],
          ["iou > 1", { iou_threshold: 2 }, 400],
          ["max_detections 0", { max_detections: 0 }, 400],
          ["max_detections fractional", { max_detections: 2.5 }, 400],
          ["max_detections too many", { max_detections: 100_000 }, 400],
          ["unknown field", { score_thresh: 0.5 }, 400],
          ["malformed JSON", "{classes: [", 400, json],
        ];
        for (const [name, body, status, headers] of cases) {
          const r = await call(app, "POST", path, body as Record<string, unknown>, headers);
          assert.equal(r.status, status, `${name}: got ${r.status} ${JSON.stringify(r.json)}`);
          assert.equal(typeof r.json.error, "string", `${name}: no JSON error`);
        }
        const unknown = await call(app, "POST", path, { classes: ["dgo"] });
        assert.match(String(unknown.json.error), /unknown class name "dgo" \(did you mean "dog"/);
        assert.equal((await call(app, "POST", "/api/images/nope/detect", {})).status, 404);
        assert.equal((await call(app, "GET", path)).status, 405);

        // Healthy afterwards: the queue is idle and a prompt still works.
        const after = await call(app, "GET", "/api/info");
        assert.equal((after.json.queue as { running: boolean }).running, false);
        const seg = await call(app, "POST", `/api/images/${up.json.id}/segment`, {
          points: [[80, 50]],
          format: "rle",
        });
        assert.equal(seg.status, 200, JSON.stringify(seg.json));
      });
    } finally {
      await detector.dispose();
    }
  },
});
