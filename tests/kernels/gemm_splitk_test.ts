/**
 * Split-K GEMM (gemm_splitk.ts) against the float64 reference at the decoder's real shapes,
 * where it is a tuning candidate: the token MLP (7 tokens, 256 -> 2048 -> 256, ReLU), the
 * hypernetwork's batched products, and K not a multiple of the slices (the last slice short,
 * a scalar path). Also: the scratch buffer grows between calls without breaking earlier ones.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { gemmCandidates, matmul } from "../../src/kernels/matmul.ts";
import { parseSplitKName } from "../../src/kernels/gemm_splitk.ts";
import { linearRefAt } from "./core_ref.ts";
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
  for (const [ci, c] of cases.entries()) {
    const x = randomArray(c.M * c.K, 70 + ci);
    const w = randomArray(c.N * c.K, 80 + ci, 1 / Math.sqrt(c.K));
    const b = randomArray(c.N, 90 + ci);
    const r = c.residual ? randomArray(c.M * c.N, 95 + ci) : null;
    const want = new Float64Array(c.M * c.N);
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        want[m * c.N + n] = linearRefAt(x, w, b, r, c.act, c.K, c.N, m, n);
      }
    }
    const xt = tensorFrom(ctx, x, [c.M, c.K]);
    const wt = tensorFrom(ctx, w, [c.N, c.K]);
    const bt = tensorFrom(ctx, b, [c.N]);
    const rt = r ? tensorFrom(ctx, r, [c.M, c.N]) : undefined;
    for (const variant of ["splitk4", "splitk8"]) {
      const y = linear(ctx, xt, wt, bt, { activation: c.act, residual: rt, variant });
      const got = await y.read();
      y.destroy();
      // K up to 2048 with O(1) outputs: float32 sums in another order.
      assertClose(got, want, {
        atol: 2e-5,
        rtol: 2e-5,
        shape: [c.M, c.N],
        label: `linear ${variant} M=${c.M} K=${c.K} N=${c.N} ${c.act}`,
      });
    }
    for (const t of [xt, wt, bt, rt]) t?.destroy();
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
    const a = randomArray(c.batch * c.M * c.K, 100 + ci);
    const b = randomArray(c.batch * c.K * c.N, 110 + ci, 1 / Math.sqrt(c.K));
    const want = new Float64Array(c.batch * c.M * c.N);
    for (let bi = 0; bi < c.batch; bi++) {
      for (let m = 0; m < c.M; m++) {
        for (let n = 0; n < c.N; n++) {
          let s = 0;
          for (let k = 0; k < c.K; k++) {
            const bv = c.transposeB ? b[(bi * c.N + n) * c.K + k] : b[(bi * c.K + k) * c.N + n];
            s += a[(bi * c.M + m) * c.K + k] * bv;
          }
          want[(bi * c.M + m) * c.N + n] = s;
        }
      }
    }
    const at = tensorFrom(ctx, a, [c.batch, c.M, c.K]);
    const bt = tensorFrom(ctx, b, c.transposeB ? [c.batch, c.N, c.K] : [c.batch, c.K, c.N]);
    for (const variant of ["splitk4", "splitk8"]) {
      const y = matmul(ctx, at, bt, { transposeB: c.transposeB, variant });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: 1e-5,
        rtol: 1e-5,
        shape: [c.batch, c.M, c.N],
        label: `matmul ${variant} ${c.batch}x${c.M}x${c.K} @ ${c.N}${c.transposeB ? " nt" : ""}`,
      });
    }
    at.destroy();
    bt.destroy();
  }
});
