import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { layerNorm, type LayerNormVariant } from "../../src/kernels/layer_norm.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// Encoder token LayerNorms (4096 tokens at ViT-B / ViT-H width) and the decoder's (256 wide),
// each variant: "warp" (GPUs) against "rows" (no barriers; software adapters).
for (const [rows, C, eps] of [[4096, 768, 1e-6], [4096, 1280, 1e-6], [4096, 256, 1e-5]]) {
  const x = tensorFrom(ctx, new Float32Array(rows * C).fill(1), [rows, C]);
  const w = tensorFrom(ctx, new Float32Array(C).fill(1), [C]);
  const b = tensorFrom(ctx, new Float32Array(C), [C]);
  const out = tensorFrom(ctx, new Float32Array(rows * C), [rows, C]);
  for (const variant of ["warp", "rows"] as LayerNormVariant[]) {
    benchKernel({
      name: `layerNorm ${rows}x${C} ${variant}`,
      group: `layerNorm ${rows}x${C}`,
      ctx,
      bytes: 2 * 4 * rows * C, // one read, one write
      run: () => layerNorm(ctx, x, w, b, eps, out, variant),
      n: 10,
      warmup: 2,
    });
  }
}
