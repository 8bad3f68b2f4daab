import assert from "node:assert/strict";
import { batchedNms, stableArgsortDescending } from "../../src/amg/nms.ts";
import { connectedComponents8, removeSmallRegions } from "../../src/amg/regions.ts";
import {
  batchedMaskToBox,
  boxXyxyToXywh,
  buildAllLayerPointGrids,
  buildPointGrid,
  calculateStabilityScore,
  generateCropBoxes,
  isBoxNearCropEdge,
  logitMaskStats,
  maskToBox,
  thresholdMask,
} from "../../src/amg/utils.ts";
import { randomArray } from "../util/compare.ts";

Deno.test("point grids: cell centres, x fastest; layer sizes scale down", () => {
  assert.deepEqual(Array.from(buildPointGrid(1)), [0.5, 0.5]);
  assert.deepEqual(
    Array.from(buildPointGrid(2)),
    [0.25, 0.25, 0.75, 0.25, 0.25, 0.75, 0.75, 0.75],
  );
  const g16 = buildPointGrid(16);
  // 16 a side: (2i+1)/32; on a 552-wide crop, point 4 is at 9 * 17.25 = 155.25 pixels.
  assert.equal(g16[2 * 4] * 552, 155.25);
  assert.equal(g16[2 * 16 * 15 + 1], 31 / 32);
  const sides = (grids: Float64Array[]) => grids.map((g) => Math.sqrt(g.length / 2));
  assert.deepEqual(sides(buildAllLayerPointGrids(32, 2, 2)), [32, 16, 8]);
  assert.deepEqual(sides(buildAllLayerPointGrids(32, 2, 3)), [32, 10, 3]); // int(32/3), int(32/9)
});

Deno.test("crop boxes on a 600x900 image, layers 1 and 2, as worked out by hand", () => {
  // Layer 1: 2x2 crops; overlap = int(512/1500 * 600 * 2/2) = int(204.8) = 204;
  // crop_w = ceil((204 + 900) / 2) = 552, crop_h = ceil((204 + 600) / 2) = 402;
  // x0 = 0, 552-204 = 348; y0 = 0, 402-204 = 198; x0 outer, y0 inner.
  const layer1 = [[0, 198], [348, 0], [348, 198]].reduce(
    (acc, [x0, y0]) => [...acc, [x0, y0, x0 + 552, y0 + 402]],
    [[0, 0, 552, 402]],
  );
  const one = generateCropBoxes(600, 900, 1, 512 / 1500);
  assert.deepEqual(one.boxes, [[0, 0, 900, 600], ...layer1]);
  assert.deepEqual(one.layerIdxs, [0, 1, 1, 1, 1]);
  // Layer 2: 4x4 crops; overlap = int(512/1500 * 600 * 2/4) = int(102.4) = 102;
  // crop_w = ceil((3*102 + 900) / 4) = ceil(301.5) = 302; crop_h = ceil((306 + 600) / 4) = 227;
  // x0 = 200 i (0, 200, 400, 600), y0 = 125 i (0, 125, 250, 375); the last ones clip to the
  // image: 600 + 302 = 902 -> 900, 375 + 227 = 602 -> 600.
  const layer2: number[][] = [];
  for (const x0 of [0, 200, 400, 600]) {
    for (const y0 of [0, 125, 250, 375]) {
      layer2.push([x0, y0, Math.min(x0 + 302, 900), Math.min(y0 + 227, 600)]);
    }
  }
  assert.deepEqual(layer2[15], [600, 375, 900, 600]);
  const two = generateCropBoxes(600, 900, 2, 512 / 1500);
  assert.deepEqual(two.boxes, [[0, 0, 900, 600], ...layer1, ...layer2]);
  assert.deepEqual(two.layerIdxs, [0, ...Array(4).fill(1), ...Array(16).fill(2)]);
});

Deno.test("stability score: counts above threshold +- offset, float32 ratio, NaN on 0/0", () => {
  // Map 0: > 1 holds for 2.0 and 1.5 (1.0 is not above 1): 2. > -1 holds for all but -2.0
  // and -1.0: 5. Score 2/5 in float32. Map 1: nothing above -1: 0/0.
  const logits = Float32Array.from([
    ...[2.0, 0.5, -0.5, 1.5, -2.0, 1.0, -1.0],
    ...[-5, -5, -5, -5, -5, -5, -5],
  ]);
  const s = calculateStabilityScore(logits, 2, 1, 7, 0.0, 1.0);
  assert.equal(s[0], Math.fround(2 / 5));
  assert.ok(Number.isNaN(s[1]));
  // Offset 0.5: > 0.5: 2.0, 1.5, 1.0 -> 3; > -0.5: 2.0, 0.5, 1.5, 1.0 -> 4.
  assert.equal(calculateStabilityScore(logits, 1, 1, 7, 0.0, 0.5)[0], Math.fround(3 / 4));
  // Thresholds are float32: 0.1 + 1.0 = 1.1 rounds to 1.10000002384; a logit of
  // fround(1.1) is not above it, though above the float64 1.1.
  const edge = Float32Array.from([Math.fround(1.1), 0]);
  assert.equal(calculateStabilityScore(edge, 1, 1, 2, 0.1, 1.0)[0], 0);
  // Per-row counts are int16 in torch: a row of 40000 set pixels wraps to 40000 - 65536.
  const wide = new Float32Array(40000);
  wide.fill(2.0, 0, 10000);
  assert.equal(calculateStabilityScore(wide, 1, 1, 40000, 0, 1)[0], Math.fround(10000 / -25536));
});

Deno.test("one-pass mask statistics agree with the separate stability score and box", () => {
  const h = 37, w = 53, n = 6;
  const logits = randomArray(n * h * w, 7, 3);
  // Map 5 empty above 0, map 4 a single pixel.
  logits.fill(-4, 5 * h * w, 6 * h * w);
  logits.fill(-4, 4 * h * w, 5 * h * w);
  logits[4 * h * w + 11 * w + 29] = 0.5;
  const scores = calculateStabilityScore(logits, n, h, w, 0, 1);
  for (let i = 0; i < n; i++) {
    const stats = logitMaskStats(logits, i * h * w, h, w, 0, 1);
    assert.ok(Object.is(stats.stability, scores[i]), `map ${i}`);
    const mask = thresholdMask(logits, i * h * w, h * w, 0);
    assert.deepEqual(stats.box, maskToBox(mask, h, w), `map ${i}`);
  }
  assert.deepEqual(logitMaskStats(logits, 4 * h * w, h, w, 0, 1).box, [29, 11, 29, 11]);
  assert.deepEqual(logitMaskStats(logits, 5 * h * w, h, w, 0, 1).box, [0, 0, 0, 0]);
});

Deno.test("mask boxes: inclusive extreme pixels, [0,0,0,0] when empty; XYWH", () => {
  const h = 5, w = 6;
  const masks = new Uint8Array(3 * h * w);
  masks[2 * w + 3] = 1; // mask 0: one pixel at row 2, col 3
  masks[h * w + 1 * w + 4] = 1; // mask 1: (row 1, col 4) and (row 4, col 0)
  masks[h * w + 4 * w + 0] = 1;
  assert.deepEqual(Array.from(batchedMaskToBox(masks, 3, h, w)), [
    ...[3, 2, 3, 2],
    ...[0, 1, 4, 4],
    ...[0, 0, 0, 0],
  ]);
  assert.deepEqual(boxXyxyToXywh([0, 1, 4, 4]), [0, 1, 4, 3]);
});

Deno.test("crop-edge filter: near a crop edge that is not an image edge, atol 20", () => {
  const crop = [348, 0, 900, 402], image = [0, 0, 900, 600];
  assert.equal(isBoxNearCropEdge([0, 50, 100, 100], crop, image), true); // x0 at the crop's left
  assert.equal(isBoxNearCropEdge([100, 0, 200, 100], crop, image), false); // top is the image's
  assert.equal(isBoxNearCropEdge([100, 100, 551, 200], crop, image), false); // right too
  assert.equal(isBoxNearCropEdge([100, 100, 200, 381], crop, image), false); // 402 - 381 = 21
  assert.equal(isBoxNearCropEdge([100, 100, 200, 382], crop, image), true); // 20: within atol
  assert.equal(isBoxNearCropEdge([20, 100, 200, 300], crop, image), true);
  assert.equal(isBoxNearCropEdge([21, 100, 200, 300], crop, image), false);
});

Deno.test("NMS: best first, stable on ties, IoU > threshold strictly, float32 IoU", () => {
  // Equal scores keep index order (torchvision's CPU sort is stable); NaN sorts first.
  assert.deepEqual(stableArgsortDescending([0.5, 0.9, 0.5, 0.9, NaN, 0.1]), [4, 1, 3, 0, 2, 5]);
  const far = (i: number) => [100 * i, 0, 100 * i + 10, 10];
  assert.deepEqual(
    batchedNms([...far(0), ...far(1), ...far(2), ...far(3)], [0.5, 0.7, 0.5, 0.7], 0.5),
    [1, 3, 0, 2],
  );
  // IoU exactly 0.5 ([0,3] and [1,4] on x: inter 2, union 4): suppressed only below 0.5.
  const half = [0, 0, 3, 1, 1, 0, 4, 1];
  assert.deepEqual(batchedNms(half, [0.9, 0.8], 0.5), [0, 1]);
  assert.deepEqual(batchedNms(half, [0.9, 0.8], 0.49), [0]);
  assert.deepEqual(batchedNms(half, [0.8, 0.9], 0.49), [1]);
  // IoU 3/10 is 0.30000001192 in float32, above a threshold of 0.3 (torchvision compares the
  // float32 IoU with the double threshold), so the box goes.
  assert.deepEqual(batchedNms([0, 0, 10, 1, 0, 0, 3, 1], [0.9, 0.8], 0.3), [0]);
  // A suppressed box suppresses nothing: 0 kills 1 (IoU 8/12), not 2 (6/14); 1 would have
  // killed 2 (8/12).
  const chain = [0, 0, 10, 1, 2, 0, 12, 1, 4, 0, 14, 1];
  assert.deepEqual(batchedNms(chain, [0.9, 0.8, 0.7], 0.5), [0, 2]);
  // Empty boxes (IoU 0/0) never suppress each other; categories keep classes apart.
  assert.deepEqual(batchedNms([0, 0, 0, 0, 0, 0, 0, 0], [0.9, 0.8], 0.1), [0, 1]);
  assert.deepEqual(batchedNms([...far(0), ...far(0)], [0.9, 0.8], 0.5, [0, 1]), [0, 1]);
  assert.deepEqual(batchedNms([], [], 0.5), []);
});

function grid(rows: string[]): { mask: Uint8Array; h: number; w: number } {
  const h = rows.length, w = rows[0].length;
  return { mask: Uint8Array.from(rows.join("").split(""), (c) => (c === "#" ? 1 : 0)), h, w };
}

function show(mask: Uint8Array, w: number): string[] {
  const rows: string[] = [];
  for (let i = 0; i < mask.length; i += w) {
    rows.push(Array.from(mask.subarray(i, i + w), (v) => (v ? "#" : ".")).join(""));
  }
  return rows;
}

Deno.test("remove_small_regions: holes are filled, with 8-connected background", () => {
  const ring = grid([
    ".......",
    ".#####.",
    ".#...#.",
    ".#.#.#.",
    ".#...#.",
    ".#####.",
    ".......",
  ]);
  const filled = removeSmallRegions(ring.mask, ring.h, ring.w, 9, "holes");
  assert.equal(filled.changed, true);
  assert.deepEqual(show(filled.mask, ring.w), [
    ".......",
    ".#####.",
    ".#####.",
    ".#####.",
    ".#####.",
    ".#####.",
    ".......",
  ]);
  // The inner hole has 8 pixels: kept at threshold 8 (8 < 8 is false), the mask unchanged.
  const kept = removeSmallRegions(ring.mask, ring.h, ring.w, 8, "holes");
  assert.equal(kept.changed, false);
  assert.equal(kept.mask, ring.mask);
  // A one-pixel gap touching the outside only diagonally is part of the outside (8-connected),
  // so it is no hole; with 4-connectivity it would be filled.
  const diagonal = grid([
    "###..",
    "#.#..",
    "##...",
    ".....",
  ]);
  const d = removeSmallRegions(diagonal.mask, diagonal.h, diagonal.w, 2, "holes");
  assert.equal(d.changed, false);
  assert.deepEqual(d.mask, diagonal.mask);
});

Deno.test("remove_small_regions: islands, diagonal neighbours join, largest kept if all small", () => {
  const islands = grid([
    "#.......",
    ".#...###",
    ".....###",
    "#.......",
  ]);
  // Islands: the diagonal pair (2 pixels), the 2x3 block (6), the lone pixel (1).
  const c = connectedComponents8(islands.mask, islands.h, islands.w);
  assert.deepEqual(c.sizes.slice(1).sort(), [1, 2, 6]);
  const r = removeSmallRegions(islands.mask, islands.h, islands.w, 2, "islands");
  assert.equal(r.changed, true);
  assert.deepEqual(show(r.mask, islands.w), [
    "#.......",
    ".#...###",
    ".....###",
    "........",
  ]);
  // All below 10: only the largest stays.
  const all = removeSmallRegions(islands.mask, islands.h, islands.w, 10, "islands");
  assert.deepEqual(show(all.mask, islands.w), [
    "........",
    ".....###",
    ".....###",
    "........",
  ]);
  // A tie goes to the lower label. Labels follow OpenCV's 2x2-block scan (checked against
  // OpenCV 5.0's connectedComponentsWithStats): (1,0) lies in the first block and is label 1,
  // though (0,3) comes first in plain raster order.
  const tie = grid([
    "...#",
    "#...",
  ]);
  assert.deepEqual(Array.from(connectedComponents8(tie.mask, 2, 4).labels), [
    ...[0, 0, 0, 2],
    ...[1, 0, 0, 0],
  ]);
  assert.deepEqual(show(removeSmallRegions(tie.mask, 2, 4, 5, "islands").mask, 4), [
    "....",
    "#...",
  ]);
  // An empty mask has no islands: unchanged.
  assert.equal(removeSmallRegions(new Uint8Array(6), 2, 3, 5, "islands").changed, false);
});
