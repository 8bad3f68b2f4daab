/**
 * Real COCO category ids: the 80 contiguous classes map to instances_*.json's ids 1..90 (the
 * ten unused ids skipped), dog = 18, with the standard category list; the server's detect
 * answer and cocoJson carry them.
 */
import assert from "node:assert/strict";
import {
  COCO_91_IDS,
  COCO_CATEGORIES,
  COCO_CLASSES,
  cocoJson,
  toAnnotations,
} from "../../src/detect/mod.ts";
import { createApp } from "../../src/server/app.ts";
import { fakeDetector, FakeEngine } from "../server/fake_engine.ts";
import { call, FIXTURE_IMAGE } from "../server/helpers.ts";

Deno.test("COCO ids: 80 classes onto 1..90 without the ten unused ids", () => {
  const unused = [12, 26, 29, 30, 45, 66, 68, 69, 71, 83];
  const expected = [];
  for (let id = 1; id <= 90; id++) if (!unused.includes(id)) expected.push(id);
  assert.deepEqual([...COCO_91_IDS], expected);
  const byName = new Map(COCO_CATEGORIES.map((c) => [c.name, c]));
  assert.deepEqual(byName.get("person"), { id: 1, name: "person", supercategory: "person" });
  assert.deepEqual(byName.get("dog"), { id: 18, name: "dog", supercategory: "animal" });
  assert.deepEqual(byName.get("car"), { id: 3, name: "car", supercategory: "vehicle" });
  assert.deepEqual(byName.get("backpack"), {
    id: 27,
    name: "backpack",
    supercategory: "accessory",
  });
  assert.deepEqual(byName.get("dining table"), {
    id: 67,
    name: "dining table",
    supercategory: "furniture",
  });
  assert.deepEqual(byName.get("tv"), { id: 72, name: "tv", supercategory: "electronic" });
  assert.deepEqual(byName.get("refrigerator"), {
    id: 82,
    name: "refrigerator",
    supercategory: "appliance",
  });
  assert.deepEqual(byName.get("toothbrush"), {
    id: 90,
    name: "toothbrush",
    supercategory: "indoor",
  });
  assert.equal(COCO_CATEGORIES.length, 80);
  assert.deepEqual(COCO_CATEGORIES.map((c) => c.name), [...COCO_CLASSES]);
});

Deno.test("COCO ids: a non-COCO class list keeps its indices", () => {
  const det = [{
    box: [0, 0, 2, 2],
    inputBox: [0, 0, 2, 2],
    score: 0.9,
    classId: 1,
    className: "b",
  }];
  const pred = {
    width: 4,
    height: 4,
    masks: [new Uint8Array(16).fill(1)],
    scores: new Float32Array([0.8]),
    lowResLogits: new Float32Array(1),
    lowResSize: 1,
  };
  // deno-lint-ignore no-explicit-any
  const { annotations } = toAnnotations(det as any, [pred], ["a", "b"]);
  assert.equal(annotations[0].category_id, 1);
  assert.equal(annotations[0].class_index, 1);
  const coco = cocoJson(
    {
      width: 4,
      height: 4,
      detections: [],
      masks: [],
      annotations,
      imageInfo: null,
      timings: { detectMs: 0, encodeMs: 0, decodeMs: 0 },
    },
    ["a", "b"],
  );
  assert.deepEqual(coco.categories, [{ id: 0, name: "a" }, { id: 1, name: "b" }]);
});

Deno.test("COCO ids: POST /detect answers dog = 18 and the standard categories", async () => {
  const app = createApp({ engine: new FakeEngine(), detector: fakeDetector(), log: () => {} });
  const up = await call(app, "POST", "/api/images", await Deno.readFile(FIXTURE_IMAGE), {
    "content-type": "image/png",
  });
  const r = await call(app, "POST", `/api/images/${up.json.id}/detect`, {});
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const anns = r.json.annotations as {
    category_id: number;
    class_index: number;
    category_name: string;
  }[];
  assert.deepEqual(anns.map((a) => [a.category_name, a.category_id, a.class_index]), [
    ["dog", 18, 16],
    ["car", 3, 2],
  ]);
  assert.deepEqual(r.json.categories, COCO_CATEGORIES);
});
