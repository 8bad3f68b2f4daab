import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { layerNorm2d } from "../../src/kernels/layer_norm_2d.ts";

/** The official LayerNorm2d in float64 on NCHW. */
function layerNorm2dRef(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  [B, C, H, W]: number[],
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length), hw = H * W;
  for (let bi = 0; bi < B; bi++) {
    for (let p = 0; p < hw; p++) {
      const at = (c: number) => (bi * C + c) * hw + p;
      let s = 0;
      for (let c = 0; c < C; c++) s += x[at(c)];
      const u = s / C;
      let q = 0;
      for (let c = 0; c < C; c++) q += (x[at(c)] - u) ** 2;
      const sd = Math.sqrt(q / C + eps);
      for (let c = 0; c < C; c++) out[at(c)] = w[c] * ((x[at(c)] - u) / sd) + b[c];
    }
  }
  return out;
}

Deno.test("layerNorm2d matches the official NCHW LayerNorm2d", async () => {
  const ctx = await getContext();
  // [shape, offset]: tiny, a batch of 2 with odd H x W, the SAM neck (1, 256, 64, 64) with a
  // large mean (two-pass variance). Tolerance |gpu - ref| <= 2e-5 + 1e-5 |ref|.
  const cases: [number[], number][] = [[[1, 1, 1, 1], 0], [[2, 5, 3, 7], 0], [
    [1, 256, 64, 64],
    50,
  ]];
  for (const [i, [shape, offset]] of cases.entries()) {
    const C = shape[1];
    const n = shape.reduce((p, q) => p * q);
    const x = randomArray(n, 20 + i).map((v) => v + offset);
    const w = randomArray(C, 30 + i), b = randomArray(C, 40 + i);
    const y = layerNorm2d(
      ctx,
      tensorFrom(ctx, x, shape),
      tensorFrom(ctx, w, [C]),
      tensorFrom(ctx, b, [C]),
      1e-6,
    );
    assertClose(await y.read(), layerNorm2dRef(x, w, b, shape, 1e-6), {
      atol: 2e-5,
      rtol: 1e-5,
      shape,
      label: `layerNorm2d [${shape}] offset ${offset}`,
    });
  }
  assert.throws(
    () =>
      layerNorm2d(
        ctx,
        emptyTensor(ctx, [4, 4]),
        emptyTensor(ctx, [4]),
        emptyTensor(ctx, [4]),
        1e-6,
      ),
    /\[B, C, H, W\]/,
  );
});
