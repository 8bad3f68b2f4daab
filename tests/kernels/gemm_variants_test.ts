/**
 * Every named GEMM variant (the shared-memory tiles and the register blocks of
 * gemm_register.ts) against the float64 reference, through `linear` ([N, K] weights, fused
 * epilogue) and `matmul` ([K, N] and transposed B, batched, broadcast), on shapes ragged
 * against every block size, with vec4 and scalar loads. The default and tuned choices only
 * pick among these names, so each one must be right on its own.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { defaultGemmVariant, gemmCandidates, matmul } from "../../src/kernels/matmul.ts";
import { linearRefAt } from "./core_ref.ts";

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
    const x = randomArray(c.M * c.K, 10 + ci);
    const w = randomArray(c.N * c.K, 20 + ci, 1 / Math.sqrt(c.K));
    const b = c.bias ? randomArray(c.N, 30 + ci) : null;
    const r = c.residual ? randomArray(c.M * c.N, 40 + ci) : null;
    const want = new Float64Array(c.M * c.N);
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        want[m * c.N + n] = linearRefAt(x, w, b, r, c.act, c.K, c.N, m, n);
      }
    }
    const xt = tensorFrom(ctx, x, [c.M, c.K]);
    const wt = tensorFrom(ctx, w, [c.N, c.K]);
    const bt = b ? tensorFrom(ctx, b, [c.N]) : null;
    const rt = r ? tensorFrom(ctx, r, [c.M, c.N]) : undefined;
    for (const variant of variants) {
      const y = linear(ctx, xt, wt, bt, { activation: c.act, residual: rt, variant });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: 1e-5,
        rtol: 1e-5,
        shape: [c.M, c.N],
        label: `linear ${variant} M=${c.M} K=${c.K} N=${c.N} ${c.act}`,
      });
    }
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
    const bBatch = c.broadcastB ? 1 : c.batch;
    const a = randomArray(c.batch * c.M * c.K, 50 + ci);
    const b = randomArray(bBatch * c.K * c.N, 60 + ci, 1 / Math.sqrt(c.K));
    const want = new Float64Array(c.batch * c.M * c.N);
    for (let bi = 0; bi < c.batch; bi++) {
      const bb = c.broadcastB ? 0 : bi;
      for (let m = 0; m < c.M; m++) {
        for (let n = 0; n < c.N; n++) {
          let s = 0;
          for (let k = 0; k < c.K; k++) {
            const bv = c.transposeB ? b[(bb * c.N + n) * c.K + k] : b[(bb * c.K + k) * c.N + n];
            s += a[(bi * c.M + m) * c.K + k] * bv;
          }
          want[(bi * c.M + m) * c.N + n] = s;
        }
      }
    }
    const at = tensorFrom(ctx, a, [c.batch, c.M, c.K]);
    const bt = tensorFrom(ctx, b, c.transposeB ? [bBatch, c.N, c.K] : [bBatch, c.K, c.N]);
    for (const variant of variants) {
      const y = matmul(ctx, at, bt, { ...c, variant });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: 1e-5,
        rtol: 1e-5,
        shape: [c.batch, c.M, c.N],
        label: `matmul ${variant} ${c.batch}x${c.M}x${c.K} @ ${c.N}` +
          `${c.transposeB ? " transposeB" : ""}${c.broadcastB ? " broadcastB" : ""}`,
      });
    }
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
