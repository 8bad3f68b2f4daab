import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { type Tensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { attention } from "../../src/kernels/attention.ts";
import { getRelPos, relPosBias } from "../../src/kernels/rel_pos.ts";
import assert from "node:assert/strict";
import { relPosBiasRef } from "./rel_pos_ref.ts";

const ctx = await getContext();

/** get_rel_pos in float64, written from the Python (interpolate, then gather). */
function getRelPosRef(q: number, k: number, table: Float32Array, L: number, D: number) {
  const maxRel = 2 * Math.max(q, k) - 1;
  let resized: Float64Array = Float64Array.from(table);
  if (L !== maxRel) {
    resized = new Float64Array(maxRel * D);
    for (let o = 0; o < maxRel; o++) {
      const src = Math.max((L / maxRel) * (o + 0.5) - 0.5, 0);
      const i0 = Math.floor(src), i1 = Math.min(i0 + 1, L - 1), w = src - i0;
      for (let c = 0; c < D; c++) {
        resized[o * D + c] = (1 - w) * table[i0 * D + c] + w * table[i1 * D + c];
      }
    }
  }
  const out = new Float64Array(q * k * D);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < k; j++) {
      const rel = i * Math.max(k / q, 1) - j * Math.max(q / k, 1) +
        (k - 1) * Math.max(q / k, 1);
      const idx = Math.trunc(rel + 1e-9); // float64 lands just under integers where f32 does not
      for (let c = 0; c < D; c++) out[(i * k + j) * D + c] = resized[idx * D + c];
    }
  }
  return out;
}

Deno.test("getRelPos: hand-checked gathers and linear interpolation", () => {
  // q = k = 2, table of 3 rows (no resize): R[i, j] = table[i - j + 1].
  const t3 = Float32Array.from([10, 11, 20, 21, 30, 31]); // [3, 2]
  assert.deepEqual([...getRelPos(2, 2, t3, 3, 2)], [20, 21, 10, 11, 30, 31, 20, 21]);
  // Table of 2 rows resized to 3 (align_corners=False): sources -1/6 -> 0, 0.5, 7/6 -> clamp.
  const t2 = Float32Array.from([0, 100, 4, 200]); // [2, 2]
  // resized rows: [0, 100], [2, 150], [4, 200]; R[i, j] = resized[i - j + 1]
  assert.deepEqual([...getRelPos(2, 2, t2, 2, 2)], [2, 150, 0, 100, 4, 200, 2, 150]);
  assert.throws(() => getRelPos(2, 2, t2, 3, 2), /table has 4 values/);
});

Deno.test("getRelPos matches the float64 formula: same, resized and unequal q/k sizes", () => {
  // [qSize, kSize, tableLen]: SAM's windowed (14) and global (64) tables, a table that must be
  // upsampled and one downsampled, and the q != k coordinate scaling both ways.
  const D = 6;
  for (
    const [q, k, L] of [[14, 14, 27], [64, 64, 127], [14, 14, 9], [8, 8, 40], [7, 14, 27], [
      14,
      7,
      27,
    ], [5, 10, 13]]
  ) {
    const table = randomArray(L * D, q * 1000 + k * 10 + L);
    // Without resizing it is a pure gather: exact. Resizing computes source coordinates in
    // float32 as PyTorch does (up to ~40, ulp 4e-6) times table steps of up to 2: 1e-5.
    const resized = L !== 2 * Math.max(q, k) - 1;
    assertClose(getRelPos(q, k, table, L, D), getRelPosRef(q, k, table, L, D), {
      atol: resized ? 1e-5 : 0,
      shape: [q, k, D],
      label: `getRelPos q${q} k${k} L${L}`,
    });
  }
});

Deno.test("relPosBias matches the einsum reference on a fused-qkv view", async () => {
  // batch 2, 3 heads, headDim 10, q grid 4x5 against a 4x5 and a 6x3 key grid.
  const batch = 2, heads = 3, D = 10, qH = 4, qW = 5, C = heads * D, stride = 3 * C + 1;
  const nq = qH * qW;
  const qkv = randomArray(2 + batch * nq * stride, 5);
  const qt = tensorFrom(ctx, qkv, [qkv.length]);
  for (const [kH, kW] of [[4, 5], [6, 3]]) {
    const rh = randomArray(qH * kH * D, kH), rw = randomArray(qW * kW * D, kW + 50);
    const run = (out?: { relH: Tensor; relW: Tensor }) =>
      relPosBias(
        ctx,
        { tensor: qt, offset: 2, rowStride: stride },
        { batch, heads, headDim: D, nq, nk: kH * kW },
        qH,
        qW,
        tensorFrom(ctx, rh, [qH, kH, D]),
        tensorFrom(ctx, rw, [qW, kW, D]),
        kH,
        kW,
        out,
      );
    const got = run();
    assert.deepEqual(got.relH.shape, [batch * heads, nq, kH]);
    assert.deepEqual(got.relW.shape, [batch * heads, nq, kW]);
    const ref = relPosBiasRef(qkv, 2, stride, batch, heads, D, qH, qW, rh, rw, kH, kW);
    // Dot products of 10 terms of magnitude <= 1: float32 error ~1e-6.
    const tol = { atol: 1e-5, rtol: 1e-5 };
    assertClose(await got.relH.read(), ref.relH, { ...tol, label: `relH k${kH}x${kW}` });
    assertClose(await got.relW.read(), ref.relW, { ...tol, label: `relW k${kH}x${kW}` });
    // The same into caller-owned buffers.
    const out = {
      relH: tensorFrom(ctx, new Float32Array(batch * heads * nq * kH).fill(9), [
        batch * heads * nq * kH,
      ]),
      relW: tensorFrom(ctx, new Float32Array(batch * heads * nq * kW).fill(9), [
        batch * heads * nq * kW,
      ]),
    };
    const into = run(out);
    assert.equal(into.relH.buffer, out.relH.buffer);
    assertClose(await into.relH.read(), ref.relH, { ...tol, label: `relH into out` });
    assertClose(await into.relW.read(), ref.relW, { ...tol, label: `relW into out` });
  }
});

/**
 * SAM's Attention.forward with use_rel_pos, materialised: attn = (q * scale) @ k^T, plus
 * add_decomposed_rel_pos, softmax, @ v; q, k, v from a fused qkv [batch, n, 3C] buffer.
 */
function samAttentionRef(
  qkv: Float32Array,
  batch: number,
  heads: number,
  D: number,
  gh: number,
  gw: number,
  tableH: Float32Array,
  tableW: Float32Array,
  Lh: number,
  Lw: number,
) {
  const n = gh * gw, C = heads * D;
  const Rh = getRelPosRef(gh, gh, tableH, Lh, D), Rw = getRelPosRef(gw, gw, tableW, Lw, D);
  const out = new Float64Array(batch * n * C);
  const x = (b: number, t: number, part: number, h: number, c: number) =>
    qkv[(b * n + t) * 3 * C + part * C + h * D + c];
  const scale = D ** -0.5;
  const attn = new Float64Array(n * n);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let c = 0; c < D; c++) s += x(b, i, 0, h, c) * scale * x(b, j, 1, h, c);
          attn[i * n + j] = s;
        }
      }
      // rel_h[i, kh] = q_i . Rh[qh, kh]; rel_w[i, kw] = q_i . Rw[qw, kw]; attn += both
      for (let i = 0; i < n; i++) {
        const qh = Math.floor(i / gw), qw = i % gw;
        for (let j = 0; j < n; j++) {
          const kh = Math.floor(j / gw), kw = j % gw;
          let bias = 0;
          for (let c = 0; c < D; c++) {
            bias += x(b, i, 0, h, c) * (Rh[(qh * gh + kh) * D + c] + Rw[(qw * gw + kw) * D + c]);
          }
          attn[i * n + j] += bias;
        }
      }
      for (let i = 0; i < n; i++) {
        const row = attn.subarray(i * n, (i + 1) * n);
        const max = Math.max(...row);
        let sum = 0;
        for (let j = 0; j < n; j++) sum += row[j] = Math.exp(row[j] - max);
        for (let c = 0; c < D; c++) {
          let o = 0;
          for (let j = 0; j < n; j++) o += row[j] * x(b, j, 2, h, c);
          out[(b * n + i) * C + h * D + c] = o / sum;
        }
      }
    }
  }
  return out;
}

Deno.test("getRelPos + relPosBias + attention equal SAM's materialised rel-pos attention", async () => {
  // [batch (windows), heads, headDim, grid h, grid w, table length]: windows with the exact
  // table (2*7-1), a resized table, and a non-square 12x9 global grid at ViT-H's headDim 80.
  const cases = [
    [2, 2, 16, 7, 7, 13],
    [1, 3, 8, 7, 7, 9],
    [1, 1, 80, 12, 9, 23],
  ];
  for (const [batch, heads, D, gh, gw, L] of cases) {
    const n = gh * gw, C = heads * D;
    const qkv = randomArray(batch * n * 3 * C, batch + heads + D, 1.5);
    const Lw = L === 23 ? 17 : L; // the wide table: 2*max(9,9)-1
    const tableH = randomArray(L * D, 11, 0.5), tableW = randomArray(Lw * D, 12, 0.5);
    const t = tensorFrom(ctx, qkv, [batch, n, 3 * C]);
    const dims = { batch, heads, headDim: D, nq: n, nk: n };
    const view = (part: number) => ({ tensor: t, offset: part * C, rowStride: 3 * C });
    const rh = tensorFrom(ctx, getRelPos(gh, gh, tableH, L, D), [gh, gh, D]);
    const rw = tensorFrom(ctx, getRelPos(gw, gw, tableW, Lw, D), [gw, gw, D]);
    const relPos = relPosBias(ctx, view(0), dims, gh, gw, rh, rw, gh, gw);
    const got = await attention(ctx, view(0), view(1), view(2), dims, { relPos }).read();
    const ref = samAttentionRef(qkv, batch, heads, D, gh, gw, tableH, tableW, L, Lw);
    // Convex combinations of values in [-1.5, 1.5]; float32 throughout: 2e-5.
    assertClose(got, ref, {
      atol: 2e-5,
      rtol: 1e-5,
      shape: [batch, n, C],
      label: `rel-pos attention b${batch} h${heads} d${D} ${gh}x${gw} L${L}`,
    });
  }
});

Deno.test("relPosBias refuses mismatched shapes", async () => {
  const t = tensorFrom(ctx, new Float32Array(64), [64]);
  const dims = { batch: 1, heads: 1, headDim: 4, nq: 6, nk: 6 };
  const view = { tensor: t, offset: 0, rowStride: 4 };
  const r = tensorFrom(ctx, new Float32Array(2 * 2 * 4), [2, 2, 4]);
  assert.throws(() => relPosBias(ctx, view, dims, 2, 2, r, r, 2, 2), /qH\*qW = 2\*2 != nq 6/);
  assert.throws(
    () => relPosBias(ctx, view, { ...dims, nq: 4 }, 2, 2, r, r, 3, 2),
    /rh has 16 elements/,
  );
  await ctx.sync();
});
