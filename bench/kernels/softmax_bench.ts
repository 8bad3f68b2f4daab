import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { softmax } from "../../src/kernels/softmax.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// Decoder token-to-image attention scores (8 heads x 7 tokens over 4096 keys) and a
// window-attention-sized block (12 heads x 196 queries x 196 keys).
for (const [rows, L] of [[8 * 7, 4096], [12 * 196, 196]]) {
  const x = tensorFrom(ctx, new Float32Array(rows * L).fill(0.5), [rows, L]);
  const out = tensorFrom(ctx, new Float32Array(rows * L), [rows, L]);
  benchKernel({
    name: `softmax ${rows}x${L}`,
    ctx,
    bytes: 2 * 4 * rows * L,
    run: () => softmax(ctx, x, out),
  });
}
