import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { mul, scale } from "../../src/kernels/mul.ts";

Deno.test("mul: same shape, broadcast over leading dims, and by a constant", async () => {
  const ctx = await getContext();
  const a = randomArray(6 * 5 * 7, 1);
  const ta = tensorFrom(ctx, a, [6, 5, 7]);
  // float32 products are correctly rounded on both sides: exact (atol 0).
  for (const bShape of [[6, 5, 7], [5, 7], [7], [1]]) {
    const nb = bShape.reduce((p, q) => p * q);
    const b = randomArray(nb, nb);
    const got = await mul(ctx, ta, tensorFrom(ctx, b, bShape)).read();
    const want = a.map((v, i) => Math.fround(v * b[i % nb]));
    assertClose(got, want, { atol: 0, label: `mul by [${bShape}]` });
  }
  assertClose(await mul(ctx, ta, -0.125).read(), a.map((v) => v * -0.125), {
    atol: 0,
    label: "mul number",
  });
  assertClose(await scale(ctx, ta, 3).read(), a.map((v) => Math.fround(v * 3)), {
    atol: 0,
    label: "scale",
  });
  assert.throws(() => mul(ctx, ta, tensorFrom(ctx, new Float32Array(4), [4])), /do not divide/);
});
