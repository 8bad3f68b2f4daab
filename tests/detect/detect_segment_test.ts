/**
 * detect-then-segment against a stand-in predictor (masks = the box filled, IoU = 0.5 +
 * box index / 100), so the plumbing (one batched box pass, multimask off, COCO annotations
 * and RLE, SAM skipped when nothing is detected) is checked without SAM or ONNX Runtime (a
 * fixed detector gives the fixture stand-ins' detections). The overlay is checked pixel by
 * pixel.
 */
import assert from "node:assert/strict";
import { Image } from "imagescript";
import { cocoDecodeRle, rleToMask } from "../../src/amg/rle.ts";
import {
  type BoxPredictor,
  cocoJson,
  detectAndSegment,
  xyxyToXywh,
} from "../../src/detect/detect_segment.ts";
import type { Detection, DetectOptions, DetectorLike } from "../../src/detect/detector.ts";
import { COCO_CLASSES, resolveClassIds } from "../../src/detect/coco_classes.ts";
import { drawOverlay, paletteColor, renderOverlayPng } from "../../src/detect/overlay.ts";
import { glyph, textSize } from "../../src/detect/bitmap_font.ts";
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../../src/types.ts";

function photo(width: number, height: number, value = 90): RgbImage {
  return { width, height, channels: 3, data: new Uint8Array(width * height * 3).fill(value) };
}

/** Masks are the pixels whose centres lie inside the box. Records every call. */
class BoxFillPredictor implements BoxPredictor {
  calls: { setImage: number; batches: Prompt[][] } = { setImage: 0, batches: [] };
  private w = 0;
  private h = 0;
  setImage(image: RgbImage): Promise<ImageInfo> {
    this.calls.setImage++;
    this.w = image.width;
    this.h = image.height;
    return Promise.resolve({
      id: "stub",
      width: this.w,
      height: this.h,
      cached: false,
      encodeMs: 0,
    });
  }
  predictBatch(prompts: Prompt[]): Promise<Prediction[]> {
    this.calls.batches.push(prompts);
    return Promise.resolve(prompts.map((p, i) => {
      const mask = new Uint8Array(this.w * this.h);
      const [x0, y0, x1, y1] = p.box!;
      for (let y = 0; y < this.h; y++) {
        for (let x = 0; x < this.w; x++) {
          if (x + 0.5 > x0 && x + 0.5 < x1 && y + 0.5 > y0 && y + 0.5 < y1) {
            mask[y * this.w + x] = 1;
          }
        }
      }
      return {
        width: this.w,
        height: this.h,
        masks: [mask],
        scores: Float32Array.of(0.5 + i / 100),
        lowResLogits: new Float32Array(0),
        lowResSize: 0,
      };
    }));
  }
}

/**
 * What the fixture stand-in detectors give on a 1000 x 500 photo (detector_test checks that
 * against the real ONNX models): dog, car, person, best first. Class filters as Detector's.
 */
const fixedDetector: DetectorLike = {
  classNames: COCO_CLASSES,
  detect(_image: RgbImage, opts: DetectOptions = {}) {
    const keep = resolveClassIds(opts.classes);
    const all: Detection[] = [
      [16, 0.92, [156.25, 62.5, 468.75, 406.25], [100, 200, 300, 420]],
      [2, 0.88, [546.875, 0, 937.5, 500], [350, 150, 600, 500]],
      [0, 0.61, [31.25, 0, 140.625, 62.5], [20, 30, 90, 200]],
    ].map(([classId, score, box, inputBox]) => ({
      classId: classId as number,
      className: COCO_CLASSES[classId as number],
      score: Math.fround(score as number),
      box: box as Detection["box"],
      inputBox: inputBox as Detection["inputBox"],
    }));
    return Promise.resolve(all.filter((d) => !keep || keep.has(d.classId)));
  },
};

Deno.test("detectAndSegment: one batched box pass, COCO annotations", async () => {
  const detector = fixedDetector;
  const predictor = new BoxFillPredictor();
  const img = photo(1000, 500);
  const result = await detectAndSegment(img, detector, predictor, { scoreThreshold: 0.35 });
  assert.equal(predictor.calls.setImage, 1);
  assert.equal(predictor.calls.batches.length, 1, "all boxes in one predictBatch");
  const prompts = predictor.calls.batches[0];
  assert.deepEqual(prompts, result.detections.map((d) => ({ box: d.box, multimask: false })));
  // The landscape boxes of detector_test: dog, car, person.
  assert.deepEqual(result.annotations.map((a) => a.category_name), ["dog", "car", "person"]);
  // Official COCO ids (dog 18, car 3, person 1); the detector's index beside them.
  assert.deepEqual(result.annotations.map((a) => a.category_id), [18, 3, 1]);
  assert.deepEqual(result.annotations.map((a) => a.class_index), [16, 2, 0]);
  assert.deepEqual(result.annotations[0].bbox, [156.25, 62.5, 312.5, 343.75]);
  result.annotations.forEach((a, i) => {
    assert.equal(a.id, i + 1);
    assert.equal(a.image_id, 1);
    assert.equal(a.score, result.detections[i].score);
    assert.equal(a.predicted_iou, Math.fround(0.5 + i / 100));
    assert.deepEqual(a.segmentation.size, [500, 1000]);
    const mask = rleToMask(cocoDecodeRle(a.segmentation));
    assert.deepEqual(mask, result.masks[i]);
    assert.equal(a.area, mask.reduce((s, v) => s + v, 0));
  });
  // Dog, box 156.25..468.75 x 62.5..406.25: pixel centres strictly inside are columns
  // 156..468 (313) and rows 63..405 (343; row 62's centre 62.5 is on the edge).
  assert.equal(result.annotations[0].area, 313 * 343);
  const coco = cocoJson(result, COCO_CLASSES, "photo.png");
  assert.deepEqual(coco.images, [{ id: 1, width: 1000, height: 500, file_name: "photo.png" }]);
  assert.equal(coco.categories.length, 80);
  assert.deepEqual(coco.categories[16], { id: 18, name: "dog", supercategory: "animal" });
  JSON.parse(JSON.stringify(coco)); // plain JSON

  // Only cars: one box; an unknown class fails before SAM is touched.
  const cars = await detectAndSegment(img, detector, predictor, { classes: ["car"] });
  assert.deepEqual(cars.annotations.map((a) => a.category_name), ["car"]);
  const before = { ...predictor.calls, batches: predictor.calls.batches.length };
  await assert.rejects(
    detectAndSegment(img, detector, predictor, { classes: ["doge"] }),
    /unknown class name "doge" \(did you mean "dog"/,
  );
  assert.equal(predictor.calls.setImage, before.setImage);
});

Deno.test("detectAndSegment: nothing detected, SAM not run", async () => {
  const predictor = new BoxFillPredictor();
  const none: DetectorLike = { classNames: COCO_CLASSES, detect: () => Promise.resolve([]) };
  const result = await detectAndSegment(photo(20, 10), none, predictor);
  assert.deepEqual(result.annotations, []);
  assert.equal(result.imageInfo, null);
  assert.deepEqual(predictor.calls, { setImage: 0, batches: [] });
});

Deno.test("detectAndSegment: a predictor answering the wrong count fails clearly", async () => {
  const det: Detection = {
    box: [1, 1, 5, 5],
    inputBox: [1, 1, 5, 5],
    score: 0.9,
    classId: 16,
    className: "dog",
  };
  const one: DetectorLike = { classNames: COCO_CLASSES, detect: () => Promise.resolve([det]) };
  const broken: BoxPredictor = {
    setImage: (img) => new BoxFillPredictor().setImage(img),
    predictBatch: () => Promise.resolve([]),
  };
  await assert.rejects(
    detectAndSegment(photo(8, 8), one, broken),
    /predictBatch returned 0 predictions for 1 boxes/,
  );
  assert.deepEqual(xyxyToXywh([1, 2, 4, 8]), [1, 2, 3, 6]);
});

Deno.test("overlay: tinted mask with solid outline, box, label tag with glyph ink; PNG round trip", async () => {
  const w = 60, h = 40;
  const img = photo(w, h, 100);
  const mask = new Uint8Array(w * h);
  for (let y = 20; y < 30; y++) for (let x = 10; x < 30; x++) mask[y * w + x] = 1;
  const items = [{ mask, box: [10, 20, 30, 30], label: "DOG 1" }];
  const rgba = drawOverlay(img, items, { alpha: 0.5, textScale: 1, lineWidth: 1 });
  const c = paletteColor(0);
  const px = (x: number, y: number) =>
    Array.from(rgba.subarray(4 * (y * w + x), 4 * (y * w + x) + 4));
  assert.deepEqual(px(0, 0), [100, 100, 100, 255]); // untouched
  assert.deepEqual(px(20, 25), [...Uint8ClampedArray.from(c, (v) => 100 * 0.5 + v * 0.5), 255]); // tint (rounding as the clamped array does)
  assert.deepEqual(px(10, 25), [...c, 255]); // box's left edge (also the mask outline)
  assert.deepEqual(px(29, 29), [...c, 255]); // bottom-right pixel of the box
  assert.deepEqual(px(31, 25), [100, 100, 100, 255]); // just outside
  // Label tag above the box: 9 px high (7 + 2 padding) ending at row 19, starting at x = 10.
  const size = textSize("DOG 1", 1);
  assert.deepEqual(size, { width: 29, height: 7 });
  const ink = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? [0, 0, 0] : [255, 255, 255];
  // "D" top row is "####.": pixels (11..14, 12) ink, (15, 12) tag colour.
  assert.equal(glyph("d")[0], 0b11110);
  for (let x = 11; x <= 14; x++) assert.deepEqual(px(x, 12), [...ink, 255], `ink at ${x}`);
  assert.deepEqual(px(15, 12), [...c, 255]);
  assert.deepEqual(px(10, 11), [...c, 255]); // tag's top-left corner
  assert.deepEqual(px(10, 10), [100, 100, 100, 255]); // above the tag

  const png = await renderOverlayPng(img, items, { alpha: 0.5, textScale: 1, lineWidth: 1 });
  const decoded = await Image.decode(png);
  assert.deepEqual([decoded.width, decoded.height], [w, h]);
  assert.deepEqual(new Uint8ClampedArray(decoded.bitmap), rgba);
  assert.throws(
    () => drawOverlay(img, [{ mask: new Uint8Array(3), box: [0, 0, 1, 1], label: "" }]),
    /mask 0 has 3 pixels/,
  );
});
