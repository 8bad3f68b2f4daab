import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { type Activation, linear } from "../../src/kernels/linear.ts";
import { linearRefAt, samplePairs } from "./core_ref.ts";

interface Case {
  M: number;
  K: number;
  N: number;
  bias: boolean;
  act: Activation;
  residual: boolean;
}

/** Runs one linear on seeded data (weights scaled 1/sqrt(K) like torch's init, so outputs
 * are O(1)) and returns what is needed to check it. */
async function runCase(c: Case, seed: number) {
  const ctx = await getContext();
  const x = randomArray(c.M * c.K, seed);
  const w = randomArray(c.N * c.K, seed + 1, 1 / Math.sqrt(c.K));
  const b = c.bias ? randomArray(c.N, seed + 2) : null;
  const r = c.residual ? randomArray(c.M * c.N, seed + 3) : null;
  const y = linear(
    ctx,
    tensorFrom(ctx, x, [c.M, c.K]),
    tensorFrom(ctx, w, [c.N, c.K]),
    b ? tensorFrom(ctx, b, [c.N]) : null,
    { activation: c.act, residual: r ? tensorFrom(ctx, r, [c.M, c.N]) : undefined },
  );
  assert.deepEqual(y.shape, [c.M, c.N]);
  const got = await y.read();
  y.destroy();
  const ref = (m: number, n: number) => linearRefAt(x, w, b, r, c.act, c.K, c.N, m, n);
  return { got, ref };
}

function describe(c: Case): string {
  return `linear M=${c.M} K=${c.K} N=${c.N}${c.bias ? " bias" : ""}` +
    `${c.act === "none" ? "" : " " + c.act}${c.residual ? " residual" : ""}`;
}

Deno.test("linear: awkward small shapes, every epilogue, full comparison", async () => {
  // Shapes off the 16x64, 64x64 and 128x64 tiles (K step 16) on every side, single row, K=1, N=1, sam-tiny's width 32,
  // head dim 2, exact tiles; K % 4 != 0 takes the scalar-load variants.
  // Tolerance: |gpu - ref| <= 1e-5 + 1e-5 |ref| (K <= 130, O(1) outputs).
  const cases: Case[] = [
    { M: 1, K: 1, N: 1, bias: false, act: "none", residual: false },
    { M: 1, K: 5, N: 3, bias: true, act: "gelu", residual: false },
    { M: 3, K: 2, N: 2, bias: true, act: "none", residual: true },
    { M: 5, K: 1, N: 70, bias: true, act: "relu", residual: false },
    { M: 130, K: 17, N: 1, bias: true, act: "gelu", residual: true },
    { M: 16, K: 32, N: 32, bias: true, act: "gelu", residual: false },
    { M: 16, K: 32, N: 96, bias: true, act: "none", residual: false },
    { M: 70, K: 33, N: 65, bias: false, act: "relu", residual: true },
    { M: 64, K: 64, N: 64, bias: false, act: "none", residual: false },
    { M: 65, K: 130, N: 129, bias: true, act: "gelu", residual: true },
    { M: 127, K: 128, N: 63, bias: true, act: "relu", residual: true },
    // M >= 512 takes the 128x64 tile (8x4 per thread): ragged, scalar and vec4 loads.
    { M: 520, K: 21, N: 70, bias: true, act: "gelu", residual: true },
    { M: 600, K: 24, N: 66, bias: false, act: "none", residual: false },
  ];
  for (const [i, c] of cases.entries()) {
    const { got, ref } = await runCase(c, 100 + 10 * i);
    const want = new Float64Array(c.M * c.N);
    for (let m = 0; m < c.M; m++) for (let n = 0; n < c.N; n++) want[m * c.N + n] = ref(m, n);
    assertClose(got, want, { atol: 1e-5, rtol: 1e-5, shape: [c.M, c.N], label: describe(c) });
  }
});

Deno.test("linear: real SAM shapes at full K and N, 2000 sampled outputs each", async () => {
  // Encoder linears (ViT-B qkv, ViT-L proj, ViT-H MLP) run at 72 rows (two row tiles, the
  // second ragged) to keep llvmpipe time low; the decoder's image-token projection runs at
  // its full 4096 rows. Tolerance |gpu - ref| <= atol + 1e-4 |ref| with atol 1e-4 for
  // K <= 2048 and 3e-4 for K = 5120 (float32 accumulation over K terms), plus NMSE <= 1e-10.
  const cases: (Case & { atol: number })[] = [
    { M: 72, K: 768, N: 2304, bias: true, act: "none", residual: false, atol: 1e-4 },
    { M: 72, K: 1024, N: 1024, bias: true, act: "none", residual: true, atol: 1e-4 },
    { M: 72, K: 1280, N: 5120, bias: true, act: "gelu", residual: false, atol: 1e-4 },
    { M: 72, K: 5120, N: 1280, bias: true, act: "none", residual: true, atol: 3e-4 },
    { M: 7, K: 256, N: 2048, bias: true, act: "relu", residual: false, atol: 1e-4 },
    { M: 7, K: 2048, N: 256, bias: true, act: "none", residual: true, atol: 1e-4 },
    { M: 4096, K: 256, N: 256, bias: true, act: "none", residual: false, atol: 1e-4 },
  ];
  for (const [i, c] of cases.entries()) {
    const { got, ref } = await runCase(c, 500 + 10 * i);
    const pairs = samplePairs(c.M, c.N, 2000, i + 1);
    const g = pairs.map(([m, n]) => got[m * c.N + n]);
    const want = pairs.map(([m, n]) => ref(m, n));
    assertClose(g, want, { atol: c.atol, rtol: 1e-4, nmse: 1e-10, label: describe(c) });
  }
});

Deno.test("linear: variants are cached by name, and bad shapes are refused", async () => {
  const ctx = await getContext();
  const x = tensorFrom(ctx, randomArray(8 * 4, 1), [2, 4, 4]);
  const w = tensorFrom(ctx, randomArray(3 * 4, 2), [3, 4]);
  const b = tensorFrom(ctx, randomArray(3, 3), [3]);
  const y = linear(ctx, x, w, b, { activation: "gelu" });
  assert.deepEqual(y.shape, [2, 4, 3]);
  const before = ctx.pipelineCount;
  linear(ctx, x, w, b, { activation: "gelu" });
  assert.equal(ctx.pipelineCount, before);
  assert.throws(
    () => linear(ctx, x, tensorFrom(ctx, new Float32Array(15), [3, 5]), b),
    /end in K=5/,
  );
  assert.throws(() => linear(ctx, x, w, tensorFrom(ctx, new Float32Array(4), [4])), /bias/);
  assert.throws(
    () => linear(ctx, x, w, b, { residual: emptyTensor(ctx, [2, 4, 4]) }),
    /residual/,
  );
  assert.throws(() => linear(ctx, x, w, b, { out: emptyTensor(ctx, [5]) }), /out has 5/);
  await ctx.sync();
});
