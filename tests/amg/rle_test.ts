import assert from "node:assert/strict";
import {
  areaFromRle,
  cocoDecodeRle,
  cocoEncodeRle,
  cocoStringToCounts,
  countsToCocoString,
  maskToRle,
  maskToRleInFrame,
  rleToMask,
  type UncompressedRle,
} from "../../src/amg/rle.ts";
import { uncropMask } from "../../src/amg/utils.ts";
import { loadSamTinyAmg, loadSyntheticAmg } from "./fixture_records.ts";

function randomMask(h: number, w: number, seed: number, density: number): Uint8Array {
  let s = seed >>> 0;
  const m = new Uint8Array(h * w);
  for (let i = 0; i < m.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    m[i] = s / 2 ** 32 < density ? 1 : 0;
  }
  return m;
}

/** Column-major runs written out plainly, as the reference for maskToRle. */
function naiveRle(mask: Uint8Array, h: number, w: number): number[] {
  const counts: number[] = [];
  let value = 0, run = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = mask[y * w + x];
      if (v !== value) {
        counts.push(run);
        value = v;
        run = 0;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

Deno.test("mask to RLE: column-major runs starting with zeros, and back", () => {
  const cases: [number, number, Uint8Array][] = [
    [3, 4, new Uint8Array(12)], // empty: one run of zeros
    [3, 4, new Uint8Array(12).fill(1)], // full: [0, 12]
    [2, 3, Uint8Array.from([1, 0, 0, 1, 1, 0])],
    [17, 23, randomMask(17, 23, 1, 0.5)],
    [1, 40, randomMask(1, 40, 2, 0.3)],
    [40, 1, randomMask(40, 1, 3, 0.7)],
  ];
  for (const [h, w, mask] of cases) {
    const rle = maskToRle(mask, h, w);
    assert.deepEqual(rle.size, [h, w]);
    assert.deepEqual(rle.counts, naiveRle(mask, h, w));
    assert.deepEqual(rleToMask(rle), mask);
    assert.equal(areaFromRle(rle), mask.reduce((a, b) => a + b, 0));
  }
  assert.deepEqual(maskToRle(new Uint8Array(12).fill(1), 3, 4).counts, [0, 12]);
  // [[1,0,0],[1,1,0]] read by columns: 1,1 | 0,1 | 0,0
  assert.deepEqual(maskToRle(Uint8Array.from([1, 0, 0, 1, 1, 0]), 2, 3).counts, [0, 2, 1, 1, 2]);
});

Deno.test("RLE of a crop placed in the image frame equals the RLE of the padded mask", () => {
  const H = 31, W = 27;
  const crops = [[0, 0, 27, 31], [3, 5, 20, 17], [0, 9, 11, 31], [14, 0, 27, 12], [26, 30, 27, 31]];
  crops.forEach((box, i) => {
    const [x0, y0, x1, y1] = box;
    const cw = x1 - x0, ch = y1 - y0;
    const mask = randomMask(ch, cw, 10 + i, 0.6);
    mask[0] = 1; // a set first pixel must not start the image's RLE with ones
    const got = maskToRleInFrame(mask, cw, ch, x0, y0, W, H);
    const ref = maskToRle(uncropMask(mask, box, H, W), H, W);
    assert.deepEqual(got, ref, `crop ${box}`);
  });
  assert.throws(() => maskToRleInFrame(new Uint8Array(4), 2, 2, 26, 0, W, H), /leaves/);
});

Deno.test("COCO compressed string: a hand-worked example", () => {
  // counts [0, 5, 40, 3, 100, 2, 60], a 14 x 15 mask (210 pixels). Each value (from the 4th
  // on, minus the count two places before) goes out in 5-bit groups, low first; a group gets
  // 0x20 when more follow, then +48. Writing stops when the rest is 0 (or -1) and the group's
  // 0x10 bit matches that sign.
  //   0             -> group 0, rest 0                        -> 48      "0"
  //   5             -> group 5, rest 0                        -> 53      "5"
  //   40 = 1*32 + 8 -> group 8 (more: rest 1) -> 8|32 = 40    -> 88      "X"
  //                    group 1, rest 0                        -> 49      "1"
  //   3 - 5 = -2    -> group -2 & 31 = 30, rest -1, 30 has 0x10 -> 78    "N"
  //   100 - 40 = 60 -> group 28, rest 1 (more) -> 28|32 = 60  -> 108     "l"
  //                    group 1, rest 0                        -> 49      "1"
  //     (60 < 64 but still takes two groups: 28 alone would read as negative)
  //   2 - 3 = -1    -> group 31, rest -1, 0x10 set            -> 79      "O"
  //   60 - 100 = -40 -> -40 & 31 = 24, rest -2 (more) -> 24|32 = 56 -> 104 "h"
  //                    group -2 & 31 = 30, rest -1, 0x10 set  -> 78      "N"
  // (pycocotools 2.0.11's frPyObjects gives the same string.)
  const counts = [0, 5, 40, 3, 100, 2, 60];
  assert.equal(countsToCocoString(counts), "05X1Nl1OhN");
  assert.deepEqual(cocoStringToCounts("05X1Nl1OhN"), counts);
  const coco = cocoEncodeRle({ size: [14, 15], counts });
  assert.deepEqual(coco, { size: [14, 15], counts: "05X1Nl1OhN" });
  assert.deepEqual(cocoDecodeRle(coco).counts, counts);
  // Large values and large drops round-trip (several groups, negative deltas).
  const big = [7, 1_000_000, 3, 123_456_789, 0, 5, 2_000_000_000, 1];
  assert.deepEqual(cocoStringToCounts(countsToCocoString(big)), big);
  assert.throws(() => cocoStringToCounts("X"), /ends inside/);
});

async function fixtureRles(): Promise<{ rle: UncompressedRle; area: number; label: string }[]> {
  const out: { rle: UncompressedRle; area: number; label: string }[] = [];
  const tiny = await loadSamTinyAmg();
  tiny.records.forEach((r, i) =>
    out.push({ rle: r.segmentation as UncompressedRle, area: r.area, label: `sam-tiny ${i}` })
  );
  const synthetic = await loadSyntheticAmg("amg-synthetic masks in the COCO RLE round trip");
  if (synthetic) {
    synthetic.records.forEach((r, i) =>
      out.push({ rle: r.segmentation as UncompressedRle, area: r.area, label: `synthetic ${i}` })
    );
  }
  return out;
}

Deno.test("COCO RLE round trip on every fixture mask (sam-tiny and amg-synthetic)", async () => {
  const rles = await fixtureRles();
  assert.ok(rles.length >= 168);
  for (const { rle, area, label } of rles) {
    const coco = cocoEncodeRle(rle);
    assert.equal(typeof coco.counts, "string");
    const back = cocoDecodeRle(coco);
    assert.deepEqual(back, rle, label);
    // Compressed and uncompressed agree on the area and the mask.
    assert.equal(areaFromRle(back), area, label);
    const mask = rleToMask(rle);
    assert.deepEqual(rleToMask(back), mask, label);
    // Re-encoding the decoded mask gives the official counts again.
    assert.deepEqual(maskToRle(mask, rle.size[0], rle.size[1]).counts, rle.counts, label);
  }
});

/**
 * SHA-256 of the compressed strings of every fixture mask (joined by "\n", in file order) as
 * cocoapi's own `rleToString` (common/maskApi.c, compiled from the cocodataset/cocoapi
 * repository and run on these counts once, outside this project) writes them.
 */
const COCOAPI_STRINGS_SHA256 = {
  samTiny: "90cd5e8f2902f242a212ef46116abdf7a7947f57eabf39a6958185289e62ef88",
  synthetic: "b41def507685d4dffbb935e01fd655465d9710336232c4a10a82c081c10e5c07",
};

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("COCO strings of every fixture mask are the ones cocoapi's rleToString writes", async () => {
  const strings = (records: { segmentation: unknown }[]) =>
    records.map((r) => countsToCocoString((r.segmentation as UncompressedRle).counts)).join("\n");
  const tiny = await loadSamTinyAmg();
  assert.equal(await sha256Hex(strings(tiny.records)), COCOAPI_STRINGS_SHA256.samTiny);
  const synthetic = await loadSyntheticAmg("amg-synthetic masks against cocoapi's strings");
  if (synthetic) {
    assert.equal(await sha256Hex(strings(synthetic.records)), COCOAPI_STRINGS_SHA256.synthetic);
  }
});
