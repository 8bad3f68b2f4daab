import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  convTranspose2d,
  convTranspose2dGemm,
  packConvTranspose2d,
} from "../../src/kernels/conv_transpose2d.ts";

/** erf in float64 from its Maclaurin series (independent of the kernel's approximation). */
function erf(x: number): number {
  // Beyond 3.5, 1 - |erf| < 7.5e-7: the series would lose digits to cancellation there.
  if (Math.abs(x) >= 3.5) return Math.sign(x) * (1 - 7.43e-7);
  let term = x, sum = x;
  for (let n = 1; n < 80; n++) {
    term *= -x * x / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

/** Plain reference: scatter every input pixel into its 2x2 output block (float64). */
function convTransposeRef(
  x: Float32Array,
  b: number,
  h: number,
  w: number,
  cin: number,
  wt: Float32Array,
  cout: number,
  bias: Float32Array,
  act: boolean,
): Float32Array {
  const y = new Float32Array(b * 4 * h * w * cout);
  for (let n = 0; n < b; n++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        for (let co = 0; co < cout; co++) {
          for (let di = 0; di < 2; di++) {
            for (let dj = 0; dj < 2; dj++) {
              let acc = bias[co];
              for (let ci = 0; ci < cin; ci++) {
                acc += x[((n * h + i) * w + j) * cin + ci] *
                  wt[((ci * cout + co) * 2 + di) * 2 + dj];
              }
              const oy = 2 * i + di, ox = 2 * j + dj;
              y[((n * 2 * h + oy) * 2 * w + ox) * cout + co] = act ? gelu(acc) : acc;
            }
          }
        }
      }
    }
  }
  return y;
}

Deno.test("convTranspose2d 2x2 s2 matches the reference, with and without GELU, batched", async () => {
  const ctx = await getContext();
  for (const [b, h, w, cin, cout] of [[1, 3, 5, 7, 4], [3, 4, 4, 32, 8], [2, 6, 3, 64, 16]]) {
    const x = randomArray(b * h * w * cin, 11 + cin, 2);
    const wt = randomArray(cin * cout * 4, 12 + cin, 0.5);
    const bias = randomArray(cout, 13, 0.5);
    const xt = tensorFrom(ctx, x, [b, h, w, cin]);
    const wtT = tensorFrom(ctx, wt, [cin, cout, 2, 2]);
    const bT = tensorFrom(ctx, bias, [cout]);
    const packed = packConvTranspose2d(ctx, wt, bias, cin, cout);
    for (const act of [false, true]) {
      const activation = act ? "gelu" : "none";
      const ref = convTransposeRef(x, b, h, w, cin, wt, cout, bias, act);
      const gemm = await convTranspose2dGemm(ctx, xt, packed, { activation }).read();
      assertClose(gemm, ref, {
        atol: 2e-5,
        rtol: 1e-5,
        shape: [b, 2 * h, 2 * w, cout],
        label: `convT gemm b${b} ${h}x${w} ${cin}->${cout} gelu=${act}`,
      });
      // Block order: (b, i, j, di, dj, co) holds output pixel (2i + di, 2j + dj).
      const blocks = await convTranspose2dGemm(ctx, xt, packed, {
        activation,
        pixelOrder: "blocks",
      })
        .read();
      for (let n = 0; n < b; n++) {
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) {
            for (let k = 0; k < 4; k++) {
              const src = ((((n * h + i) * w + j) * 4) + k) * cout;
              const oy = 2 * i + (k >> 1), ox = 2 * j + (k & 1);
              const dst = ((n * 2 * h + oy) * 2 * w + ox) * cout;
              assert.deepEqual(blocks.subarray(src, src + cout), gemm.subarray(dst, dst + cout));
            }
          }
        }
      }
      const got = await convTranspose2d(ctx, xt, wtT, bT, { activation }).read();
      // float32 sums of up to 64 products of size ~1: a few ulp of the partial sums.
      assertClose(got, ref, {
        atol: 2e-5,
        rtol: 1e-5,
        shape: [b, 2 * h, 2 * w, cout],
        label: `convT b${b} ${h}x${w} ${cin}->${cout} gelu=${act}`,
      });
    }
  }
});

Deno.test("convTranspose2d refuses a weight that is not [Cin, Cout, 2, 2]", async () => {
  const ctx = await getContext();
  const x = tensorFrom(ctx, new Float32Array(2 * 2 * 4), [2, 2, 4]);
  const w = tensorFrom(ctx, new Float32Array(4 * 3 * 9), [4, 3, 3, 3]);
  const b = tensorFrom(ctx, new Float32Array(3), [3]);
  assert.throws(() => convTranspose2d(ctx, x, w, b), /kernel 2, stride 2/);
});
