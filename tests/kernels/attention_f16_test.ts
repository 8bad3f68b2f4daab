/**
 * Attention and rel-pos with q, k, v stored as f16 (precision "f16": the qkv linear writes
 * f16, "_f16qkv" variants read it) against a float64 reference, for every named attention
 * variant, SAM's fused qkv layout (vec4 and, with a padded row, scalar loads), with and
 * without the decomposed rel-pos bias, with a bias table, and at decoder-like sizes (which
 * the f16 path sends to the tiled kernel).
 *
 * Tolerance: the reference reads the same f16-rounded q, k, v the GPU holds (Math.f16round),
 * and the scores, softmax and output are f32 on the GPU, so what is left is the f32 error of
 * the f32 attention test: outputs are convex combinations of v in [-1.5, 1.5], 2e-5 absolute
 * (+1e-5 relative). Rel-pos factors: f32 dot products of O(1) terms, 1e-5 + 1e-5 |ref|.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom, tensorFromF16 } from "../../src/gpu/tensor.ts";
import {
  attention,
  attentionCandidates,
  type AttentionDims,
  attentionKey,
} from "../../src/kernels/attention.ts";
import { relPosBias } from "../../src/kernels/rel_pos.ts";
import { windowUnpartition } from "../../src/kernels/window.ts";
import { defaultVariantFor, parseTuneKey, tuneKey } from "../../src/kernels/tuner.ts";

const ctx = await getContext();
const f16 = (x: Float32Array) => Float32Array.from(x, Math.f16round);

interface Case extends AttentionDims {
  /** Extra elements at the end of each fused row (odd: scalar loads). */
  pad: number;
  rel?: boolean;
  table?: boolean;
}

/** out[b, n, h*D + d] in float64; qkv rows [q | k | v | pad] of width 3*C + pad. */
function reference(
  c: Case,
  qkv: Float32Array,
  scale: number,
  bias: ((bh: number, n: number, j: number) => number) | null,
): Float64Array {
  const { batch, heads, headDim: D, nq } = c;
  const C = heads * D, stride = 3 * C + c.pad;
  const out = new Float64Array(batch * nq * C);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let n = 0; n < nq; n++) {
        const s = new Float64Array(nq);
        for (let j = 0; j < nq; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) {
            dot += qkv[(b * nq + n) * stride + h * D + d] *
              qkv[(b * nq + j) * stride + C + h * D + d];
          }
          s[j] = dot * scale + (bias ? bias(b * heads + h, n, j) : 0);
        }
        const max = Math.max(...s);
        let sum = 0;
        for (let j = 0; j < nq; j++) sum += s[j] = Math.exp(s[j] - max);
        for (let j = 0; j < nq; j++) {
          for (let d = 0; d < D; d++) {
            out[(b * nq + n) * C + h * D + d] += (s[j] / sum) *
              qkv[(b * nq + j) * stride + 2 * C + h * D + d];
          }
        }
      }
    }
  }
  return out;
}

Deno.test("attention f16 q/k/v: every variant, fused qkv, rel pos, bias table, vs float64", async () => {
  if (!ctx.gpu.hasF16) {
    const t = tensorFromF16(ctx, new Float32Array(12), [12]);
    const view = { tensor: t, offset: 0, rowStride: 12 };
    assert.throws(
      () => attention(ctx, view, view, view, { batch: 1, heads: 1, headDim: 4, nq: 1, nk: 1 }),
      /shader-f16/,
    );
    console.log(`SKIP numeric checks: ${ctx.gpu.description} has no shader-f16`);
    return;
  }
  const cases: Case[] = [
    // SAM-like windows: 2 x 2 windows of 5 x 7 tokens, head dim 16 (vec4), rel pos.
    { batch: 2, heads: 2, headDim: 16, nq: 35, nk: 35, pad: 0, rel: true },
    // Scalar loads (odd row padding), head dim 20, no bias.
    { batch: 1, heads: 3, headDim: 20, nq: 40, nk: 40, pad: 1 },
    // Head dim 64 with rel pos over an 8 x 8 grid (ViT-B/L's head size).
    { batch: 1, heads: 1, headDim: 64, nq: 64, nk: 64, pad: 0, rel: true },
    // TinyViT's bias table (tiled kernel only).
    { batch: 2, heads: 2, headDim: 8, nq: 49, nk: 49, pad: 0, table: true },
    // Decoder-sized (few queries / keys): the f16 path runs the tiled kernel.
    { batch: 1, heads: 2, headDim: 16, nq: 7, nk: 7, pad: 0 },
  ];
  for (const [ci, c] of cases.entries()) {
    const C = c.heads * c.headDim, stride = 3 * C + c.pad;
    const qkv = f16(randomArray(c.batch * c.nq * stride, 500 + ci, 1.5));
    const t = tensorFromF16(ctx, qkv, [c.batch * c.nq, stride]);
    const view = (k: number) => ({ tensor: t, offset: k * C, rowStride: stride });
    const scale = 1 / Math.sqrt(c.headDim);
    let bias: ((bh: number, n: number, j: number) => number) | null = null;
    let relPos, biasTable;
    const side = Math.round(Math.sqrt(c.nq));
    const [kH, kW] = c.nq === 35 ? [5, 7] : [side, side];
    if (c.rel) {
      const bh = c.batch * c.heads;
      const relH = randomArray(bh * c.nq * kH, 600 + ci, 2);
      const relW = randomArray(bh * c.nq * kW, 700 + ci, 2);
      bias = (b, n, j) =>
        relH[(b * c.nq + n) * kH + Math.floor(j / kW)] +
        relW[(b * c.nq + n) * kW + (j % kW)];
      relPos = {
        relH: tensorFrom(ctx, relH, [bh, c.nq, kH]),
        relW: tensorFrom(ctx, relW, [bh, c.nq, kW]),
        kH,
        kW,
      };
    }
    if (c.table) {
      const tab = randomArray(c.heads * c.nq * c.nk, 800 + ci, 2);
      bias = (bh, n, j) => tab[((bh % c.heads) * c.nq + n) * c.nk + j];
      biasTable = tensorFrom(ctx, tab, [c.heads, c.nq, c.nk]);
    }
    const want = reference(c, qkv, scale, bias);
    const small = c.nq <= 8;
    // Every variant on the first case; the others on the default and the tiled kernel (each
    // variant compiles per head dim on a CPU adapter: minutes in all).
    const variants = c.table || small
      ? [undefined]
      : ci === 0
      ? [undefined, ...attentionCandidates(true)]
      : [undefined, "tiled"];
    for (const variant of variants) {
      // f32 out, then f16 out (the encoder's: rounded once at the store, half an f16 ulp,
      // 2^-11 |v| at most, hence rtol 5e-4).
      for (const halfOut of [false, true]) {
        const shape = [c.batch, c.nq, C];
        const out = emptyTensor(ctx, shape, "out", halfOut ? "f16" : "f32");
        attention(ctx, view(0), view(1), view(2), c, { relPos, biasTable, variant, out });
        const got = await out.read();
        out.destroy();
        assertClose(got, want, {
          atol: 2e-5,
          rtol: halfOut ? 5e-4 : 1e-5,
          shape,
          label: `attention f16qkv${halfOut ? " f16o" : ""} ${variant ?? "default"} ` +
            JSON.stringify(c),
        });
      }
    }
    t.destroy();
  }
  // f16 shapes are tuned apart from f32 ones.
  const dims = { batch: 1, heads: 2, headDim: 16, nq: 9, nk: 9 };
  assert.equal(attentionKey(dims), "attention|2x9x9x16");
  assert.equal(attentionKey(dims, undefined, true), "attention|2x9x9x16|f16qkv");
  assert.equal(attentionKey(dims, undefined, true, true), "attention|2x9x9x16|f16qkvo");
});

Deno.test("relPosBias with f16 q, vs float64", async () => {
  if (!ctx.gpu.hasF16) return;
  const batch = 2, heads = 2, D = 12, qH = 5, qW = 7, nq = qH * qW, kH = 5, kW = 7;
  const stride = 3 * heads * D + 1; // q inside a fused qkv row, odd stride
  const qkv = f16(randomArray(batch * nq * stride, 900, 1.5));
  const rh = randomArray(qH * kH * D, 901);
  const rw = randomArray(qW * kW * D, 902);
  const q = tensorFromF16(ctx, qkv, [batch * nq, stride]);
  const rel = relPosBias(
    ctx,
    { tensor: q, offset: 0, rowStride: stride },
    { batch, heads, headDim: D, nq, nk: nq },
    qH,
    qW,
    tensorFrom(ctx, rh, [qH, kH, D]),
    tensorFrom(ctx, rw, [qW, kW, D]),
    kH,
    kW,
  );
  const wantH = new Float64Array(batch * heads * nq * kH);
  const wantW = new Float64Array(batch * heads * nq * kW);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let n = 0; n < nq; n++) {
        const row = (b * heads + h) * nq + n, qb = (b * nq + n) * stride + h * D;
        for (let t = 0; t < kH; t++) {
          let s = 0;
          for (let d = 0; d < D; d++) {
            s += qkv[qb + d] * rh[((Math.floor(n / qW)) * kH + t) * D + d];
          }
          wantH[row * kH + t] = s;
        }
        for (let t = 0; t < kW; t++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[qb + d] * rw[((n % qW) * kW + t) * D + d];
          wantW[row * kW + t] = s;
        }
      }
    }
  }
  assertClose(await rel.relH.read(), wantH, { atol: 1e-5, rtol: 1e-5, label: "relH f16q" });
  assertClose(await rel.relW.read(), wantW, { atol: 1e-5, rtol: 1e-5, label: "relW f16q" });
});

Deno.test("windowUnpartition of an f16 tensor: an exact f16 copy (vec4 and scalar channels)", async () => {
  if (!ctx.gpu.hasF16) return;
  for (const [H, W, win, C] of [[5, 7, 3, 8], [4, 6, 4, 3]]) {
    const nwy = Math.ceil(H / win), nwx = Math.ceil(W / win);
    const x = f16(randomArray(nwy * nwx * win * win * C, 1000 + C, 3));
    const t = tensorFromF16(ctx, x, [nwy * nwx, win * win, C]);
    const y = windowUnpartition(ctx, t, win, H, W);
    assert.equal(y.dtype, "f16");
    const want = new Float32Array(H * W * C);
    for (let yy = 0; yy < H; yy++) {
      for (let xx = 0; xx < W; xx++) {
        const w = Math.floor(yy / win) * nwx + Math.floor(xx / win);
        const tok = (yy % win) * win + (xx % win);
        for (let c = 0; c < C; c++) {
          want[(yy * W + xx) * C + c] = x[(w * win * win + tok) * C + c];
        }
      }
    }
    assertClose(await y.read(), want, { atol: 0, label: `unpartition f16 ${H}x${W}/${win} C${C}` });
  }
});

Deno.test("tune: f16 attention keys parse, and every candidate agrees on them", async () => {
  assert.deepEqual(parseTuneKey("attention|2x20x20x16|relpos4x5|f16qkvo"), {
    op: "attention",
    bh: 2,
    nq: 20,
    nk: 20,
    d: 16,
    kH: 4,
    kW: 5,
    half: true,
    halfOut: true,
  });
  assert.equal(parseTuneKey("attention|2x20x20x16|f16"), null);
  if (!ctx.gpu.hasF16) return;
  const key = "attention|2x20x20x16|relpos4x5|f16qkvo";
  const results = await tuneKey(ctx, key, defaultVariantFor(ctx, key), { maxRuns: 1, minMs: 1 });
  const bad = results.filter((r) => !r.agrees).map((r) => `${r.variant} (${r.maxDiff})`);
  assert.deepEqual(bad, [], `${key}: candidates disagreeing with the default`);
});
