import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { stridedCopy } from "../../src/kernels/strided_copy.ts";

/** Plain reference: walk the output in row-major order, reading the strided input. */
function stridedRef(x: Float32Array, offset: number, shape: number[], strides: number[]) {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const idx = new Array(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let src = offset;
    for (let k = 0; k < shape.length; k++) src += idx[k] * strides[k];
    out[i] = x[src];
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

Deno.test("stridedCopy: slice, permute and broadcast views match the reference", async () => {
  const ctx = await getContext();
  const B = 3, T = 9, C = 20;
  const x = randomArray(B * T * C, 7);
  const t = tensorFrom(ctx, x, [B, T, C]);
  const cases: [string, number, number[], number[]][] = [
    // mask tokens 1..4 of every prompt, token-major: (4, B, C)
    ["tokens (4,B,C)", C, [4, B, C], [C, T * C, 1]],
    // first token of each prompt: (B, C)
    ["iou token (B,C)", 0, [B, C], [T * C, 1]],
    // whole tensor repeated twice with stride 0: (2, B*T*C)
    ["broadcast", 0, [2, B * T * C], [0, 1]],
    // transpose of the last two dims: (B, C, T)
    ["transpose", 0, [B, C, T], [T * C, 1, C]],
    ["single element", 5, [1], [1]],
  ];
  for (const [label, offset, shape, strides] of cases) {
    const got = await stridedCopy(ctx, t, { offset, shape, strides }).read();
    assertClose(got, stridedRef(x, offset, shape, strides), { atol: 0, label });
  }
});

Deno.test("stridedCopy refuses a view that runs past the tensor", async () => {
  const ctx = await getContext();
  const t = tensorFrom(ctx, new Float32Array(10), [10]);
  assert.throws(() => stridedCopy(ctx, t, { offset: 5, shape: [6], strides: [1] }), /reaches/);
});
