/** Hiera's q-pooling at its biggest: the queries of Hiera-B+'s first stage change (stage 1's
 * 256x256 grid in 1024 windows of 8x8 -> 4x4, 224 channels read out of the fused qkv) and the
 * pooled shortcut (256x256x224 -> 128x128x224). Data movement, reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor } from "../../src/gpu/tensor.ts";
import { maxPool2x2 } from "../../src/kernels/max_pool.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const C = 224, N = 256 * 256;
const qkv = emptyTensor(ctx, [N, 3 * C], "qkv");
const qOut = emptyTensor(ctx, [1024, 16, C], "q");
benchKernel({
  name: `maxPool2x2 q of qkv: 1024 windows 8x8x${C} -> 4x4 (stride ${3 * C})`,
  ctx,
  bytes: 4 * (N * C + N * C / 4),
  run: () => maxPool2x2(ctx, qkv, { batch: 1024, h: 8, w: 8, channels: C, rowStride: 3 * C }, qOut),
});
const x = emptyTensor(ctx, [256, 256, C], "x");
const out = emptyTensor(ctx, [128, 128, C], "out");
benchKernel({
  name: `maxPool2x2 shortcut 256x256x${C} -> 128x128`,
  ctx,
  bytes: 4 * (N * C + N * C / 4),
  run: () => maxPool2x2(ctx, x, { batch: 1, h: 256, w: 256, channels: C }, out),
});
