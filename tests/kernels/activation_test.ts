import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { activation } from "../../src/kernels/activation.ts";
import { erf64, erfc64, gelu64 } from "./core_ref.ts";
import assert from "node:assert/strict";

Deno.test("gelu: exact erf form within 1e-6 of float64 over [-12, 12]", async () => {
  const ctx = await getContext();
  // A dense grid (every erf branch and its joins at |x| = sqrt(2)) plus random values.
  const n = 48001;
  const x = new Float32Array(n + 10000);
  for (let i = 0; i < n; i++) x[i] = -12 + (24 * i) / (n - 1);
  x.set(randomArray(10000, 7, 4), n);
  const got = await activation(ctx, tensorFrom(ctx, x, [x.length]), "gelu").read();
  // Tolerance |gpu - ref| <= 1e-6 (absolute, as asked of the erf GELU) + 2e-7 |ref| (the
  // last-bit rounding of float32 outputs as large as 12).
  assertClose(got, Float64Array.from(x, gelu64), { atol: 1e-6, rtol: 0, label: "gelu" });
  // Relative accuracy where values are tiny (gelu(-12) = -1e-32): |gpu / ref - 1| <= 2e-5.
  // The floor is float32 itself: rounding x / sqrt(2) moves erfc(z) by ~2 z^2 * 6e-8 relative.
  const neg = [...x.keys()].filter((i) => x[i] < 0);
  assertClose(neg.map((i) => got[i] / gelu64(x[i])), neg.map(() => 1), {
    atol: 2e-5,
    label: "gelu(x < 0) relative",
  });
  // Sanity of the float64 reference itself: known erf / erfc values.
  assert.ok(Math.abs(erf64(1) - 0.8427007929497149) < 1e-15);
  assert.ok(Math.abs(erf64(-2.5) + 0.999593047982555) < 1e-15);
  assert.ok(Math.abs(erfc64(3) / 2.209049699858544e-5 - 1) < 1e-13);
  assert.ok(Math.abs(erfc64(6) / 2.151973671249892e-17 - 1) < 1e-13);
});

Deno.test("relu, and gelu on an odd size", async () => {
  const ctx = await getContext();
  const x = randomArray(1001, 3, 3);
  const t = tensorFrom(ctx, x, [7, 11, 13]);
  const relu = await activation(ctx, t, "relu").read();
  assertClose(relu, Float64Array.from(x, (v) => Math.max(v, 0)), { atol: 0, label: "relu" });
  const gelu = activation(ctx, t, "gelu");
  assert.deepEqual(gelu.shape, [7, 11, 13]);
  assertClose(await gelu.read(), Float64Array.from(x, gelu64), {
    atol: 1e-6,
    rtol: 2e-7,
    label: "gelu odd size",
  });
});
