import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  attention,
  ATTENTION_CANDIDATES,
  type AttentionDims,
  type HeadsView,
} from "../../src/kernels/attention.ts";
import assert from "node:assert/strict";

const ctx = await getContext();

// ---- Plain-TypeScript reference (float64 accumulation), one query row at a time so big
// shapes can be checked on sampled rows. ----

/** Host copy of a HeadsView: (b, n, h, d) at offset + (b*tokens + n)*rowStride + h*headDim + d. */
interface HostView {
  data: Float32Array;
  offset: number;
  rowStride: number;
}

/** Host rel-pos bias: relH [batch*heads, nq, kH], relW [batch*heads, nq, kW]. */
interface HostRelPos {
  relH: Float32Array;
  relW: Float32Array;
  kH: number;
  kW: number;
}

function at(v: HostView, dims: AttentionDims, tokens: number, b: number, n: number, h: number) {
  return v.offset + (b * tokens + n) * v.rowStride + h * dims.headDim;
}

/** One output row out[b, n, h*D : (h+1)*D] (length headDim), two passes over the keys. */
function attentionRowRef(
  q: HostView,
  k: HostView,
  v: HostView,
  dims: AttentionDims,
  scale: number,
  rel: HostRelPos | null,
  b: number,
  h: number,
  n: number,
): Float64Array {
  const { headDim: D, nq, nk } = dims;
  const qBase = at(q, dims, nq, b, n, h);
  const scores = new Float64Array(nk);
  const bh = b * dims.heads + h;
  for (let j = 0; j < nk; j++) {
    const kBase = at(k, dims, nk, b, j, h);
    let s = 0;
    for (let d = 0; d < D; d++) s += q.data[qBase + d] * k.data[kBase + d];
    s *= scale;
    if (rel) {
      const row = bh * nq + n;
      s += rel.relH[row * rel.kH + Math.floor(j / rel.kW)] + rel.relW[row * rel.kW + j % rel.kW];
    }
    scores[j] = s;
  }
  let max = -Infinity;
  for (const s of scores) max = Math.max(max, s);
  let sum = 0;
  for (let j = 0; j < nk; j++) {
    scores[j] = Math.exp(scores[j] - max);
    sum += scores[j];
  }
  const out = new Float64Array(D);
  for (let j = 0; j < nk; j++) {
    const vBase = at(v, dims, nk, b, j, h);
    const p = scores[j] / sum;
    for (let d = 0; d < D; d++) out[d] += p * v.data[vBase + d];
  }
  return out;
}

/** The full output [batch, nq, heads*headDim] by the row reference. */
function attentionRef(
  q: HostView,
  k: HostView,
  v: HostView,
  dims: AttentionDims,
  scale: number,
  rel: HostRelPos | null = null,
): Float64Array {
  const { batch, heads, headDim: D, nq } = dims;
  const out = new Float64Array(batch * nq * heads * D);
  for (let b = 0; b < batch; b++) {
    for (let n = 0; n < nq; n++) {
      for (let h = 0; h < heads; h++) {
        out.set(
          attentionRowRef(q, k, v, dims, scale, rel, b, h, n),
          ((b * nq + n) * heads + h) * D,
        );
      }
    }
  }
  return out;
}

interface Case extends AttentionDims {
  /** Pack q, k, v into one [batch, tokens, 3*C] buffer (needs nq == nk), like SAM's qkv linear. */
  fused?: boolean;
  /** Extra elements before the view and at the end of each row (awkward offsets/strides). */
  pad?: number;
  rel?: { kH: number; kW: number };
  scale?: number;
}

interface Built {
  views: { q: HeadsView; k: HeadsView; v: HeadsView };
  host: { q: HostView; k: HostView; v: HostView };
  rel: HostRelPos | null;
  scale: number;
}

/** Random inputs for a case, as GPU views and their host mirrors. */
function build(c: Case, seed: number): Built {
  const { batch, heads, headDim, nq, nk } = c;
  const C = heads * headDim;
  const pad = c.pad ?? 0;
  const hostTensor = (tokens: number, stride: number, offset: number, s: number) => {
    const data = randomArray(offset + batch * tokens * stride, s, 1.5);
    const tensor = tensorFrom(ctx, data, [data.length]);
    return { tensor, data, offset, rowStride: stride };
  };
  let q, k, v;
  if (c.fused) {
    assert.equal(nq, nk);
    const stride = 3 * C + pad;
    const all = hostTensor(nq, stride, pad, seed);
    q = { ...all, offset: pad };
    k = { ...all, offset: pad + C };
    v = { ...all, offset: pad + 2 * C };
  } else {
    q = hostTensor(nq, C + pad, pad, seed);
    k = hostTensor(nk, C + pad, pad, seed + 1);
    v = hostTensor(nk, C + pad, pad, seed + 2);
  }
  let rel: HostRelPos | null = null;
  if (c.rel) {
    rel = {
      relH: randomArray(batch * heads * nq * c.rel.kH, seed + 3, 2),
      relW: randomArray(batch * heads * nq * c.rel.kW, seed + 4, 2),
      ...c.rel,
    };
  }
  const view = (x: typeof q) => ({ tensor: x.tensor, offset: x.offset, rowStride: x.rowStride });
  return {
    views: { q: view(q), k: view(k), v: view(v) },
    host: { q, k, v },
    rel,
    scale: c.scale ?? 1 / Math.sqrt(headDim),
  };
}

function run(c: Case, b: Built, variant?: string) {
  const relPos = b.rel
    ? {
      relH: tensorFrom(ctx, b.rel.relH, [c.batch * c.heads, c.nq, b.rel.kH]),
      relW: tensorFrom(ctx, b.rel.relW, [c.batch * c.heads, c.nq, b.rel.kW]),
      kH: b.rel.kH,
      kW: b.rel.kW,
    }
    : undefined;
  return attention(ctx, b.views.q, b.views.k, b.views.v, c, { scale: c.scale, relPos, variant });
}

function label(c: Case): string {
  return `attention b${c.batch} h${c.heads} d${c.headDim} nq${c.nq} nk${c.nk}` +
    `${c.fused ? " fused" : ""}${c.pad ? ` pad${c.pad}` : ""}${c.rel ? " relpos" : ""}`;
}

// Outputs are convex combinations of v values in [-1.5, 1.5]; float32 online softmax over up
// to 4096 keys keeps errors near 1e-6, so 2e-5 absolute is tight yet safe.
const ATOL = 2e-5;

Deno.test("attention: tiny and awkward shapes match the float64 reference", async () => {
  const cases: Case[] = [
    { batch: 1, heads: 1, headDim: 2, nq: 1, nk: 1 },
    { batch: 1, heads: 1, headDim: 1, nq: 3, nk: 2 },
    { batch: 2, heads: 3, headDim: 5, nq: 33, nk: 17, pad: 3 },
    { batch: 1, heads: 2, headDim: 80, nq: 40, nk: 70, pad: 1 },
    { batch: 1, heads: 2, headDim: 80, nq: 40, nk: 70 }, // vec4 path, partial last column
    { batch: 2, heads: 1, headDim: 36, nq: 8, nk: 8 }, // one query block, one key tile
    { batch: 3, heads: 1, headDim: 128, nq: 5, nk: 35 },
    { batch: 1, heads: 2, headDim: 33, nq: 65, nk: 65, fused: true, pad: 2 },
    { batch: 2, heads: 4, headDim: 64, nq: 31, nk: 31, fused: true },
    { batch: 1, heads: 8, headDim: 2, nq: 9, nk: 100, scale: 0.3 },
    // The decoder kernels: few keys (scalar and vec4), few queries with keys past 64 threads.
    { batch: 2, heads: 3, headDim: 5, nq: 70, nk: 3, pad: 1 },
    { batch: 1, heads: 2, headDim: 32, nq: 65, nk: 8 },
    { batch: 2, heads: 2, headDim: 12, nq: 8, nk: 130 },
    { batch: 1, heads: 1, headDim: 96, nq: 1, nk: 47, rel: { kH: 1, kW: 47 } },
    { batch: 2, heads: 2, headDim: 16, nq: 35, nk: 35, rel: { kH: 5, kW: 7 } },
  ];
  for (const [i, c] of cases.entries()) {
    const b = build(c, 100 + 10 * i);
    const got = await run(c, b).read();
    const ref = attentionRef(b.host.q, b.host.k, b.host.v, c, b.scale, b.rel);
    assertClose(got, ref, {
      atol: ATOL,
      rtol: 1e-5,
      shape: [c.batch, c.nq, c.heads * c.headDim],
      label: label(c),
    });
  }
});

Deno.test("attention: every named variant on awkward shapes, rel pos, vec4 and scalar", async () => {
  // The default and tuned choices pick among these names, so each must be right on its own:
  // ragged query blocks and key groups of 4, head dims off every padding step (SlimSAM's 14,
  // ViT-H's 80), scalar and vec4 access, rel pos on a non-square grid.
  const cases: Case[] = [
    { batch: 2, heads: 3, headDim: 14, nq: 37, nk: 23, pad: 1 },
    { batch: 1, heads: 2, headDim: 80, nq: 70, nk: 70, fused: true },
    { batch: 2, heads: 1, headDim: 32, nq: 35, nk: 35, rel: { kH: 5, kW: 7 }, pad: 2 },
    { batch: 1, heads: 2, headDim: 64, nq: 40, nk: 42, rel: { kH: 6, kW: 7 }, scale: 3 },
  ];
  for (const variant of ATTENTION_CANDIDATES) {
    for (const [i, c] of cases.entries()) {
      const b = build(c, 900 + 10 * i);
      const got = await run(c, b, variant).read();
      const ref = attentionRef(b.host.q, b.host.k, b.host.v, c, b.scale, b.rel);
      assertClose(got, ref, {
        atol: ATOL * (c.scale ?? 1),
        rtol: 1e-5,
        shape: [c.batch, c.nq, c.heads * c.headDim],
        label: `${variant} ${label(c)}`,
      });
    }
  }
  const t = tensorFrom(ctx, new Float32Array(64), [64]);
  const view = { tensor: t, offset: 0, rowStride: 8 };
  const dims = { batch: 1, heads: 2, headDim: 4, nq: 8, nk: 8 };
  assert.throws(() => attention(ctx, view, view, view, dims, { variant: "rows3w16" }), /unknown/);
  await ctx.sync();
});

Deno.test("attention: large scores stay finite (online softmax rescaling)", async () => {
  // Scores up to ~±2000 would overflow exp without the running max; keys in several tiles
  // each raise the max so the rescale path runs.
  const c: Case = { batch: 1, heads: 2, headDim: 32, nq: 20, nk: 150, scale: 30 };
  const b = build(c, 7);
  const got = await run(c, b).read();
  const ref = attentionRef(b.host.q, b.host.k, b.host.v, c, b.scale, null);
  assertClose(got, ref, { atol: 1e-4, rtol: 1e-4, label: label(c) });
});

/** Compares sampled (b, h, n) rows of a big case against the row reference. */
function assertRows(
  got: Float32Array,
  c: Case,
  b: Built,
  rows: [number, number, number][],
  atol: number,
): void {
  const D = c.headDim;
  const gotRows: number[] = [], refRows: number[] = [];
  for (const [bi, h, n] of rows) {
    const ref = attentionRowRef(b.host.q, b.host.k, b.host.v, c, b.scale, b.rel, bi, h, n);
    const base = ((bi * c.nq + n) * c.heads + h) * D;
    gotRows.push(...got.subarray(base, base + D));
    refRows.push(...ref);
  }
  assertClose(gotRows, refRows, { atol, rtol: 1e-5, shape: [rows.length, D], label: label(c) });
}

function sampleRows(c: Case, count: number, seed: number): [number, number, number][] {
  const u = randomArray(3 * count, seed, 0.5);
  const rows: [number, number, number][] = [
    [0, 0, 0],
    [c.batch - 1, c.heads - 1, c.nq - 1],
  ];
  for (let i = 0; i < count; i++) {
    const pick = (x: number, n: number) => Math.min(n - 1, Math.floor((x + 0.5) * n));
    rows.push([pick(u[3 * i], c.batch), pick(u[3 * i + 1], c.heads), pick(u[3 * i + 2], c.nq)]);
  }
  return rows;
}

Deno.test("attention: SAM decoder shapes (7 tokens <-> 4096 image tokens)", async () => {
  // Token-to-image and image-to-token cross attention of the two-way transformer (8 heads,
  // internal dim 256 -> headDim 32, downsampled 128 -> 16), prompt batches 1 and 16.
  const cases: Case[] = [
    { batch: 1, heads: 8, headDim: 16, nq: 7, nk: 4096 },
    { batch: 16, heads: 8, headDim: 32, nq: 7, nk: 4096 },
    { batch: 1, heads: 8, headDim: 32, nq: 4096, nk: 7 },
    { batch: 16, heads: 8, headDim: 16, nq: 4096, nk: 7 },
  ];
  for (const [i, c] of cases.entries()) {
    const b = build(c, 300 + 10 * i);
    const got = await run(c, b).read();
    assertRows(got, c, b, sampleRows(c, 48, 30 + i), ATOL);
  }
});

Deno.test("attention: ViT windowed shapes (25 windows x 196 tokens, rel pos)", async () => {
  // ViT-B (headDim 64) and ViT-H (headDim 80) windowed blocks on the 64x64 grid padded to
  // 70x70: 25 windows of 14x14. Two heads of the real 12/16 keep llvmpipe time down; the
  // view strides are the real fused-qkv ones.
  const cases: Case[] = [
    { batch: 25, heads: 2, headDim: 64, nq: 196, nk: 196, fused: true, rel: { kH: 14, kW: 14 } },
    { batch: 25, heads: 2, headDim: 80, nq: 196, nk: 196, fused: true, rel: { kH: 14, kW: 14 } },
  ];
  for (const [i, c] of cases.entries()) {
    const b = build(c, 500 + 10 * i);
    const got = await run(c, b).read();
    assertRows(got, c, b, sampleRows(c, 64, 50 + i), ATOL);
  }
});

Deno.test("attention: ViT global attention over 4096 tokens with rel pos (sampled rows)", async () => {
  // One head of ViT-B/L's global block (64x64 grid, headDim 64; headDim 80 is covered by
  // the windowed test): 4096 x 4096 scores would be 64 MB per head; the kernel streams them.
  const c: Case = { batch: 1, heads: 1, headDim: 64, nq: 4096, nk: 4096, rel: { kH: 64, kW: 64 } };
  const b = build(c, 700);
  const got = await run(c, b).read();
  assertRows(got, c, b, sampleRows(c, 24, 70), ATOL);
});

Deno.test("attention: refuses bad shapes and views", async () => {
  const t = tensorFrom(ctx, new Float32Array(64), [64]);
  const view = { tensor: t, offset: 0, rowStride: 8 };
  const dims = { batch: 1, heads: 2, headDim: 4, nq: 8, nk: 8 };
  assert.throws(
    () => attention(ctx, view, view, { ...view, offset: 1 }, dims),
    /v view .* reaches element 64/,
  );
  assert.throws(
    () => attention(ctx, view, view, view, { ...dims, headDim: 129, heads: 1 }),
    /headDim 129/,
  );
  assert.throws(() => attention(ctx, view, view, view, { ...dims, nq: 0 }), /dims.nq/);
  assert.throws(
    () => attention(ctx, view, view, view, dims, { out: t }),
    /must not share a buffer/,
  );
  const rel = { relH: t, relW: t, kH: 3, kW: 3 };
  assert.throws(() => attention(ctx, view, view, view, dims, { relPos: rel }), /kH\*kW/);
  await ctx.sync();
});
