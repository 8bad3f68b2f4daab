/** Hiera's q-pooling at its biggest: Hiera-B+'s first stage change at 1024 px. The queries
 * (stage 1's 256x256 grid as 1024 windows of 8x8, 224 channels) pooled to 4x4 per window, and
 * the shortcut (256x256x224 -> 128x128x224); plus a strided read (the q columns of a fused
 * [4096, 3 * 448] qkv, pooled over a 64x64 grid). Data movement, reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor } from "../../src/gpu/tensor.ts";
import { maxPool2x2 } from "../../src/kernels/max_pool.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const C = 224, N = 256 * 256;
const q = emptyTensor(ctx, [N, C], "q");
const qOut = emptyTensor(ctx, [1024, 16, C], "q_pooled");
benchKernel({
  name: `maxPool2x2 queries: 1024 windows 8x8x${C} -> 4x4`,
  ctx,
  bytes: 4 * (N * C + N * C / 4),
  run: () => maxPool2x2(ctx, q, { batch: 1024, h: 8, w: 8, channels: C }, qOut),
});
const x = emptyTensor(ctx, [256, 256, C], "x");
const out = emptyTensor(ctx, [128, 128, C], "out");
benchKernel({
  name: `maxPool2x2 shortcut 256x256x${C} -> 128x128`,
  ctx,
  bytes: 4 * (N * C + N * C / 4),
  run: () => maxPool2x2(ctx, x, { batch: 1, h: 256, w: 256, channels: C }, out),
});
const D = 448;
const qkv = emptyTensor(ctx, [64 * 64, 3 * D], "qkv");
const pooled = emptyTensor(ctx, [32 * 32, D], "pooled");
benchKernel({
  name: `maxPool2x2 strided q of qkv 64x64x${D} (row stride ${3 * D}) -> 32x32`,
  ctx,
  bytes: 4 * (64 * 64 * D + 32 * 32 * D),
  run: () =>
    maxPool2x2(ctx, qkv, { batch: 1, h: 64, w: 64, channels: D, rowStride: 3 * D }, pooled),
});
