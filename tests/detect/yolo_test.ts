/** Layout recognition, decoding and NMS on synthetic tensors; COCO class names. */
import assert from "node:assert/strict";
import {
  closeClassNames,
  COCO_91_IDS,
  COCO_CLASSES,
  editDistance,
  resolveClassIds,
  UnknownClassError,
} from "../../src/detect/coco_classes.ts";
import { decodeCandidates, detectLayout, nmsCandidates } from "../../src/detect/yolo.ts";

Deno.test("detectLayout: YOLO-NAS and YOLOv8 by shape, symbolic dims allowed", () => {
  assert.deepEqual(
    detectLayout([{ name: "scores", dims: [1, 8400, 80] }, { name: "boxes", dims: [1, 8400, 4] }]),
    { kind: "yolo-nas", boxesName: "boxes", scoresName: "scores", numClasses: 80 },
  );
  // Names other than the fixture's; anchors symbolic.
  assert.equal(
    detectLayout([{ name: "a", dims: [1, "n", 4] }, { name: "b", dims: [1, "n", 3] }]).boxesName,
    "a",
  );
  // C = 4: shapes cannot tell, the names do.
  assert.equal(
    detectLayout([{ name: "cls_scores", dims: [1, 10, 4] }, {
      name: "pred_boxes",
      dims: [1, 10, 4],
    }])
      .boxesName,
    "pred_boxes",
  );
  assert.deepEqual(detectLayout([{ name: "output0", dims: [1, 84, 8400] }]), {
    kind: "yolov8",
    boxesName: "output0",
    scoresName: "output0",
    numClasses: 80,
  });
  assert.equal(detectLayout([{ name: "out", dims: ["batch", 84, "anchors"] }]).numClasses, 80);
});

Deno.test("detectLayout: unknown layouts are refused with a clear message", () => {
  const cases: [Parameters<typeof detectLayout>[0], RegExp][] = [
    // YOLOv5: (1, N, 5 + C) with objectness.
    [
      [{ name: "output", dims: [1, 25200, 85] }],
      /outputs output \(1,25200,85\); expected YOLO-NAS/,
    ],
    // YOLO-NAS with its NMS head.
    [
      [
        { name: "num_predictions", dims: [1, 1] },
        { name: "pred_boxes", dims: [1, 100, 4] },
        { name: "pred_scores", dims: [1, 100] },
        { name: "pred_classes", dims: [1, 100] },
      ],
      /export the detector without it/,
    ],
    [
      [{ name: "a", dims: [1, 10, 4] }, { name: "b", dims: [1, 11, 80] }],
      /outputs a \(1,10,4\), b/,
    ],
    [[{ name: "x", dims: [1, 10, 4] }, { name: "y", dims: [1, 10, 4] }], /unknown detector output/],
    [[{ name: "logits", dims: [1, 1000] }], /logits \(1,1000\)/],
    [[{ name: "o", dims: undefined }], /o \(shape unknown\)/],
    [[], /outputs \(none\)/],
  ];
  for (const [outputs, message] of cases) assert.throws(() => detectLayout(outputs), message);
});

Deno.test("decodeCandidates: argmax class, strict threshold, class filter, cxcywh -> xyxy", () => {
  const n = 8, c = 3; // anchors 4..7 score 0 everywhere
  // YOLOv8 (1, 4 + C, N), channel-major.
  const v8 = new Float32Array((4 + c) * n);
  const put = (i: number, cxcywh: number[], scores: number[]) => {
    cxcywh.forEach((v, k) => (v8[k * n + i] = v));
    scores.forEach((v, k) => (v8[(4 + k) * n + i] = v));
  };
  put(0, [50, 60, 20, 10], [0.1, 0.9, 0.2]);
  put(1, [10, 10, 4, 4], [0.5, 0.5, 0.1]); // tie: first class wins
  put(2, [0, 0, 2, 2], [0.3, 0, 0]); // exactly at the threshold: dropped
  put(3, [0, 0, 2, 2], [0, 0, 0.31]);
  const layout = detectLayout([{ name: "output0", dims: [1, 4 + c, n] }]);
  const out = { output0: { dims: [1, 4 + c, n], data: v8 } };
  const all = decodeCandidates(layout, out, 0.3);
  assert.deepEqual(Array.from(all.classIds), [1, 0, 2]);
  assert.deepEqual(Array.from(all.boxes.subarray(0, 8)), [40, 55, 60, 65, 8, 8, 12, 12]);
  assert.deepEqual(Array.from(all.scores), [0.9, 0.5, 0.31].map(Math.fround));
  // Keeping class 0 drops anchor 0 (its best class is 1) rather than re-labelling it.
  assert.deepEqual(Array.from(decodeCandidates(layout, out, 0.3, new Set([0])).classIds), [0]);
  // Actual tensors must match the layout the metadata announced.
  assert.throws(
    () => decodeCandidates({ ...layout, numClasses: 80 }, out, 0.3),
    /outputs output0 \(1,7,8\);.* \(the model's metadata said yolov8\)/,
  );
  assert.throws(
    () => decodeCandidates(layout, { output0: { dims: [1, 4 + c, n + 1], data: v8 } }, 0.3),
    /data length does not match its shape/,
  );
});

Deno.test("nmsCandidates: class-aware, IoU strictly above the threshold suppresses", () => {
  const cand = {
    // IoU(0, 1) = 50 / 150 = 1/3; box 2 identical to 0 but another class.
    boxes: Float32Array.from([0, 0, 10, 10, 5, 0, 15, 10, 0, 0, 10, 10]),
    scores: Float32Array.from([0.9, 0.8, 0.7]),
    classIds: Int32Array.from([0, 0, 1]),
  };
  assert.deepEqual(nmsCandidates(cand, 1 / 3 + 1e-6), [0, 1, 2]);
  assert.deepEqual(nmsCandidates(cand, 0.3), [0, 2]);
  assert.deepEqual(nmsCandidates(cand, 0.3, 1), [0]);
});

Deno.test("COCO classes: 80 names, ids as truth.json uses them, official ids", () => {
  assert.equal(COCO_CLASSES.length, 80);
  assert.equal(new Set(COCO_CLASSES).size, 80);
  assert.deepEqual([COCO_CLASSES[0], COCO_CLASSES[2], COCO_CLASSES[16]], ["person", "car", "dog"]);
  assert.equal(COCO_CLASSES[79], "toothbrush");
  assert.equal(COCO_91_IDS.length, 80);
  assert.ok(COCO_91_IDS.every((v, i) => i === 0 || v > COCO_91_IDS[i - 1]));
  assert.deepEqual([COCO_91_IDS[16], COCO_91_IDS[79]], [18, 90]);
});

Deno.test("class names: resolve, normalise, and explain unknown ones", () => {
  assert.equal(resolveClassIds(undefined), null);
  assert.equal(resolveClassIds([]), null);
  assert.deepEqual([...resolveClassIds(["dog", "Car", "teddy_bear", "hot-dog"])!], [16, 2, 77, 52]);
  assert.deepEqual(closeClassNames("dgo"), ["dog"]);
  assert.deepEqual(closeClassNames("cars").slice(0, 1), ["car"]);
  assert.ok(closeClassNames("ball").includes("sports ball"));
  assert.throws(
    () => resolveClassIds(["dog", "cta"]),
    /unknown class name "cta" \(did you mean "cat", /,
  );
  assert.equal(editDistance("cta", "cat"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.throws(
    () => resolveClassIds(["spaceship"]),
    /unknown class name "spaceship"; the detector knows 80 classes: person, bicycle/,
  );
  assert.deepEqual([...resolveClassIds(["a"], ["a", "b"])!], [0]); // custom class lists
  try {
    resolveClassIds(["dgo", "car", "spaceship"]);
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof UnknownClassError);
    assert.deepEqual(e.unknown, ["dgo", "spaceship"]);
    assert.deepEqual(e.suggestions, [["dog"], []]);
  }
});
