/**
 * Single-head attention for head dims over the attention kernel's MAX_HEAD_DIM (SAM 2.1's
 * memory attention: 1 head of 256) as GEMMs: per block of query rows,
 * S = (q / sqrt(d)) k^T, P = softmax(S), o = P v. The score block [rows, nk] is sized to fit
 * `maxBlockBytes` (at 1024 px the memory keys are 7 x 4096 + 64 tokens, so a full score
 * matrix for 4096 queries would be 470 MB).
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, Tensor } from "../gpu/tensor.ts";
import { matmul } from "../kernels/matmul.ts";
import { scale } from "../kernels/mul.ts";
import { softmax } from "../kernels/softmax.ts";

export interface WideAttentionOptions {
  /** Upper bound on one score block's bytes (default 64 MiB). */
  maxBlockBytes?: number;
}

/** q [nq, d], k / v [nk, d] (contiguous, one head); returns softmax(q k^T / sqrt(d)) v, [nq, d]. */
export function wideAttention(
  ctx: GpuContext,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: WideAttentionOptions = {},
): Tensor {
  const d = q.shape[q.shape.length - 1];
  const nq = q.size / d, nk = k.size / d;
  if (k.shape[k.shape.length - 1] !== d || v.size !== k.size) {
    throw new Error(`wideAttention: q [${q.shape}], k [${k.shape}], v [${v.shape}] disagree`);
  }
  const maxBytes = opts.maxBlockBytes ?? 64 * 1024 * 1024;
  const rows = Math.max(1, Math.min(nq, Math.floor(maxBytes / (4 * nk))));
  // 1 / sqrt(d) on q first: exact for d = 256 (1/16), as torch's division after the product.
  const qs = scale(ctx, q.reshape([nq, d]), 1 / Math.sqrt(d));
  const kt = k.reshape([nk, d]), vt = v.reshape([nk, d]);
  const out = emptyTensor(ctx, [nq, d], "wide_attention.out");
  const qBlock = emptyTensor(ctx, [rows, d], "wide_attention.q");
  const sBlock = emptyTensor(ctx, [rows, nk], "wide_attention.s");
  const pBlock = emptyTensor(ctx, [rows, nk], "wide_attention.p");
  const oBlock = emptyTensor(ctx, [rows, d], "wide_attention.o");
  // Views of the first r rows of a block buffer (the last block may be short).
  const view = (t: Tensor, r: number, c: number) => new Tensor(ctx, t.buffer, [r, c], t.label);
  for (let r0 = 0; r0 < nq; r0 += rows) {
    const r = Math.min(rows, nq - r0);
    ctx.copy(qs.buffer, r0 * d * 4, qBlock.buffer, 0, r * d * 4);
    const s = matmul(ctx, view(qBlock, r, d), kt, { transposeB: true, out: view(sBlock, r, nk) });
    const p = softmax(ctx, s, view(pBlock, r, nk));
    matmul(ctx, p, vt, { out: view(oBlock, r, d) });
    ctx.copy(oBlock.buffer, 0, out.buffer, r0 * d * 4, r * d * 4);
  }
  ctx.submit();
  for (const t of [qs, qBlock, sBlock, pBlock, oBlock]) t.destroy();
  return out;
}
