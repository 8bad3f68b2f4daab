/**
 * The K-contiguous-staging GEMM variants of gemm_kstage.ts ("tile64k", "tile128k"; "tile64p",
 * "tile128p" with the next K tile prefetched) against the float64 reference, at sam-mini's
 * encoder shapes (width 128, MLP 512, patch embed K 768; tokens cut from 4096 to a ragged 197
 * rows so lavapipe runs it in seconds) through `linear` with its fused epilogue, at its
 * attention-like batched products through `matmul` ([K, N], transposed and broadcast B), on
 * M, N, K ragged against the tiles, with vec4 and scalar loads, and with f16 operands.
 */
import { checkLinear, checkMatmul, type MatmulCase, matmulRef } from "./gemm_cases.ts";
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom, tensorFromF16 } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { gemmCandidates, matmul } from "../../src/kernels/matmul.ts";
import { KSTAGE_VARIANTS, parseKStageName } from "../../src/kernels/gemm_kstage.ts";
import { linearRefAt } from "./core_ref.ts";

const NAMES = ["tile64k", "tile64p", "tile128k", "tile128p"];
const roundF16 = (x: Float32Array) => Float32Array.from(x, Math.f16round);

Deno.test("gemm kstage: names parse, and are tuning candidates for every M and precision", () => {
  assert.deepEqual(Object.keys(KSTAGE_VARIANTS), NAMES);
  assert.equal(parseKStageName("tile64k")?.prefetch, false);
  assert.equal(parseKStageName("tile64p")?.prefetch, true);
  assert.equal(parseKStageName("tile128p")?.tile.bm, 128);
  assert.equal(parseKStageName("tile64"), null);
  assert.equal(parseKStageName("toString"), null);
  for (const M of [7, 300, 4096]) {
    for (const f16 of [false, true]) {
      // The 128-row tiles only where there are more than 16 rows (as tile128).
      for (const n of NAMES) {
        const want = M > 16 || !n.startsWith("tile128");
        assert.equal(gemmCandidates(M, f16).includes(n), want, `${n} M=${M}`);
      }
    }
  }
});

Deno.test("gemm kstage: linear at sam-mini encoder shapes, fused epilogue, ragged", async () => {
  const ctx = await getContext();
  const cases = [
    { label: "qkv", M: 197, K: 128, N: 384, bias: true, act: "none" as const, residual: false },
    {
      label: "mlp.lin1",
      M: 197,
      K: 128,
      N: 512,
      bias: true,
      act: "gelu" as const,
      residual: false,
    },
    { label: "mlp.lin2", M: 197, K: 512, N: 128, bias: true, act: "none" as const, residual: true },
    { label: "patch", M: 70, K: 768, N: 128, bias: true, act: "none" as const, residual: false },
    // K ragged against the 16-deep tile; then scalar loads (K odd) and N ragged.
    { label: "K%16", M: 65, K: 68, N: 37, bias: true, act: "relu" as const, residual: true },
    { label: "scalar", M: 9, K: 37, N: 70, bias: false, act: "gelu" as const, residual: false },
  ];
  // O(1) outputs, K up to 768 summed in float32 in another order than float64.
  for (const [ci, c] of cases.entries()) {
    await checkLinear(ctx, c, NAMES, { seed: 10 + ci, tol: 2e-5 });
  }
});

const MATMULS: MatmulCase[] = [
  // Window attention of sam-mini (196 tokens, head_dim 64): q @ k^T, then attn @ v.
  { batch: 3, M: 196, K: 64, N: 196, transposeB: true, broadcastB: false },
  { batch: 2, M: 196, K: 196, N: 64, transposeB: false, broadcastB: false },
  { batch: 3, M: 33, K: 20, N: 68, transposeB: false, broadcastB: true }, // b4, N ragged
  { batch: 2, M: 5, K: 7, N: 9, transposeB: false, broadcastB: false }, // scalar
  { batch: 2, M: 70, K: 13, N: 66, transposeB: true, broadcastB: true }, // scalar, nt
];

Deno.test("gemm kstage: batched matmul, [K, N] and transposed B, broadcast", async () => {
  const ctx = await getContext();
  for (const [ci, c] of MATMULS.entries()) {
    await checkMatmul(ctx, c, NAMES, { seed: 50 + ci, tol: 2e-5 });
  }
});

Deno.test("gemm kstage: f16 operands (weights, activations, out), linear and matmul", async () => {
  const ctx = await getContext();
  if (!ctx.gpu.hasF16) {
    console.log(`SKIP: ${ctx.gpu.description} has no shader-f16`);
    return;
  }
  // The reference takes the f16-rounded operands; f16 out adds half an f16 ulp (2^-11 |v|).
  const lin = [
    { M: 197, K: 128, N: 384, act: "gelu" as const, o: true }, // vec4, f16 out
    { M: 9, K: 37, N: 70, act: "none" as const, o: false }, // scalar
  ];
  for (const [ci, c] of lin.entries()) {
    const x = randomArray(c.M * c.K, 70 + ci);
    const w = randomArray(c.N * c.K, 80 + ci, 1 / Math.sqrt(c.K));
    const b = randomArray(c.N, 90 + ci);
    const xs = roundF16(x), ws = roundF16(w);
    const want = new Float64Array(c.M * c.N);
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        want[m * c.N + n] = linearRefAt(xs, ws, b, null, c.act, c.K, c.N, m, n);
      }
    }
    const xt = tensorFromF16(ctx, x, [c.M, c.K]);
    const wt = tensorFromF16(ctx, w, [c.N, c.K]);
    const bt = tensorFrom(ctx, b, [c.N]);
    for (const variant of NAMES) {
      const out = emptyTensor(ctx, [c.M, c.N], "out", c.o ? "f16" : "f32");
      linear(ctx, xt, wt, bt, { activation: c.act, variant, out });
      const got = await out.read();
      out.destroy();
      assertClose(got, want, {
        atol: 2e-5,
        rtol: c.o ? 5e-4 : 2e-5,
        shape: [c.M, c.N],
        label: `linear ${variant} f16aw${c.o ? "o" : ""} M=${c.M} K=${c.K} N=${c.N}`,
      });
    }
    for (const t of [xt, wt, bt]) t.destroy();
  }
  for (const [ci, c] of [MATMULS[1], MATMULS[3], MATMULS[4]].entries()) {
    const bBatch = c.broadcastB ? 1 : c.batch;
    const a = randomArray(c.batch * c.M * c.K, 100 + ci);
    const b = randomArray(bBatch * c.K * c.N, 110 + ci, 1 / Math.sqrt(c.K));
    const want = matmulRef(roundF16(a), roundF16(b), c);
    const at = tensorFromF16(ctx, a, [c.batch, c.M, c.K]);
    const bt = tensorFromF16(ctx, b, c.transposeB ? [bBatch, c.N, c.K] : [bBatch, c.K, c.N]);
    for (const variant of NAMES) {
      const y = matmul(ctx, at, bt, { ...c, variant });
      const got = await y.read();
      y.destroy();
      assertClose(got, want, {
        atol: 2e-5,
        rtol: 2e-5,
        shape: [c.batch, c.M, c.N],
        label: `matmul ${variant} f16ab ${JSON.stringify(c)}`,
      });
    }
    at.destroy();
    bt.destroy();
  }
});
