/** The attention kernel's bias-table variant (`attention_bias_*`): softmax(scale q k^T +
 * B[h]) v with one [heads, nq, nk] table shared by every batch, as TinyViT's windows share
 * their gathered `attention_biases`. */
import { assertClose, randomArray } from "../util/compare.ts";
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { attention, type AttentionDims } from "../../src/kernels/attention.ts";
import assert from "node:assert/strict";

const ctx = await getContext();

/** Reference on a fused [batch, n, 3C] qkv (q | k | v, heads interleaved), float64. */
function biasAttentionRef(
  qkv: Float32Array,
  table: Float32Array,
  dims: AttentionDims,
  scale: number,
): Float64Array {
  const { batch, heads, headDim: D, nq: n } = dims;
  const C = heads * D;
  const out = new Float64Array(batch * n * C);
  const scores = new Float64Array(n);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < n; i++) {
        const qBase = (b * n + i) * 3 * C + h * D;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          const kBase = (b * n + j) * 3 * C + C + h * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[qBase + d] * qkv[kBase + d];
          scores[j] = s * scale + table[(h * n + i) * n + j];
          max = Math.max(max, scores[j]);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += scores[j] = Math.exp(scores[j] - max);
        for (let j = 0; j < n; j++) {
          const vBase = (b * n + j) * 3 * C + 2 * C + h * D;
          const p = scores[j] / sum;
          for (let d = 0; d < D; d++) out[(b * n + i) * C + h * D + d] += p * qkv[vBase + d];
        }
      }
    }
  }
  return out;
}

Deno.test("attention with a per-head bias table matches the float64 reference (TinyViT windows)", async () => {
  // [batch, heads, headDim, side]: TinyViT-5M's 7x7 windows (49 tokens: two key tiles, a
  // partial one) and 14x14 (196), head_dim 32; a scalar-path head_dim 14; one window.
  const cases = [[3, 2, 32, 7], [2, 1, 32, 14], [2, 3, 14, 5], [1, 2, 8, 2]];
  for (const [batch, heads, headDim, side] of cases) {
    const n = side * side, C = heads * headDim;
    const dims: AttentionDims = { batch, heads, headDim, nq: n, nk: n };
    const qkvHost = randomArray(batch * n * 3 * C, batch * 17 + side, 1.2);
    // Biases of N(0, 1) size, as the fixture draws them: large enough to move the softmax.
    const tableHost = randomArray(heads * n * n, heads * 5 + side, 2);
    const qkv = tensorFrom(ctx, qkvHost, [batch, n, 3 * C]);
    const table = tensorFrom(ctx, tableHost, [heads, n, n]);
    const view = (k: number) => ({ tensor: qkv, offset: k * C, rowStride: 3 * C });
    const out = attention(ctx, view(0), view(1), view(2), dims, { biasTable: table });
    const scale = 1 / Math.sqrt(headDim);
    const label = `bias attention b${batch} h${heads} d${headDim} ${side}x${side}`;
    const ref = biasAttentionRef(qkvHost, tableHost, dims, scale);
    assertClose(await out.read(), ref, { atol: 2e-5, rtol: 1e-4, shape: out.shape, label });
    // The table matters: without it the result differs (so the check above can fail).
    const plain = await attention(ctx, view(0), view(1), view(2), dims).read();
    const moved = plain.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0);
    assert.ok(moved > 1e-2, `${label}: the bias table moved the output by only ${moved}`);
  }
});

Deno.test("attention refuses a bias table of the wrong size or combined with relPos", () => {
  const qkv = emptyTensor(ctx, [1, 4, 3 * 8]);
  const dims: AttentionDims = { batch: 1, heads: 2, headDim: 4, nq: 4, nk: 4 };
  const view = (k: number) => ({ tensor: qkv, offset: k * 8, rowStride: 24 });
  assert.throws(
    () => attention(ctx, view(0), view(1), view(2), dims, { biasTable: emptyTensor(ctx, [16]) }),
    /biasTable has 16 elements, need \[heads 2, nq 4, nk 4\]/,
  );
  const relH = emptyTensor(ctx, [2, 4, 2]);
  assert.throws(
    () =>
      attention(ctx, view(0), view(1), view(2), dims, {
        biasTable: emptyTensor(ctx, [2, 4, 4]),
        relPos: { relH, relW: relH, kH: 2, kW: 2 },
      }),
    /cannot be combined/,
  );
});
