import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { activation } from "../../src/kernels/activation.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// ViT-B MLP hidden activations: 4096 tokens x 3072 (linear fuses this; standalone for others).
const n = 4096 * 3072;
const x = tensorFrom(ctx, new Float32Array(n).fill(0.5), [n]);
const out = tensorFrom(ctx, new Float32Array(n), [n]);
for (const kind of ["gelu", "relu"] as const) {
  benchKernel({
    name: `${kind} 4096x3072`,
    ctx,
    bytes: 2 * 4 * n,
    run: () => activation(ctx, x, kind, out),
  });
}
