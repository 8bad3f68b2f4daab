/**
 * Every named GEMM variant (the shared-memory tiles and the register blocks of
 * gemm_register.ts) against the float64 reference, through `linear` ([N, K] weights, fused
 * epilogue) and `matmul` ([K, N] and transposed B, batched, broadcast), on shapes ragged
 * against every block size, with vec4 and scalar loads. The default and tuned choices only
 * pick among these names, so each one must be right on its own.
 */
import { checkLinear, checkMatmul } from "./gemm_cases.ts";
import assert from "node:assert/strict";
import { randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { defaultGemmVariant, gemmCandidates } from "../../src/kernels/matmul.ts";

const variants = [...new Set([...gemmCandidates(4096), ...gemmCandidates(7)])];

Deno.test("gemm variants: linear with every epilogue, ragged shapes, full comparison", async () => {
  const ctx = await getContext();
  // Tolerance |gpu - ref| <= 1e-5 + 1e-5 |ref| (K <= 68, O(1) outputs).
  const cases = [
    { M: 7, K: 68, N: 37, bias: true, act: "relu" as const, residual: false }, // vec4
    { M: 70, K: 13, N: 19, bias: true, act: "gelu" as const, residual: true }, // scalar
    { M: 135, K: 40, N: 9, bias: false, act: "none" as const, residual: true },
  ];
  for (const [ci, c] of cases.entries()) {
    await checkLinear(ctx, c, variants, { seed: 10 + ci, tol: 1e-5 });
  }
});

Deno.test("gemm variants: batched matmul, [K, N] and transposed B, broadcast", async () => {
  const ctx = await getContext();
  const cases = [
    { batch: 2, M: 66, K: 12, N: 20, transposeB: false, broadcastB: false }, // b4 along N
    { batch: 3, M: 5, K: 7, N: 9, transposeB: false, broadcastB: true }, // scalar
    { batch: 2, M: 33, K: 16, N: 70, transposeB: true, broadcastB: false },
  ];
  for (const [ci, c] of cases.entries()) {
    await checkMatmul(ctx, c, variants, { seed: 50 + ci, tol: 1e-5 });
  }
});

Deno.test("gemm variants: defaults per adapter kind, unknown names refused", async () => {
  const ctx = await getContext();
  assert.equal(defaultGemmVariant(false, 7), "tile16");
  assert.equal(defaultGemmVariant(false, 300), "tile64");
  assert.equal(defaultGemmVariant(false, 4096), "tile128");
  assert.match(defaultGemmVariant(true, 4096), /^reg_m/);
  assert.match(defaultGemmVariant(true, 7), /^reg_n/);
  for (const name of [...gemmCandidates(4096), ...gemmCandidates(7)]) {
    assert.ok(variants.includes(name));
  }
  const x = tensorFrom(ctx, randomArray(8, 1), [2, 4]);
  const w = tensorFrom(ctx, randomArray(12, 2), [3, 4]);
  assert.throws(() => linear(ctx, x, w, null, { variant: "tile99" }), /unknown GEMM variant/);
  assert.throws(() => linear(ctx, x, w, null, { variant: "reg_q1x1w1" }), /unknown GEMM variant/);
  await ctx.sync();
});
