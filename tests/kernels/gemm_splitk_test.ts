/**
 * Split-K GEMM (gemm_splitk.ts) against the float64 reference at the decoder's real shapes,
 * where it is a tuning candidate: the token MLP (7 tokens, 256 -> 2048 -> 256, ReLU), the
 * hypernetwork's batched products, and K not a multiple of the slices (the last slice short,
 * a scalar path). Also: the scratch buffer grows between calls without breaking earlier ones.
 */
import { checkLinear, checkMatmul } from "./gemm_cases.ts";
import assert from "node:assert/strict";
import { getContext } from "../../src/gpu/context.ts";
import { gemmCandidates } from "../../src/kernels/matmul.ts";
import { parseSplitKName } from "../../src/kernels/gemm_splitk.ts";
import { attentionCandidates } from "../../src/kernels/attention.ts";
import { candidatesFor, parseTuneKey } from "../../src/kernels/tuner.ts";

Deno.test("gemm split-K: names, and offered for few rows only", () => {
  assert.equal(parseSplitKName("splitk4"), 4);
  assert.equal(parseSplitKName("splitk8"), 8);
  assert.equal(parseSplitKName("splitk3"), null);
  assert.ok(gemmCandidates(7).includes("splitk8"));
  assert.ok(!gemmCandidates(4096).includes("splitk4"));
  // f32 passes only: f16 shapes are never tuned to split-K / split-KV (and a hand-named one
  // runs tiled: gemm_f16_test.ts runs every name).
  assert.ok(!gemmCandidates(7, true).some((n) => n.startsWith("splitk")));
  assert.ok(attentionCandidates(false).includes("splitkv4"));
  assert.ok(!attentionCandidates(true).some((n) => n.startsWith("splitkv")));
  assert.deepEqual(
    candidatesFor(parseTuneKey("gemm|nk|1x7x256x2048|f16awo")!),
    gemmCandidates(7, true),
  );
});

Deno.test("gemm split-K: linear at the decoder MLP's shapes (fused bias + ReLU, residual)", async () => {
  const ctx = await getContext();
  const cases = [
    { M: 7, K: 256, N: 2048, act: "relu" as const, residual: false },
    { M: 7, K: 2048, N: 256, act: "none" as const, residual: true },
    { M: 5, K: 37, N: 30, act: "gelu" as const, residual: false }, // scalar, short last slice
  ];
  // K up to 2048 with O(1) outputs: float32 sums in another order.
  for (const [ci, c] of cases.entries()) {
    await checkLinear(ctx, { ...c, bias: true }, ["splitk4", "splitk8"], {
      seed: 70 + ci,
      tol: 2e-5,
    });
  }
});

Deno.test("gemm split-K: batched matmul, [K, N] and transposed B (hypernetwork-like)", async () => {
  const ctx = await getContext();
  const cases = [
    { batch: 4, M: 1, K: 32, N: 4096, transposeB: false }, // masks = hyper_in @ upscaled
    { batch: 3, M: 9, K: 130, N: 24, transposeB: true },
    { batch: 2, M: 6, K: 19, N: 7, transposeB: false }, // scalar B rows
  ];
  for (const [ci, c] of cases.entries()) {
    await checkMatmul(ctx, c, ["splitk4", "splitk8"], { seed: 100 + ci, tol: 1e-5 });
  }
});
