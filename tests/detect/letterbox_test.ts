/** Letterbox geometry, pixels and the box round trip, on CPU. */
import assert from "node:assert/strict";
import {
  boxToInput,
  boxToSource,
  letterboxGeometry,
  letterboxImage,
  PAD_VALUE,
  roundHalfEven,
} from "../../src/detect/letterbox.ts";

Deno.test("roundHalfEven is Python's round", () => {
  const inputs = [0.5, 1.5, 2.5, -1.5, 2.4999, 2.5001, 3];
  assert.deepEqual(inputs.map(roundHalfEven), [0, 2, 2, -2, 2, 3, 3]);
});

Deno.test("letterbox geometry: scales up and down, odd padding goes right / bottom", () => {
  const g = (w: number, h: number, W = 640, H = 640) => {
    const lb = letterboxGeometry(w, h, W, H);
    return [lb.resizedWidth, lb.resizedHeight, lb.padLeft, lb.padTop];
  };
  assert.deepEqual(g(1000, 500), [640, 320, 0, 160]);
  assert.deepEqual(g(160, 107), [640, 428, 0, 106]); // upscaled 4x: 428, pad 212 -> 106 / 106
  assert.deepEqual(g(300, 450), [427, 640, 106, 0]); // pad 213 -> 106 left, 107 right
  assert.deepEqual(g(640, 640), [640, 640, 0, 0]);
  assert.deepEqual(g(5000, 1), [640, 1, 0, 319]); // never less than one row
  assert.deepEqual(g(100, 100, 320, 256), [256, 256, 32, 0]); // non-square input
  assert.throws(() => letterboxGeometry(0, 10, 640, 640), /srcWidth must be a positive integer/);
});

Deno.test("letterbox pixels: photo centred, grey 114 around, RGB planes, 0..1", () => {
  // 4 x 2 photo into 8 x 8: r = 2, 8 x 4 at (0, 2). Left half red-ish, right half blue-ish.
  const w = 4, h = 2;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) data.set(x < 2 ? [200, 10, 0] : [0, 10, 250], (y * w + x) * 3);
  }
  const lb = letterboxGeometry(w, h, 8, 8);
  const bytes = letterboxImage({ width: w, height: h, channels: 3, data }, lb, "uint8");
  const at = (c: number, y: number, x: number) => bytes[c * 64 + y * 8 + x];
  for (const y of [0, 1, 6, 7]) {
    for (let x = 0; x < 8; x++) for (let c = 0; c < 3; c++) assert.equal(at(c, y, x), PAD_VALUE);
  }
  // Half-pixel centres: output x 0..2 sample source x <= 0.75 (pure left), 5..7 pure right,
  // x 3 and 4 blend (source 1.25 and 1.75: weights 0.25 / 0.75 of the right colour).
  for (let y = 2; y < 6; y++) {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((x) => at(0, y, x)), [
      200,
      200,
      200,
      150,
      50,
      0,
      0,
      0,
    ]);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((x) => at(1, y, x)), new Array(8).fill(10));
    assert.deepEqual([0, 3, 4, 7].map((x) => at(2, y, x)), [0, 63, 188, 250]); // 62.5 -> 63, 187.5 -> 188
  }
  const floats = letterboxImage({ width: w, height: h, channels: 3, data }, lb, "float32");
  assert.equal(floats[0], Math.fround(PAD_VALUE / 255));
  assert.equal(floats[2 * 8], Math.fround(200 / 255));
  // RGBA input: alpha ignored.
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([...data.subarray(3 * i, 3 * i + 3), 7], 4 * i);
  assert.deepEqual(
    letterboxImage({ width: w, height: h, channels: 4, data: rgba }, lb, "uint8"),
    bytes,
  );
});

Deno.test("boxToSource inverts boxToInput, and clips to the photo", () => {
  const lb = letterboxGeometry(300, 450, 640, 640);
  const box = [12.5, 40, 287, 449];
  const back = boxToSource(boxToInput(box, lb), lb);
  back.forEach((v, k) => assert.ok(Math.abs(v - box[k]) < 1e-9, `${back} vs ${box}`));
  assert.deepEqual(boxToSource([0, -5, 640, 700], lb), [0, 0, 300, 450]);
});
