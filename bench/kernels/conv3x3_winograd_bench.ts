/**
 * The neck's 3x3 pad-1 conv (s x s x 256 tokens -> 256) two ways, back to back: Winograd
 * F(4x4, 3x3) (input transform, 36 batched GEMMs, output transform) and im2col + GEMM.
 * FLOPs are the direct convolution's (2 * s^2 * 9 * 256 * 256) for both, so GFLOP/s compare
 * as speed. Full 64x64 grid (sam-mini and every SAM 1 ViT); on a software adapter, 32x32.
 *
 *   deno bench -A bench/kernels/conv3x3_winograd_bench.ts
 */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { conv2d } from "../../src/kernels/conv2d.ts";
import {
  conv3x3Winograd,
  winogradFilter,
  winogradScratch,
} from "../../src/kernels/conv3x3_winograd.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const s = ctx.gpu.software ? 32 : 64;
const D = 256;
const fill = (n: number) =>
  Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 200) / 100 - 1);

const tokens = tensorFrom(ctx, fill(s * s * D), [s, s, D]);
const weight = fill(D * D * 9);
const out = emptyTensor(ctx, [s, s, D]);
const flops = 2 * s * s * 9 * D * D;

const filter = winogradFilter(ctx, weight, D, D);
const need = winogradScratch(s, D, D);
const scratchV = emptyTensor(ctx, [need.v]);
const scratchM = emptyTensor(ctx, [need.m]);
benchKernel({
  name: `neck 3x3 ${s}x${s}x${D} -> ${D}: Winograd F(4x4, 3x3)`,
  ctx,
  flops,
  run: () => conv3x3Winograd(ctx, tokens, filter, { out, scratchV, scratchM }),
});

const w = tensorFrom(ctx, weight, [D, D, 3, 3]);
const cols = emptyTensor(ctx, [s * s, 9 * D]);
benchKernel({
  name: `neck 3x3 ${s}x${s}x${D} -> ${D}: im2col + GEMM`,
  ctx,
  flops,
  run: () => conv2d(ctx, tokens, "hwc", w, null, { stride: 1, padding: 1, out, scratch: cols }),
});
