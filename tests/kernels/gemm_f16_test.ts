/**
 * The f16 GEMM variants (precision "f16": "_f16w", "_f16wo", "_f16aw", "_f16awo") of every
 * named tile and register block, against the float64 reference, through `linear` (fused
 * epilogue) and `matmul`, on ragged shapes with vec4 and scalar loads.
 *
 * Tolerance. The reference is computed in float64 on the values the GPU actually holds: every
 * operand stored as f16 is rounded to f16 first (Math.f16round, as the upload does). What is
 * left is the kernel's own error:
 * - f32 out: the f32 accumulation, as for the f32 variants: 1e-5 + 1e-5 |ref| (K <= 68, O(1)).
 * - f16 out: that, plus one rounding of the result to f16, at most half an f16 ulp,
 *   2^-11 |v| = 4.9e-4 |v| (f16 has an 11-bit significand): 1e-5 + 5e-4 |ref|.
 * So a wrong load (a misread half, a lost lane, a wrong stride) fails by far, while the
 * rounding the format itself implies does not. What f16 storage costs against f32 weights is
 * measured end to end (tests/encoder/f16_goldens_test.ts), not here.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom, tensorFromF16 } from "../../src/gpu/tensor.ts";
import { linear } from "../../src/kernels/linear.ts";
import { gemmCandidates, gemmKey, matmul } from "../../src/kernels/matmul.ts";
import { linearRefAt } from "./core_ref.ts";
import { defaultVariantFor, parseTuneKey, tuneKey } from "../../src/kernels/tuner.ts";

const variants = [...new Set([...gemmCandidates(4096), ...gemmCandidates(7)])];

const roundF16 = (x: Float32Array) => Float32Array.from(x, Math.f16round);

/** Which operands are f16, as the variant names spell them. */
const COMBOS = [
  { a: false, w: true, o: false }, // f16w: weights only
  { a: false, w: true, o: true }, // f16wo: a linear feeding the next GEMM
  { a: true, w: true, o: false }, // f16aw: the GEMM reading it (residual out, f32)
  { a: true, w: true, o: true },
];
const letters = (c: { a: boolean; w: boolean; o: boolean }) =>
  `f16${c.a ? "a" : ""}${c.w ? "w" : ""}${c.o ? "o" : ""}`;

Deno.test("gemm f16: linear, every variant and f16 operand set, vs float64", async () => {
  const ctx = await getContext();
  if (!ctx.gpu.hasF16) {
    const w = tensorFromF16(ctx, new Float32Array(4), [1, 4]);
    assert.throws(
      () => linear(ctx, tensorFrom(ctx, new Float32Array(4), [1, 4]), w, null),
      /shader-f16/,
    );
    console.log(`SKIP numeric checks: ${ctx.gpu.description} has no shader-f16`);
    return;
  }
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
    const bt = b ? tensorFrom(ctx, b, [c.N]) : null;
    const rt = r ? tensorFrom(ctx, r, [c.M, c.N]) : undefined;
    // Every operand set on the first case; the weights-only and all-f16 sets on the others
    // (each set compiles every variant again: minutes on a CPU adapter).
    for (const combo of ci === 0 ? COMBOS : [COMBOS[0], COMBOS[3]]) {
      const xs = combo.a ? roundF16(x) : x;
      const ws = combo.w ? roundF16(w) : w;
      const want = new Float64Array(c.M * c.N);
      for (let m = 0; m < c.M; m++) {
        for (let n = 0; n < c.N; n++) {
          want[m * c.N + n] = linearRefAt(xs, ws, b, r, c.act, c.K, c.N, m, n);
        }
      }
      const xt = combo.a ? tensorFromF16(ctx, x, [c.M, c.K]) : tensorFrom(ctx, x, [c.M, c.K]);
      const wt = combo.w ? tensorFromF16(ctx, w, [c.N, c.K]) : tensorFrom(ctx, w, [c.N, c.K]);
      for (const variant of variants) {
        const out = emptyTensor(ctx, [c.M, c.N], "out", combo.o ? "f16" : "f32");
        linear(ctx, xt, wt, bt, { activation: c.act, residual: rt, variant, out });
        const got = await out.read();
        out.destroy();
        assertClose(got, want, {
          atol: 1e-5,
          rtol: combo.o ? 5e-4 : 1e-5,
          shape: [c.M, c.N],
          label: `linear ${variant} ${letters(combo)} M=${c.M} K=${c.K} N=${c.N} ${c.act}`,
        });
      }
      xt.destroy();
      wt.destroy();
    }
  }
});

Deno.test("gemm f16: batched matmul with f16 A and B, [K, N] and transposed", async () => {
  const ctx = await getContext();
  if (!ctx.gpu.hasF16) return; // the linear test above checks the error
  const cases = [
    { batch: 2, M: 66, K: 12, N: 20, transposeB: false }, // b4 along N
    { batch: 3, M: 5, K: 7, N: 9, transposeB: false }, // scalar
    { batch: 2, M: 33, K: 16, N: 70, transposeB: true },
  ];
  for (const [ci, c] of cases.entries()) {
    const a = randomArray(c.batch * c.M * c.K, 50 + ci);
    const b = randomArray(c.batch * c.K * c.N, 60 + ci, 1 / Math.sqrt(c.K));
    const ah = roundF16(a), bh = roundF16(b);
    const want = new Float64Array(c.batch * c.M * c.N);
    for (let bi = 0; bi < c.batch; bi++) {
      for (let m = 0; m < c.M; m++) {
        for (let n = 0; n < c.N; n++) {
          let s = 0;
          for (let k = 0; k < c.K; k++) {
            const bv = c.transposeB ? bh[(bi * c.N + n) * c.K + k] : bh[(bi * c.K + k) * c.N + n];
            s += ah[(bi * c.M + m) * c.K + k] * bv;
          }
          want[(bi * c.M + m) * c.N + n] = s;
        }
      }
    }
    const at = tensorFromF16(ctx, a, [c.batch, c.M, c.K]);
    const bShape = c.transposeB ? [c.batch, c.N, c.K] : [c.batch, c.K, c.N];
    const bt = tensorFromF16(ctx, b, bShape);
    for (const variant of variants) {
      for (const outF16 of [false, true]) {
        const out: Tensor = emptyTensor(ctx, [c.batch, c.M, c.N], "out", outF16 ? "f16" : "f32");
        matmul(ctx, at, bt, { transposeB: c.transposeB, variant, out });
        const got = await out.read();
        out.destroy();
        assertClose(got, want, {
          atol: 1e-5,
          rtol: outF16 ? 5e-4 : 1e-5,
          shape: [c.batch, c.M, c.N],
          label: `matmul ${variant} f16ab${outF16 ? "o" : ""} ${JSON.stringify(c)}`,
        });
      }
    }
    at.destroy();
    bt.destroy();
  }
});

Deno.test("gemm f16: variant names and tune keys carry the precision; f32 ones do not", async () => {
  const ctx = await getContext();
  if (!ctx.gpu.hasF16) return;
  const d = { batch: 1, M: 4, N: 8, K: 8, strideA: 0, strideB: 0, strideOut: 0 };
  const base = { bLayout: "nk" as const, vecA: true, vecB: true, bias: false, residual: false };
  assert.equal(gemmKey("nk", d, { ...base, activation: "none" }), "gemm|nk|1x4x8x8");
  assert.equal(
    gemmKey("nk", d, { ...base, activation: "none", bF16: true, outF16: true }),
    "gemm|nk|1x4x8x8|f16wo",
  );
  const before = ctx.pipelineCount;
  const x = tensorFrom(ctx, randomArray(32, 1), [4, 8]);
  const w32 = tensorFrom(ctx, randomArray(64, 2), [8, 8]);
  const w16 = tensorFromF16(ctx, randomArray(64, 2), [8, 8]);
  // Same shape, same variant: one pipeline per precision (cached by name, none shared).
  linear(ctx, x, w32, null, { variant: "tile16" });
  linear(ctx, x, w16, null, { variant: "tile16" });
  linear(ctx, x, w16, null, { variant: "tile16" });
  await ctx.sync();
  assert.ok(ctx.pipelineCount - before <= 2);
  for (const t of [x, w32, w16]) t.destroy();
});

Deno.test("tensorFromF16: half the bytes uploaded, values rounded as Math.f16round", async () => {
  const ctx = await getContext();
  const data = Float32Array.from([1, -2.5, 1 / 3, 65504, 70000, 1e-8, 0.1]);
  const before = ctx.counters.uploadedBytes;
  const t = tensorFromF16(ctx, data, [7]);
  // 7 halves padded to whole words: 16 bytes, against 28 for tensorFrom.
  assert.equal(ctx.counters.uploadedBytes - before, 16);
  assert.equal(t.byteLength, 14);
  const back = await t.read();
  assert.deepEqual([...back], [...data].map(Math.f16round));
  assert.equal(back[4], Infinity); // beyond f16's range, as torch's .half()
  t.destroy();
});

Deno.test("tune: f16 shape keys parse, and every candidate agrees on f16 operands", async () => {
  const ctx = await getContext();
  assert.deepEqual(parseTuneKey("gemm|nk|1x40x24x16|f16wo"), {
    op: "gemm",
    layout: "nk",
    batch: 1,
    M: 40,
    N: 24,
    K: 16,
    f16: { a: false, w: true, o: true },
  });
  assert.equal(parseTuneKey("gemm|nk|1x40x24x16|f16"), null);
  if (!ctx.gpu.hasF16) return;
  for (const key of ["gemm|nk|1x40x24x16|f16wo", "gemm|nk|1x40x24x16|f16aw"]) {
    const results = await tuneKey(ctx, key, defaultVariantFor(ctx, key), { maxRuns: 1, minMs: 1 });
    const bad = results.filter((r) => !r.agrees).map((r) => `${r.variant} (${r.maxDiff})`);
    assert.deepEqual(bad, [], `${key}: candidates disagreeing with the default`);
  }
});
