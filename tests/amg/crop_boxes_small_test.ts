/**
 * generateCropBoxes on very small images (a side near or below 2^layers): the official grid's
 * last crops would start at or past the edge (0 px wide or high); they are left out, and every
 * other box is the official one, in the official order.
 */
import assert from "node:assert/strict";
import { generateCropBoxes } from "../../src/amg/utils.ts";

/** segment_anything/utils/amg.py generate_crop_boxes, transcribed without any filtering. */
function officialCropBoxes(imH: number, imW: number, nLayers: number, overlapRatio: number) {
  const boxes: number[][] = [[0, 0, imW, imH]];
  const layerIdxs = [0];
  const shortSide = Math.min(imH, imW);
  const cropLen = (orig: number, n: number, overlap: number) =>
    Math.ceil((overlap * (n - 1) + orig) / n);
  for (let i = 0; i < nLayers; i++) {
    const nPerSide = 2 ** (i + 1);
    const overlap = Math.trunc(overlapRatio * shortSide * (2 / nPerSide));
    const cropW = cropLen(imW, nPerSide, overlap), cropH = cropLen(imH, nPerSide, overlap);
    for (let a = 0; a < nPerSide; a++) {
      for (let b = 0; b < nPerSide; b++) {
        const x0 = Math.trunc((cropW - overlap) * a), y0 = Math.trunc((cropH - overlap) * b);
        boxes.push([x0, y0, Math.min(x0 + cropW, imW), Math.min(y0 + cropH, imH)]);
        layerIdxs.push(i + 1);
      }
    }
  }
  return { boxes, layerIdxs };
}

const RATIO = 512 / 1500;

Deno.test("crop boxes: 64x3 at two layers leaves out the empty crops", () => {
  const official = officialCropBoxes(3, 64, 2, RATIO);
  // The official layer 2 has crops 1 px high at y0 = 0, 1, 2, 3: the last row is empty.
  assert.ok(official.boxes.some(([, y0, , y1]) => y1 <= y0), "the official grid has empty crops");
  const { boxes, layerIdxs } = generateCropBoxes(3, 64, 2, RATIO);
  for (const [x0, y0, x1, y1] of boxes) assert.ok(x1 > x0 && y1 > y0, `empty box ${x0},${y0}`);
  const keep = official.boxes.map(([x0, y0, x1, y1]) => x1 > x0 && y1 > y0);
  assert.deepEqual(boxes, official.boxes.filter((_, i) => keep[i]));
  assert.deepEqual(layerIdxs, official.layerIdxs.filter((_, i) => keep[i]));
  assert.equal(boxes.length, 1 + 4 + 12);
  assert.deepEqual(boxes[0], [0, 0, 64, 3]);
});

Deno.test("crop boxes: a 1x1 image at one layer keeps the image and its one real crop", () => {
  const { boxes, layerIdxs } = generateCropBoxes(1, 1, 1, RATIO);
  assert.deepEqual(boxes, [[0, 0, 1, 1], [0, 0, 1, 1]]);
  assert.deepEqual(layerIdxs, [0, 1]);
  const two = generateCropBoxes(1, 1, 2, RATIO);
  assert.deepEqual(two.boxes, [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]);
  assert.deepEqual(two.layerIdxs, [0, 1, 2]);
});

Deno.test("crop boxes: never empty, and exactly the official ones where those are not", () => {
  for (
    const [h, w] of [[1, 1], [1, 7], [2, 3], [3, 64], [5, 5], [7, 300], [600, 900], [107, 160]]
  ) {
    for (const layers of [0, 1, 2, 3]) {
      for (const ratio of [0, RATIO, 0.9]) {
        const ours = generateCropBoxes(h, w, layers, ratio);
        const official = officialCropBoxes(h, w, layers, ratio);
        const keep = official.boxes.map(([x0, y0, x1, y1]) => x1 > x0 && y1 > y0);
        assert.deepEqual(ours.boxes, official.boxes.filter((_, i) => keep[i]), `${w}x${h}`);
        assert.deepEqual(ours.layerIdxs, official.layerIdxs.filter((_, i) => keep[i]));
        if (keep.every((k) => k)) {
          assert.deepEqual(ours, official, `${w}x${h}, ${layers} layers: unchanged`);
        }
        if (Math.min(h, w) >= 4 * 2 ** layers) assert.ok(keep.every((k) => k), `${w}x${h}`);
      }
    }
  }
});
