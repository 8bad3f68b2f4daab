import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { layerNorm } from "../../src/kernels/layer_norm.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// Encoder token LayerNorms (4096 tokens at ViT-B / ViT-H width) and the decoder's (256 wide).
for (const [rows, C, eps] of [[4096, 768, 1e-6], [4096, 1280, 1e-6], [4096, 256, 1e-5]]) {
  const x = tensorFrom(ctx, new Float32Array(rows * C).fill(1), [rows, C]);
  const w = tensorFrom(ctx, new Float32Array(C).fill(1), [C]);
  const b = tensorFrom(ctx, new Float32Array(C), [C]);
  const out = tensorFrom(ctx, new Float32Array(rows * C), [rows, C]);
  benchKernel({
    name: `layerNorm ${rows}x${C}`,
    ctx,
    bytes: 2 * 4 * rows * C, // one read, one write
    run: () => layerNorm(ctx, x, w, b, eps, out),
  });
}
