/**
 * im2col against a plain TypeScript unfold, for both input layouts, with stride, padding
 * and sizes that do not divide evenly. im2col only moves values, so results must be exact.
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { type ConvLayout, convOutSize, im2col } from "../../src/kernels/im2col.ts";
import { assertClose, randomArray } from "../util/compare.ts";

/** Reference unfold of a CHW array: [Hout * Wout, Cin * kh * kw], zero padding. */
function im2colRef(
  x: Float32Array,
  cin: number,
  h: number,
  w: number,
  kh: number,
  kw: number,
  stride: number,
  padding: number,
): Float32Array {
  const hout = convOutSize(h, kh, stride, padding), wout = convOutSize(w, kw, stride, padding);
  const cols = cin * kh * kw;
  const out = new Float32Array(hout * wout * cols);
  for (let oy = 0; oy < hout; oy++) {
    for (let ox = 0; ox < wout; ox++) {
      for (let c = 0; c < cin; c++) {
        for (let ky = 0; ky < kh; ky++) {
          for (let kx = 0; kx < kw; kx++) {
            const iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
            const inside = iy >= 0 && ix >= 0 && iy < h && ix < w;
            out[(oy * wout + ox) * cols + (c * kh + ky) * kw + kx] = inside
              ? x[(c * h + iy) * w + ix]
              : 0;
          }
        }
      }
    }
  }
  return out;
}

/** CHW -> HWC. */
function chwToHwc(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) {
    for (let p = 0; p < h * w; p++) out[p * c + k] = x[k * h * w + p];
  }
  return out;
}

const CASES: [string, number, number, number, number, number, number, number][] = [
  // name, cin, h, w, kh, kw, stride, padding
  ["patch embed 16x16/16", 3, 48, 32, 16, 16, 16, 0],
  ["3x3 pad 1", 5, 7, 9, 3, 3, 1, 1],
  ["2x2 stride 2, odd size", 4, 9, 6, 2, 2, 2, 0],
  ["3x2 stride 2 pad 2", 2, 5, 8, 3, 2, 2, 2],
];

Deno.test("im2col equals the CPU unfold for chw and hwc inputs", async () => {
  const ctx = await getContext();
  for (const [name, cin, h, w, kh, kw, stride, padding] of CASES) {
    const x = randomArray(cin * h * w, cin * 100 + h);
    const ref = im2colRef(x, cin, h, w, kh, kw, stride, padding);
    const rows = convOutSize(h, kh, stride, padding) * convOutSize(w, kw, stride, padding);
    for (const layout of ["chw", "hwc"] as ConvLayout[]) {
      const data = layout === "chw" ? x : chwToHwc(x, cin, h, w);
      const shape = layout === "chw" ? [cin, h, w] : [h, w, cin];
      const t = tensorFrom(ctx, data, shape);
      const y = im2col(ctx, t, layout, { kh, kw, stride, padding });
      assert.deepEqual(y.shape, [rows, cin * kh * kw]);
      assertClose(await y.read(), ref, { atol: 0, shape: y.shape, label: `${name} ${layout}` });
      t.destroy();
      y.destroy();
    }
  }
});

Deno.test("im2col accepts a leading batch of 1 and writes into a larger out buffer", async () => {
  const ctx = await getContext();
  const x = randomArray(2 * 4 * 4, 7);
  const out = tensorFrom(ctx, new Float32Array(1000).fill(9), [1000]);
  const y = im2col(ctx, tensorFrom(ctx, x, [1, 2, 4, 4]), "chw", {
    kh: 2,
    kw: 2,
    stride: 2,
    padding: 0,
  }, out);
  assert.deepEqual(y.shape, [4, 8]);
  assertClose(await y.read(), im2colRef(x, 2, 4, 4, 2, 2, 2, 0), { atol: 0, label: "batched" });
});

Deno.test("im2col refuses bad geometry", async () => {
  const ctx = await getContext();
  const t = tensorFrom(ctx, new Float32Array(3 * 4 * 4), [3, 4, 4]);
  const k = { kh: 2, kw: 2, stride: 1, padding: 0 };
  assert.throws(() => im2col(ctx, t, "chw", { ...k, kh: 5 }), /larger than input/);
  assert.throws(() => im2col(ctx, t, "chw", { ...k, stride: 0 }), /stride must be >= 1/);
  assert.throws(() => im2col(ctx, t, "chw", { ...k, padding: -1 }), /padding/);
  assert.throws(() => im2col(ctx, t.reshape([48]), "chw", k), /3-D/);
  const small = tensorFrom(ctx, new Float32Array(4), [4]);
  assert.throws(() => im2col(ctx, t, "chw", k, small), /out has 4 elements/);
});
