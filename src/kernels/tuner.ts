/**
 * Times every candidate variant of a tunable shape on this adapter and picks the fastest.
 *
 * A shape is a tune key (see matmul.ts `gemmKey`, attention.ts `attentionKey`); it holds all
 * the sizes, so the inputs are made here (random, the shape's real sizes) rather than taken
 * from a model. GPU time comes from timestamp queries where the adapter has them, else wall
 * time around a sync (which on Deno's WebGPU includes a poll of up to ~10 ms, small beside a
 * software adapter's kernels).
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom, tensorFromF16 } from "../gpu/tensor.ts";
import { attention, attentionCandidates, defaultAttentionVariant } from "./attention.ts";
import { linear } from "./linear.ts";
import { defaultGemmVariant, gemmCandidates, matmul } from "./matmul.ts";

/** One timed candidate. */
export interface TuneResult {
  key: string;
  variant: string;
  ms: number;
  gflops: number;
  /** Its output agreed with the default variant's on the same inputs (else never picked). */
  agrees: boolean;
  /** Largest |candidate - default| over the output. */
  maxDiff: number;
}

/** A key's sizes, as the tuner needs them. */
type Parsed =
  | {
    op: "gemm";
    layout: "nk" | "kn";
    batch: number;
    M: number;
    N: number;
    K: number;
    /** f16 operands (precision "f16" keys end in "|f16awo"-style letters). */
    f16?: { a: boolean; w: boolean; o: boolean };
  }
  | {
    op: "attention";
    bh: number;
    nq: number;
    nk: number;
    d: number;
    kH: number;
    kW: number;
    /** q, k, v / out stored as f16 ("|f16qkv", "|f16qkvo", "|f16o" keys). */
    half?: boolean;
    halfOut?: boolean;
  };

/** Reads a tune key back into sizes; null for a key this tuner does not know. */
export function parseTuneKey(key: string): Parsed | null {
  let m = /^gemm\|(nk|kn)\|(\d+)x(\d+)x(\d+)x(\d+)(?:\|f16(a?)(w?)(o?))?$/.exec(key);
  if (m) {
    const [batch, M, N, K] = m.slice(2, 6).map(Number);
    const f16 = m[6] || m[7] || m[8] ? { a: !!m[6], w: !!m[7], o: !!m[8] } : undefined;
    if (f16 === undefined && key.includes("|f16")) return null; // "|f16" with no operand
    return { op: "gemm", layout: m[1] as "nk" | "kn", batch, M, N, K, ...(f16 ? { f16 } : {}) };
  }
  m = /^attention\|(\d+)x(\d+)x(\d+)x(\d+)(?:\|relpos(\d+)x(\d+))?(?:\|f16(qkv)?(o)?)?$/
    .exec(key);
  if (m) {
    const [bh, nq, nk, d] = m.slice(1, 5).map(Number);
    if (key.endsWith("|f16")) return null; // "|f16" with no operand
    const rel = { kH: Number(m[5] ?? 0), kW: Number(m[6] ?? 0) };
    const f16 = { ...(m[7] ? { half: true } : {}), ...(m[8] ? { halfOut: true } : {}) };
    return { op: "attention", bh, nq, nk, d, ...rel, ...f16 };
  }
  return null;
}

/** Floating-point operations of one run of a shape. */
export function tuneKeyFlops(p: Parsed): number {
  return p.op === "gemm" ? 2 * p.batch * p.M * p.N * p.K : 4 * p.bh * p.nq * p.nk * p.d;
}

/** Variants worth timing for a shape (`subgroups`: the device has them). */
export function candidatesFor(p: Parsed, subgroups = false): string[] {
  return p.op === "gemm"
    ? gemmCandidates(p.M, p.f16 !== undefined)
    : attentionCandidates(p.half === true || p.halfOut === true, subgroups);
}

function random(ctx: GpuContext, shape: number[], seed: number, f16 = false): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return f16 ? tensorFromF16(ctx, data, shape) : tensorFrom(ctx, data, shape);
}

/** Inputs for a shape and a function recording one run of `variant` into `ctx`. */
function makeRunner(ctx: GpuContext, p: Parsed): {
  run: (variant: string) => void;
  output: Tensor;
  dispose: () => void;
} {
  if (p.op === "gemm") {
    const a = random(ctx, [p.batch, p.M, p.K], 1, p.f16?.a);
    const bShape = p.layout === "nk" ? [p.batch, p.N, p.K] : [p.batch, p.K, p.N];
    const b = random(ctx, bShape, 2, p.f16?.w);
    const out = emptyTensor(ctx, [p.batch, p.M, p.N], "tune.out", p.f16?.o ? "f16" : "f32");
    const weight = p.batch === 1 && p.layout === "nk" ? b.reshape([p.N, p.K]) : null;
    return {
      run: (variant) => {
        if (weight) linear(ctx, a.reshape([p.M, p.K]), weight, null, { out, variant });
        else matmul(ctx, a, b, { transposeB: p.layout === "nk", out, variant });
      },
      output: out,
      dispose: () => [a, b, out].forEach((t) => t.destroy()),
    };
  }
  const q = random(ctx, [p.bh, p.nq, p.d], 3, p.half);
  const k = random(ctx, [p.bh, p.nk, p.d], 4, p.half);
  const v = random(ctx, [p.bh, p.nk, p.d], 5, p.half);
  const rel = p.kH > 0
    ? {
      relH: random(ctx, [p.bh, p.nq, p.kH], 6),
      relW: random(ctx, [p.bh, p.nq, p.kW], 7),
      kH: p.kH,
      kW: p.kW,
    }
    : undefined;
  const out = emptyTensor(ctx, [p.bh, p.nq, p.d], "tune.out", p.halfOut ? "f16" : "f32");
  const view = (t: Tensor) => ({ tensor: t, offset: 0, rowStride: p.d });
  const dims = { batch: p.bh, heads: 1, headDim: p.d, nq: p.nq, nk: p.nk };
  return {
    run: (variant) =>
      attention(ctx, view(q), view(k), view(v), dims, { relPos: rel, out, variant }),
    output: out,
    dispose: () => [q, k, v, out, rel?.relH, rel?.relW].forEach((t) => t?.destroy()),
  };
}

/** Milliseconds of one run: GPU time where the adapter has timestamps, else wall time. */
async function timeRun(ctx: GpuContext, run: () => void): Promise<number> {
  if (ctx.gpu.hasTimestamps) {
    const ms = await ctx.timeGpu(run);
    if (ms !== null) return ms;
  }
  const t0 = performance.now();
  run();
  await ctx.sync();
  return performance.now() - t0;
}

/** Largest absolute difference, and whether every element is within
 * 1e-4 * (1 + max |ref|) + 1e-4 |ref| of the reference (float32 sums in another order); for
 * an f16 output, plus 2^-10 |ref| (sums in another order may round to neighbouring halves). */
function compareOutputs(
  got: Float32Array,
  ref: Float32Array,
  f16Out = false,
): { agrees: boolean; maxDiff: number } {
  const rtol = f16Out ? 1e-4 + 2 ** -10 : 1e-4;
  let scale = 0;
  for (const r of ref) scale = Math.max(scale, Math.abs(r));
  let maxDiff = 0;
  let agrees = true;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= 1e-4 * (1 + scale) + rtol * Math.abs(ref[i]))) agrees = false;
    if (!(d <= maxDiff)) maxDiff = d; // NaN propagates into maxDiff
  }
  return { agrees, maxDiff };
}

export interface TuneOptions {
  /** Stop repeating a candidate once its runs add up to this many ms (default 200). */
  minMs?: number;
  /** Most timed runs of one candidate (default 10). */
  maxRuns?: number;
  /** Called after each candidate, for progress. */
  onResult?: (r: TuneResult) => void;
}

/**
 * Checks each candidate of `key` against the default variant's output on the same inputs,
 * then times those that agree (one warm-up run, then runs until `minMs`) and returns the
 * results, fastest first (median of the timed runs); a candidate that disagrees is listed
 * last with `agrees: false` and is never picked, so a miscompiled variant cannot win.
 */
export async function tuneKey(
  ctx: GpuContext,
  key: string,
  defaultVariant: string,
  opts: TuneOptions = {},
): Promise<TuneResult[]> {
  const p = parseTuneKey(key);
  if (!p) throw new Error(`tune: unknown shape key "${key}"`);
  const flops = tuneKeyFlops(p);
  const { run, output, dispose } = makeRunner(ctx, p);
  const results: TuneResult[] = [];
  try {
    run(defaultVariant);
    const reference = await output.read();
    for (const variant of candidatesFor(p, ctx.gpu.hasSubgroups)) {
      const once = () => run(variant);
      await timeRun(ctx, once); // compile + warm up
      const { agrees, maxDiff } = compareOutputs(
        await output.read(),
        reference,
        output.dtype === "f16",
      );
      const times: number[] = [];
      let total = 0;
      while (agrees && times.length < (opts.maxRuns ?? 10) && total < (opts.minMs ?? 200)) {
        const ms = await timeRun(ctx, once);
        times.push(ms);
        total += ms;
      }
      times.sort((a, b) => a - b);
      const ms = agrees ? times[Math.floor(times.length / 2)] : Infinity;
      const r = { key, variant, ms, gflops: flops / ms / 1e6, agrees, maxDiff };
      results.push(r);
      opts.onResult?.(r);
    }
  } finally {
    await ctx.sync();
    dispose();
  }
  return results.sort((a, b) => a.ms - b.ms);
}

/** The default variant of a shape on this adapter (what runs without a tune cache). */
export function defaultVariantFor(ctx: GpuContext, key: string): string {
  const p = parseTuneKey(key);
  if (!p) throw new Error(`tune: unknown shape key "${key}"`);
  return p.op === "gemm"
    ? defaultGemmVariant(ctx.gpu.software, p.M)
    // vec4 access as far as the key tells (a head dim of 4k; offsets and strides are the views').
    : defaultAttentionVariant(ctx.gpu.software, p.d % 4 === 0);
}
