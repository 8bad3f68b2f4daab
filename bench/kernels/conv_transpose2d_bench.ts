import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { convTranspose2d } from "../../src/kernels/conv_transpose2d.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// SAM's output upscaling for one prompt at the real width: 64x64x256 -> 128x128x64 (+ LN, GELU)
// -> 256x256x32 with GELU.
const x1 = tensorFrom(ctx, new Float32Array(64 * 64 * 256).fill(0.1), [1, 64, 64, 256]);
const w1 = tensorFrom(ctx, new Float32Array(256 * 64 * 4).fill(0.01), [256, 64, 2, 2]);
const b1 = tensorFrom(ctx, new Float32Array(64), [64]);
const x2 = tensorFrom(ctx, new Float32Array(128 * 128 * 64).fill(0.1), [1, 128, 128, 64]);
const w2 = tensorFrom(ctx, new Float32Array(64 * 32 * 4).fill(0.01), [64, 32, 2, 2]);
const b2 = tensorFrom(ctx, new Float32Array(32), [32]);

benchKernel({
  name: "convTranspose2d 64x64x256 -> 128x128x64",
  ctx,
  flops: 2 * 128 * 128 * 64 * 256,
  run: () => convTranspose2d(ctx, x1, w1, b1),
});
benchKernel({
  name: "convTranspose2d+gelu 128x128x64 -> 256x256x32",
  ctx,
  flops: 2 * 256 * 256 * 32 * 64,
  run: () => convTranspose2d(ctx, x2, w2, b2, { activation: "gelu" }),
});
