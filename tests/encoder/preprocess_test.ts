/**
 * Preprocessing against the official SamPredictor.set_image goldens: PIL bilinear resize
 * (bit-exact target: every value within 1 and >= 99.9% exact; we reach 100%), then
 * normalisation and padding (float32, within 1e-5).
 */
import assert from "node:assert/strict";
import {
  decodeImageBytes,
  getPreprocessShape,
  normalizeAndPad,
  preprocessImage,
  resizeBilinearPil,
  resizeLongestSide,
  toRgb8,
} from "../../src/encoder/preprocess.ts";
import type { RgbImage } from "../../src/types.ts";
import { assertClose } from "../util/compare.ts";
import { fixtureDir, loadGolden, skipIfMissing } from "../util/fixtures.ts";

/** Asserts |got - ref| <= 1 everywhere and at least `minExact` of the values equal. */
function assertResizeMatches(got: Uint8Array, ref: Uint8Array, label: string, minExact = 0.999) {
  assert.equal(got.length, ref.length, `${label}: length`);
  let exact = 0, maxDiff = 0, worst = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (d === 0) exact++;
    if (d > maxDiff) [maxDiff, worst] = [d, i];
  }
  const frac = exact / got.length;
  console.log(`${label}: ${(100 * frac).toFixed(4)}% exact, max |diff| ${maxDiff}`);
  assert.ok(maxDiff <= 1, `${label}: max |diff| ${maxDiff} at flat ${worst}`);
  assert.ok(frac >= minExact, `${label}: only ${(100 * frac).toFixed(3)}% exact`);
}

async function photo(dir: URL): Promise<RgbImage> {
  const img = await loadGolden(dir, "input_image.npy"); // (H, W, 3) uint8
  const [height, width] = img.shape;
  return { width, height, channels: 3, data: img.data as Uint8Array };
}

Deno.test("getPreprocessShape rounds half up like ResizeLongestSide", () => {
  assert.deepEqual(getPreprocessShape(107, 160, 256), [171, 256]); // 171.2
  assert.deepEqual(getPreprocessShape(600, 900, 1024), [683, 1024]); // 682.67
  assert.deepEqual(getPreprocessShape(1200, 1800, 1024), [683, 1024]);
  assert.deepEqual(getPreprocessShape(1024, 512, 1024), [1024, 512]);
  assert.deepEqual(getPreprocessShape(3, 2, 1024), [1024, 683]);
  assert.deepEqual(getPreprocessShape(2, 4, 1024), [512, 1024]);
});

Deno.test("sam-tiny: resize, normalise and pad equal resized_image.npy and input_tensor.npy", async () => {
  const dir = fixtureDir("sam-tiny")!;
  const image = await photo(dir);
  const resized = resizeLongestSide(image, 256);
  const ref = await loadGolden(dir, "resized_image.npy");
  assert.deepEqual([resized.height, resized.width, 3], ref.shape);
  assertResizeMatches(resized.data, ref.data as Uint8Array, "sam-tiny resized (160x107 up)");
  const pre = preprocessImage(image, 256);
  const input = await loadGolden(dir, "input_tensor.npy");
  assert.deepEqual(input.shape, [1, 3, 256, 256]);
  assertClose(pre.tensor, input.data as Float32Array, {
    atol: 1e-5,
    shape: input.shape,
    label: "sam-tiny input_tensor",
  });
  assert.deepEqual(pre.originalSize, [107, 160]);
  assert.deepEqual(pre.inputSize, [171, 256]);
});

Deno.test("sam-tiny: image.png decodes to input_image.npy; RGBA input ignores alpha", async () => {
  const dir = fixtureDir("sam-tiny")!;
  const rgb = await photo(dir);
  const decoded = await decodeImageBytes(await Deno.readFile(new URL("image.png", dir)));
  assert.equal(decoded.width, rgb.width);
  assert.equal(decoded.height, rgb.height);
  assert.deepEqual(toRgb8(decoded).data, rgb.data);
  // Same pixels with a varying alpha channel: identical tensor.
  const rgba = new Uint8Array(rgb.width * rgb.height * 4);
  for (let p = 0; p < rgb.width * rgb.height; p++) {
    rgba.set(rgb.data.subarray(3 * p, 3 * p + 3), 4 * p);
    rgba[4 * p + 3] = (p * 37) & 255;
  }
  const a = preprocessImage(rgb, 256).tensor;
  const b = preprocessImage({ ...rgb, channels: 4, data: rgba }, 256).tensor;
  assert.deepEqual(b, a);
});

Deno.test("resizeBilinearPil: identity copies, constant images stay constant, bad sizes throw", () => {
  const src = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => i * 5) };
  const same = resizeBilinearPil(src, 5, 3);
  assert.deepEqual(same.data, src.data);
  assert.notEqual(same.data, src.data, "a copy, not the caller's buffer");
  const flat = { width: 7, height: 4, data: new Uint8Array(84).fill(200) };
  for (const [w, h] of [[3, 2], [20, 9], [7, 1], [1, 13]]) {
    assert.ok(resizeBilinearPil(flat, w, h).data.every((v) => v === 200), `${w}x${h}`);
  }
  assert.throws(() => resizeBilinearPil(flat, 0, 3), /bad output size/);
  assert.throws(
    () => toRgb8({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }),
    /needs 12 bytes/,
  );
  assert.throws(() => normalizeAndPad({ width: 9, height: 2, data: new Uint8Array(54) }, 8));
});

Deno.test("sam-mini: upscale 900x600 and downscale 1800x1200 match PIL; input_tensor matches", async () => {
  const dir = fixtureDir("sam-mini");
  if (skipIfMissing(dir, "sam-mini preprocessing")) return;
  const image = await photo(dir!);
  const up = resizeLongestSide(image, 1024);
  const upRef = await loadGolden(dir!, "resized_image.npy");
  assert.deepEqual([up.height, up.width, 3], upRef.shape);
  assertResizeMatches(up.data, upRef.data as Uint8Array, "sam-mini resized (900x600 up)");

  const big = await decodeImageBytes(await Deno.readFile(new URL("resize_down_input.png", dir!)));
  assert.deepEqual([big.width, big.height], [1800, 1200]);
  const down = resizeLongestSide(big, 1024);
  const downRef = await loadGolden(dir!, "resize_down_resized.npy");
  assert.deepEqual([down.height, down.width, 3], downRef.shape);
  assertResizeMatches(down.data, downRef.data as Uint8Array, "sam-mini resize_down (1800x1200)");

  const input = await loadGolden(dir!, "input_tensor.npy");
  assertClose(preprocessImage(image, 1024).tensor, input.data as Float32Array, {
    atol: 1e-5,
    shape: input.shape,
    label: "sam-mini input_tensor",
  });
});
