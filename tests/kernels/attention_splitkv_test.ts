/**
 * The attention variants added for issue #15 at SAM's real shapes (heads scaled down for
 * llvmpipe), against a float64 reference row by row: split-KV ("splitkv4", "splitkv8") where
 * it is meant to run (the decoder's 7 prompt tokens attending 4096 image tokens, every row
 * compared) and on ViT windowed / global attention with rel pos (sampled rows), and
 * "rows16w8", the CPU-adapter default. Awkward shapes of every variant are in
 * attention_test.ts ("every named variant").
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import {
  attention,
  ATTENTION_CANDIDATES,
  defaultAttentionVariant,
} from "../../src/kernels/attention.ts";
import { parseSplitKvName } from "../../src/kernels/attention_splitkv.ts";

const ctx = await getContext();

interface Case {
  batch: number;
  heads: number;
  headDim: number;
  nq: number;
  nk: number;
  rel?: number; // square rel-pos grid side (nk = side^2)
}

/** softmax(scale q k^T + relH[q, kh] + relW[q, kw]) v for one (b, h, query), in float64. */
function rowRef(
  c: Case,
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
  const scale = 1 / Math.sqrt(c.headDim);
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
      dot += relH[row * c.rel + Math.floor(j / c.rel)] + relW[row * c.rel + (j % c.rel)];
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

async function check(c: Case, variants: string[], rows: number | "all", seed: number) {
  const C = c.heads * c.headDim;
  const q = randomArray(c.batch * c.nq * C, seed, 1.5);
  const k = randomArray(c.batch * c.nk * C, seed + 1, 1.5);
  const v = randomArray(c.batch * c.nk * C, seed + 2, 1.5);
  const bh = c.batch * c.heads;
  const relH = c.rel ? randomArray(bh * c.nq * c.rel, seed + 3, 2) : null;
  const relW = c.rel ? randomArray(bh * c.nq * c.rel, seed + 4, 2) : null;
  const view = (data: Float32Array) => ({
    tensor: tensorFrom(ctx, data, [data.length]),
    offset: 0,
    rowStride: C,
  });
  const [qv, kv, vv] = [view(q), view(k), view(v)];
  const relPos = relH && relW && c.rel
    ? {
      relH: tensorFrom(ctx, relH, [bh, c.nq, c.rel]),
      relW: tensorFrom(ctx, relW, [bh, c.nq, c.rel]),
      kH: c.rel,
      kW: c.rel,
    }
    : undefined;
  // Rows to compare: all, or the first, the last and a spread of others.
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
  for (const [b, h, n] of picks) want.push(...rowRef(c, q, k, v, relH, relW, b, h, n));
  for (const variant of variants) {
    const out = attention(ctx, qv, kv, vv, c, { relPos, variant });
    const all = await out.read();
    out.destroy();
    const got: number[] = [];
    for (const [b, h, n] of picks) {
      const base = (b * c.nq + n) * C + h * c.headDim;
      got.push(...all.subarray(base, base + c.headDim));
    }
    // Convex combinations of values in [-1.5, 1.5] over up to 4096 keys in float32.
    assertClose(got, want, {
      atol: 2e-5,
      rtol: 1e-5,
      shape: [picks.length, c.headDim],
      label: `${variant} b${c.batch} h${c.heads} d${c.headDim} nq${c.nq} nk${c.nk}` +
        `${c.rel ? ` relpos ${c.rel}x${c.rel}` : ""}`,
    });
  }
  for (const t of [qv.tensor, kv.tensor, vv.tensor, relPos?.relH, relPos?.relW]) t?.destroy();
}

Deno.test("attention split-KV: names, candidates, and the CPU default", () => {
  assert.equal(parseSplitKvName("splitkv4"), 4);
  assert.equal(parseSplitKvName("splitkv8"), 8);
  assert.equal(parseSplitKvName("splitkv5"), null);
  for (const n of ["splitkv4", "splitkv8", "rows16w8"]) assert.ok(ATTENTION_CANDIDATES.includes(n));
  assert.equal(defaultAttentionVariant(true), "rows16w8");
  // Scalar access: 4 rows (the scalar 16-row kernel compiles for minutes on llvmpipe).
  assert.equal(defaultAttentionVariant(true, false), "rows4w8");
  assert.equal(defaultAttentionVariant(false), "tiled");
});

Deno.test("attention split-KV: decoder token-to-image (7 queries x 4096 keys), every row", async () => {
  await check(
    { batch: 1, heads: 8, headDim: 32, nq: 7, nk: 4096 },
    ["splitkv4", "splitkv8"],
    "all",
    10,
  );
});

Deno.test("attention split-KV / rows16w8: ViT windowed blocks (25 x 196 tokens, rel pos 14x14)", async () => {
  // ViT-B's head dim (64); 1 of its 12 heads.
  await check(
    { batch: 25, heads: 1, headDim: 64, nq: 196, nk: 196, rel: 14 },
    ["splitkv8", "rows16w8"],
    48,
    20,
  );
});

Deno.test("attention split-KV / rows16w8: global attention with rel pos (1024 tokens, scaled from 4096)", async () => {
  await check(
    { batch: 1, heads: 2, headDim: 64, nq: 1024, nk: 1024, rel: 32 },
    ["splitkv4", "rows16w8"],
    32,
    30,
  );
});
