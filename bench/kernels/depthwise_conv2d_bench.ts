/** TinyViT-5M's (MobileSAM's) depthwise 3x3 convolutions: stage 0's MBConv (256x256x256,
 * GELU), the first PatchMerging's stride-2 conv (256x256x128 -> 128x128) and a stage-2 local
 * conv (64x64x160). Memory-bound: reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { depthwiseConv2d } from "../../src/kernels/depthwise_conv2d.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const cases = [
  ["MBConv 256x256x256 GELU", 256, 256, 1, "gelu"],
  ["PatchMerging 256x256x128 stride 2 GELU", 256, 128, 2, "gelu"],
  ["local conv 64x64x160", 64, 160, 1, "none"],
] as const;
for (const [label, side, C, stride, act] of cases) {
  const x = tensorFrom(ctx, new Float32Array(side * side * C).fill(0.5), [side, side, C]);
  const w = tensorFrom(ctx, new Float32Array(C * 9).fill(0.1), [C, 1, 3, 3]);
  const b = tensorFrom(ctx, new Float32Array(C), [C]);
  const outSide = Math.floor((side + 2 - 3) / stride) + 1;
  const out = emptyTensor(ctx, [outSide, outSide, C]);
  benchKernel({
    name: `depthwiseConv2d ${label}`,
    ctx,
    bytes: 4 * (side * side * C + outSide * outSide * C),
    flops: 2 * 9 * outSide * outSide * C,
    run: () => depthwiseConv2d(ctx, x, w, b, { stride, padding: 1, activation: act, out }),
  });
}
