/**
 * The attention variant tests' shared row check: a float64 reference of one output row
 * (softmax(scale q k^T + decomposed rel pos) v) and a runner that compares sampled rows.
 */
import { assertClose, randomArray } from "../util/compare.ts";
import type { GpuContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { attention } from "../../src/kernels/attention.ts";

export interface AttentionCase {
  batch: number;
  heads: number;
  headDim: number;
  nq: number;
  nk: number;
  /** Rel-pos grid (nk = kH * kW). */
  rel?: { kH: number; kW: number };
  scale?: number;
}

/** softmax(scale q k^T + relH[q, kh] + relW[q, kw]) v for one (b, h, query), in float64. */
export function attentionRowRef(
  c: AttentionCase,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  relH: Float32Array | null,
  relW: Float32Array | null,
  b: number,
  h: number,
  n: number,
): number[] {
  const C = c.heads * c.headDim;
  const scale = c.scale ?? 1 / Math.sqrt(c.headDim);
  const s = new Float64Array(c.nk);
  let max = -Infinity;
  for (let j = 0; j < c.nk; j++) {
    let dot = 0;
    for (let d = 0; d < c.headDim; d++) {
      dot += q[(b * c.nq + n) * C + h * c.headDim + d] * k[(b * c.nk + j) * C + h * c.headDim + d];
    }
    dot *= scale;
    if (relH && relW && c.rel) {
      const row = (b * c.heads + h) * c.nq + n;
      const { kH, kW } = c.rel;
      dot += relH[row * kH + Math.floor(j / kW)] + relW[row * kW + (j % kW)];
    }
    s[j] = dot;
    max = Math.max(max, dot);
  }
  let sum = 0;
  for (let j = 0; j < c.nk; j++) sum += s[j] = Math.exp(s[j] - max);
  const out = new Array(c.headDim).fill(0);
  for (let j = 0; j < c.nk; j++) {
    for (let d = 0; d < c.headDim; d++) {
      out[d] += (s[j] / sum) * v[(b * c.nk + j) * C + h * c.headDim + d];
    }
  }
  return out;
}

/**
 * Runs each variant on one case (q, k, v in [-1.5, 1.5], rel-pos factors in [-2, 2]) and
 * compares `rows` sampled (b, h, query) rows, or all, with attentionRowRef.
 */
export async function checkAttentionRows(
  ctx: GpuContext,
  c: AttentionCase,
  variants: string[],
  rows: number | "all",
  seed: number,
  atol = 2e-5,
) {
  const C = c.heads * c.headDim;
  const q = randomArray(c.batch * c.nq * C, seed, 1.5);
  const k = randomArray(c.batch * c.nk * C, seed + 1, 1.5);
  const v = randomArray(c.batch * c.nk * C, seed + 2, 1.5);
  const bh = c.batch * c.heads;
  const relH = c.rel ? randomArray(bh * c.nq * c.rel.kH, seed + 3, 2) : null;
  const relW = c.rel ? randomArray(bh * c.nq * c.rel.kW, seed + 4, 2) : null;
  const view = (data: Float32Array) => ({
    tensor: tensorFrom(ctx, data, [data.length]),
    offset: 0,
    rowStride: C,
  });
  const [qv, kv, vv] = [view(q), view(k), view(v)];
  const relPos = relH && relW && c.rel
    ? {
      relH: tensorFrom(ctx, relH, [bh, c.nq, c.rel.kH]),
      relW: tensorFrom(ctx, relW, [bh, c.nq, c.rel.kW]),
      ...c.rel,
    }
    : undefined;
  // All rows, or the first, the last (in the padded last query block) and a spread.
  const picks: [number, number, number][] = [];
  if (rows === "all") {
    for (let b = 0; b < c.batch; b++) {
      for (let h = 0; h < c.heads; h++) for (let n = 0; n < c.nq; n++) picks.push([b, h, n]);
    }
  } else {
    picks.push([0, 0, 0], [c.batch - 1, c.heads - 1, c.nq - 1]);
    const u = randomArray(3 * rows, seed + 5, 0.5);
    const pick = (x: number, n: number) => Math.min(n - 1, Math.floor((x + 0.5) * n));
    for (let i = 0; i < rows; i++) {
      picks.push([pick(u[3 * i], c.batch), pick(u[3 * i + 1], c.heads), pick(u[3 * i + 2], c.nq)]);
    }
  }
  const want: number[] = [];
  for (const [b, h, n] of picks) want.push(...attentionRowRef(c, q, k, v, relH, relW, b, h, n));
  for (const variant of variants) {
    const out = attention(ctx, qv, kv, vv, c, { relPos, variant, scale: c.scale });
    const all = await out.read();
    out.destroy();
    const got: number[] = [];
    for (const [b, h, n] of picks) {
      const base = (b * c.nq + n) * C + h * c.headDim;
      got.push(...all.subarray(base, base + c.headDim));
    }
    // Convex combinations of values in [-1.5, 1.5] over up to 4096 keys, in float32.
    assertClose(got, want, {
      atol,
      rtol: 1e-5,
      shape: [picks.length, c.headDim],
      label: `${variant} b${c.batch} h${c.heads} d${c.headDim} nq${c.nq} nk${c.nk}` +
        `${c.rel ? ` relpos ${c.rel.kH}x${c.rel.kW}` : ""}${c.scale ? ` scale ${c.scale}` : ""}`,
    });
  }
  for (const t of [qv.tensor, kv.tensor, vv.tensor, relPos?.relH, relPos?.relW]) t?.destroy();
}
