/**
 * `"format": "polygon"` on segment, everything and detect (stand-in engine and detector): the
 * polygons filled back even-odd give the same masks as the RLE answers of the same requests
 * (exactly at polygon_tolerance 0, IoU >= 0.98 at the default), and bad values are 400s.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/server/app.ts";
import { fakeDetector, FakeEngine } from "./fake_engine.ts";
import { call, decodeCocoMask, FIXTURE_IMAGE } from "./helpers.ts";
import { rasterizeEvenOdd } from "../util/rasterize.ts";

type CocoRle = { size: [number, number]; counts: string };

function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0, union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union ? inter / union : 1;
}

async function setup() {
  const app = createApp({ engine: new FakeEngine(), detector: fakeDetector(), log: () => {} });
  const up = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "image/png",
  });
  assert.equal(up.status, 200);
  return { app, id: up.json.id as string, width: 160, height: 107 };
}

Deno.test("segment format polygon: rings fill back to the RLE answer's masks", async () => {
  const { app, id, width, height } = await setup();
  const path = `/api/images/${id}/segment`;
  const prompt = { points: [[40, 30]], labels: [1], multimask: true };
  const rle = await call(app, "POST", path, { ...prompt, format: "rle" });
  assert.equal(rle.status, 200);
  for (const tolerance of [0, undefined]) {
    const body = {
      ...prompt,
      format: "polygon",
      ...(tolerance === 0 ? { polygon_tolerance: 0 } : {}),
    };
    const poly = await call(app, "POST", path, body);
    assert.equal(poly.status, 200, JSON.stringify(poly.json));
    assert.equal(poly.json.format, "polygon");
    const masks = poly.json.masks as { polygons: number[][]; polygon_parents: number[] }[];
    const want = rle.json.masks as { rle: CocoRle; score: number; area: number }[];
    assert.equal(masks.length, 3);
    masks.forEach((m, i) => {
      assert.equal(m.polygon_parents.length, m.polygons.length);
      assert.ok(m.polygons.length >= 1);
      const back = rasterizeEvenOdd(m.polygons, width, height);
      const mask = decodeCocoMask(want[i].rle);
      const score = iou(back, mask);
      if (tolerance === 0) assert.equal(score, 1);
      else assert.ok(score >= 0.98, `IoU ${score}`);
      assert.equal((m as unknown as { score: number }).score, want[i].score);
    });
  }
  // Batched boxes: one result per box, polygons in each.
  const boxes = await call(app, "POST", path, {
    boxes: [[10, 10, 60, 50], [80, 40, 150, 100]],
    format: "polygon",
  });
  assert.equal(boxes.status, 200);
  const results = boxes.json.results as { masks: { polygons: number[][] }[] }[];
  assert.equal(results.length, 2);
  // A box mask is a rectangle: one ring of four corners cut (8 vertices at most).
  for (const r of results) assert.equal(r.masks[0].polygons.length, 1);

  for (
    const [body, re] of [
      [{ ...prompt, format: "svg" }, /format must be "png" or "rle" or "polygon"/],
      [{ ...prompt, format: "polygon", polygon_tolerance: -1 }, /polygon_tolerance must be in/],
      [
        { ...prompt, format: "polygon", polygon_tolerance: "1" },
        /polygon_tolerance must be a number/,
      ],
      [{ ...prompt, format: "rle", polygon_tolerance: 1 }, /goes with "format": "polygon"/],
    ] as [Record<string, unknown>, RegExp][]
  ) {
    const r = await call(app, "POST", path, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.match(String(r.json.error), re);
  }
});

Deno.test("everything and detect format polygon: COCO polygon segmentation", async () => {
  const { app, id, width, height } = await setup();
  const params = { points_per_side: 4, pred_iou_thresh: 0.5, stability_score_thresh: 0.5 };
  const rle = await call(app, "POST", `/api/images/${id}/everything`, params);
  assert.equal(rle.status, 200, JSON.stringify(rle.json));
  assert.equal(rle.json.format, "rle");
  const poly = await call(app, "POST", `/api/images/${id}/everything`, {
    ...params,
    format: "polygon",
    polygon_tolerance: 0,
  });
  assert.equal(poly.status, 200, JSON.stringify(poly.json));
  assert.equal(poly.json.format, "polygon");
  const a = rle.json.annotations as { segmentation: CocoRle; area: number }[];
  const b = poly.json.annotations as {
    segmentation: number[][];
    segmentation_parents: number[];
    area: number;
  }[];
  assert.ok(a.length > 0);
  assert.equal(b.length, a.length);
  a.forEach((r, i) => {
    assert.equal(b[i].area, r.area);
    assert.deepEqual(
      rasterizeEvenOdd(b[i].segmentation, width, height),
      decodeCocoMask(r.segmentation),
    );
    assert.equal(b[i].segmentation_parents.length, b[i].segmentation.length);
  });

  const det = await call(app, "POST", `/api/images/${id}/detect`, { format: "polygon" });
  assert.equal(det.status, 200, JSON.stringify(det.json));
  const detRle = await call(app, "POST", `/api/images/${id}/detect`, {});
  const pa = det.json.annotations as { segmentation: number[][]; category_name: string }[];
  const ra = detRle.json.annotations as { segmentation: CocoRle; category_name: string }[];
  assert.deepEqual(pa.map((x) => x.category_name), ["dog", "car"]);
  pa.forEach((x, i) => {
    const score = iou(
      rasterizeEvenOdd(x.segmentation, width, height),
      decodeCocoMask(ra[i].segmentation),
    );
    assert.ok(score >= 0.98, `IoU ${score}`);
  });
  const bad = await call(app, "POST", `/api/images/${id}/detect`, { format: "png" });
  assert.equal(bad.status, 400);
  assert.match(String(bad.json.error), /format must be "rle" or "polygon"/);
});
