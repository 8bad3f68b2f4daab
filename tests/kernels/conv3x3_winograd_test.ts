/**
 * conv3x3Winograd (F(4x4, 3x3): input transform, 36 batched GEMMs, output transform) against
 * a float64 direct 3x3 convolution, pad 1, on token-major [s, s, C] inputs: sides that are and
 * are not multiples of the 4-output tile (the overhang and the padding ring read zero), and
 * a neck-like case. Winograd's rounding error scales with the operands, not with the result
 * (the transforms add and subtract terms up to 8x the inputs before the products cancel), so
 * the absolute bound is relative to the largest output: |gpu - ref| <= 1e-5 max|ref| +
 * 1e-4 |ref|. A wrong coefficient or index is off by O(max|ref|).
 */
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import {
  conv3x3Winograd,
  winogradFilter,
  winogradScratch,
} from "../../src/kernels/conv3x3_winograd.ts";
import { winogradInput } from "../../src/kernels/winograd_input.ts";
import { assertClose, randomArray } from "../util/compare.ts";

/** Direct 3x3, pad 1 convolution of hwc x [s, s, C] by w [D, C, 3, 3]; hwc [s, s, D]. */
function conv3x3Ref(x: Float32Array, s: number, C: number, w: Float32Array, D: number) {
  const out = new Float32Array(s * s * D);
  for (let oy = 0; oy < s; oy++) {
    for (let ox = 0; ox < s; ox++) {
      for (let d = 0; d < D; d++) {
        let sum = 0;
        for (let ky = 0; ky < 3; ky++) {
          const iy = oy + ky - 1;
          if (iy < 0 || iy >= s) continue;
          for (let kx = 0; kx < 3; kx++) {
            const ix = ox + kx - 1;
            if (ix < 0 || ix >= s) continue;
            for (let c = 0; c < C; c++) {
              sum += x[(iy * s + ix) * C + c] * w[((d * C + c) * 3 + ky) * 3 + kx];
            }
          }
        }
        out[(oy * s + ox) * D + d] = sum;
      }
    }
  }
  return out;
}

const CASES = [
  { s: 4, C: 4, D: 4 }, // one tile, all of it next to the padding
  { s: 5, C: 8, D: 12 }, // a second tile that is mostly overhang
  { s: 13, C: 12, D: 8 },
  { s: 16, C: 64, D: 32 }, // neck-like channels, whole tiles
];

for (const { s, C, D } of CASES) {
  Deno.test(`conv3x3Winograd: ${s}x${s}, ${C} -> ${D} channels matches a direct conv`, async () => {
    const ctx = await getContext();
    const x = randomArray(s * s * C, 11 + s);
    const w = randomArray(D * C * 9, 29 + C, 0.3);
    const need = winogradScratch(s, C, D);
    const xt = tensorFrom(ctx, x, [s, s, C]);
    const filter = winogradFilter(ctx, w, D, C);
    const scratchV = emptyTensor(ctx, [need.v]);
    const scratchM = emptyTensor(ctx, [need.m]);
    // A pooled out larger than the result: only the first s*s*D elements are the output.
    const out = emptyTensor(ctx, [s * s * D + 16]);
    const y = conv3x3Winograd(ctx, xt, filter, { out, scratchV, scratchM });
    assert.deepEqual(y.shape, [s, s, D]);
    const got = await y.read();
    const ref = conv3x3Ref(x, s, C, w, D);
    const maxAbs = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(got, ref, {
      atol: 1e-5 * maxAbs,
      rtol: 1e-4,
      shape: [s, s, D],
      label: `winograd ${s}x${s}x${C}->${D}`,
    });
    for (const t of [xt, filter, scratchV, scratchM, out]) t.destroy();
  });
}

Deno.test("conv3x3Winograd: refuses channels off vec4, short or shared scratch", async () => {
  const ctx = await getContext();
  const x6 = emptyTensor(ctx, [4, 4, 6]);
  assert.throws(() => winogradInput(ctx, x6, emptyTensor(ctx, [36 * 6])), /C % 4 == 0/);
  const x = emptyTensor(ctx, [8, 8, 4]);
  const filter = winogradFilter(ctx, new Float32Array(4 * 4 * 9), 4, 4);
  const out = emptyTensor(ctx, [8 * 8 * 4]);
  const need = winogradScratch(8, 4, 4);
  const short = emptyTensor(ctx, [need.v - 1]);
  const m = emptyTensor(ctx, [need.m]);
  assert.throws(
    () => conv3x3Winograd(ctx, x, filter, { out, scratchV: short, scratchM: m }),
    /scratch of/,
  );
  const v = emptyTensor(ctx, [need.v]);
  assert.throws(
    () => conv3x3Winograd(ctx, x, filter, { out, scratchV: v, scratchM: v }),
    /different buffers/,
  );
  assert.throws(() => winogradFilter(ctx, new Float32Array(10), 4, 4), /need 4 x 4 x 3 x 3/);
  for (const t of [x6, x, filter, out, short, m, v]) t.destroy();
});
