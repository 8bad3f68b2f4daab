import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { softmax } from "../../src/kernels/softmax.ts";

function softmaxRef(x: Float32Array, L: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / L; r++) {
    let m = -Infinity;
    for (let c = 0; c < L; c++) m = Math.max(m, x[r * L + c]);
    let s = 0;
    for (let c = 0; c < L; c++) s += Math.exp(x[r * L + c] - m);
    for (let c = 0; c < L; c++) out[r * L + c] = Math.exp(x[r * L + c] - m) / s;
  }
  return out;
}

Deno.test("softmax matches float64 on short, long and huge-valued rows", async () => {
  const ctx = await getContext();
  // [rows, L, scale]: single element, narrow rows (32 threads/row, ragged 8-row groups),
  // decoder token rows, window-attention rows (196), the 256-thread rows (1025, 4096 keys);
  // scale 80 makes exp overflow without the max shift.
  // Tolerance |gpu - ref| <= 1e-7 + 1e-5 |ref|.
  for (
    const [rows, L, scale] of [[1, 1, 1], [9, 7, 5], [13, 128, 80], [7, 4096, 10], [3, 1025, 1], [
      17,
      196,
      3,
    ]]
  ) {
    const x = randomArray(rows * L, rows * L, scale);
    const got = await softmax(ctx, tensorFrom(ctx, x, [rows, L])).read();
    assertClose(got, softmaxRef(x, L), {
      atol: 1e-7,
      rtol: 1e-5,
      shape: [rows, L],
      label: `softmax ${rows}x${L} scale ${scale}`,
    });
  }
  const x = tensorFrom(ctx, new Float32Array(6), [2, 3]);
  assert.throws(() => softmax(ctx, x, tensorFrom(ctx, new Float32Array(5), [5])), /out has 5/);
});
