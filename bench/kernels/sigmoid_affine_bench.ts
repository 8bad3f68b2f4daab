/** The memory encoder's mask input at 1024 px (1024x1024 logits -> sigmoid * 20 - 10), both
 * modes. Memory-bound: reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { sigmoidAffine } from "../../src/kernels/sigmoid_affine.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const n = 1024 * 1024;
const x = tensorFrom(ctx, new Float32Array(n).fill(0.5), [1024, 1024]);
const out = emptyTensor(ctx, [1024, 1024]);
for (const mode of ["sigmoid", "binarize"] as const) {
  benchKernel({
    name: `sigmoidAffine ${mode} 1024x1024`,
    ctx,
    bytes: 8 * n,
    run: () => sigmoidAffine(ctx, x, { mode, scale: 20, bias: -10, out }),
  });
}
