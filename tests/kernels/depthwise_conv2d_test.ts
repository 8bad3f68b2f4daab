import { assertClose, randomArray } from "../util/compare.ts";
import { act64 } from "./core_ref.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { depthwiseConv2d } from "../../src/kernels/depthwise_conv2d.ts";
import assert from "node:assert/strict";

const ctx = await getContext();

/** torch's Conv2d(C, C, k, stride, padding, groups=C) on an [H, W, C] map, float64. */
function depthwiseRef(
  x: Float32Array,
  H: number,
  W: number,
  C: number,
  w: Float32Array,
  b: Float32Array,
  k: number,
  stride: number,
  padding: number,
  act: "none" | "gelu",
): Float64Array {
  const Ho = Math.floor((H + 2 * padding - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * padding - k) / stride) + 1;
  const out = new Float64Array(Ho * Wo * C);
  for (let oy = 0; oy < Ho; oy++) {
    for (let ox = 0; ox < Wo; ox++) {
      for (let c = 0; c < C; c++) {
        let s = b[c];
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
            if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
            s += x[(iy * W + ix) * C + c] * w[(c * k + ky) * k + kx];
          }
        }
        out[(oy * Wo + ox) * C + c] = act64(act, s);
      }
    }
  }
  return out;
}

Deno.test("depthwiseConv2d matches torch's grouped conv: strides 1 / 2, odd sizes, vec4 and scalar, GELU", async () => {
  // [H, W, C, k, stride, padding, act]: TinyViT's 3x3 pad 1 at stride 1 (MBConv, local conv)
  // and 2 (PatchMerging), odd sides (stride 2 drops the last column of taps), C % 4 != 0.
  const cases = [
    [9, 7, 8, 3, 1, 1, "gelu"],
    [9, 7, 8, 3, 2, 1, "none"],
    [8, 8, 5, 3, 2, 1, "gelu"],
    [6, 5, 3, 3, 1, 1, "none"],
    [5, 5, 12, 5, 1, 2, "none"],
    [1, 1, 4, 3, 2, 1, "gelu"],
    [32, 32, 64, 3, 2, 1, "gelu"],
  ] as const;
  for (const [H, W, C, k, stride, padding, act] of cases) {
    const x = randomArray(H * W * C, H * 31 + C, 2);
    const w = randomArray(C * k * k, C * 7 + k, 0.5);
    const b = randomArray(C, 99 + C, 0.3);
    const y = depthwiseConv2d(
      ctx,
      tensorFrom(ctx, x, [H, W, C]),
      tensorFrom(ctx, w, [C, 1, k, k]),
      tensorFrom(ctx, b, [C]),
      { stride, padding, activation: act },
    );
    const ref = depthwiseRef(x, H, W, C, w, b, k, stride, padding, act);
    assert.deepEqual(y.shape, [
      Math.floor((H + 2 * padding - k) / stride) + 1,
      Math.floor((W + 2 * padding - k) / stride) + 1,
      C,
    ]);
    assertClose(await y.read(), ref, {
      atol: 2e-6,
      rtol: 2e-6,
      shape: y.shape,
      label: `depthwise ${H}x${W}x${C} k${k} s${stride} ${act}`,
    });
  }
});

Deno.test("depthwiseConv2d refuses bad shapes and aliasing", () => {
  const x = emptyTensor(ctx, [4, 4, 8]);
  const w = emptyTensor(ctx, [8, 1, 3, 3]);
  const b = emptyTensor(ctx, [8]);
  assert.throws(() =>
    depthwiseConv2d(ctx, x, emptyTensor(ctx, [4, 1, 3, 3]), b, {
      stride: 1,
      padding: 1,
    }), /weight must be \[8, 1, k, k\]/);
  assert.throws(
    () => depthwiseConv2d(ctx, x, w, emptyTensor(ctx, [4]), { stride: 1, padding: 1 }),
    /bias has 4/,
  );
  assert.throws(() => depthwiseConv2d(ctx, x, w, b, { stride: 0, padding: 1 }), /stride/);
  assert.throws(() => depthwiseConv2d(ctx, x, w, b, { stride: 1, padding: 1, out: x }), /share/);
  assert.throws(
    () => depthwiseConv2d(ctx, x, w, b, { stride: 2, padding: 1, out: emptyTensor(ctx, [4]) }),
    /out has 4 elements/,
  );
});
