/** The attention kernel's bias-table variant at TinyViT-5M's (MobileSAM's) windowed shapes:
 * stage 1 (361 windows of 7x7 on the 128x128 grid padded to 133, 4 heads), stage 2 (25
 * windows of 14x14, 5 heads) and stage 3 (100 windows of 7x7, 10 heads); head_dim 32, q, k, v
 * views of one fused qkv buffer. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { attention, type AttentionDims } from "../../src/kernels/attention.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const cases = [["stage 1", 361, 4, 7], ["stage 2", 25, 5, 14], ["stage 3", 100, 10, 7]] as const;
for (const [label, batch, heads, side] of cases) {
  const headDim = 32, n = side * side, C = heads * headDim;
  const fill = (len: number) => new Float32Array(len).map((_, i) => Math.sin(i * 0.37) * 0.5);
  const qkv = tensorFrom(ctx, fill(batch * n * 3 * C), [batch, n, 3 * C]);
  const table = tensorFrom(ctx, fill(heads * n * n), [heads, n, n]);
  const out = emptyTensor(ctx, [batch, n, C]);
  const dims: AttentionDims = { batch, heads, headDim, nq: n, nk: n };
  const view = (k: number) => ({ tensor: qkv, offset: k * C, rowStride: 3 * C });
  benchKernel({
    name: `attention bias table TinyViT ${label}: ${batch} windows ${side}x${side}, ${heads} heads`,
    ctx,
    flops: 4 * batch * heads * n * n * headDim,
    run: () => attention(ctx, view(0), view(1), view(2), dims, { biasTable: table, out }),
    n: 3,
    warmup: 1,
  });
}
