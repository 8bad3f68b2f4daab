/**
 * conv2d (im2col + linear) on the encoder's shapes: ViT-B's patch embedding (3x1024x1024 CHW,
 * 16x16 stride 16, 768 out), the neck's 3x3 pad-1 conv (64x64x256 HWC, 256 out) and SAM 2.1
 * Hiera-B+'s patch embedding (7x7 stride 4 pad 3, 112 out: K = 147 over 256x256 tokens). On a
 * software adapter (llvmpipe, ~0.1-1 GFLOP/s: about 5 GFLOP each would take minutes per run)
 * the images are cut to 64 output rows' worth of tokens (1/8 of the height for the patch
 * embedding, an 8x8 grid for the neck): the same kernels, channels and K.
 */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { conv2d } from "../../src/kernels/conv2d.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const software = ctx.gpu.software;
// Patch embedding input height and neck grid side.
const imageH = software ? 128 : 1024;
const grid = software ? 8 : 64;
const fill = (n: number) =>
  Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 200) / 100 - 1);

const image = tensorFrom(ctx, fill(3 * imageH * 1024), [3, imageH, 1024]);
const patches = (imageH / 16) * 64;
const patchW = tensorFrom(ctx, fill(768 * 3 * 16 * 16), [768, 3, 16, 16]);
const patchB = tensorFrom(ctx, fill(768), [768]);
const patchOut = emptyTensor(ctx, [imageH / 16, 64, 768]);
const patchCols = emptyTensor(ctx, [patches, 768]);
benchKernel({
  name: `conv2d patch embed 3x${imageH}x1024 -> ${imageH / 16}x64x768 (16x16/16)`,
  ctx,
  flops: 2 * patches * 768 * 768,
  run: () =>
    conv2d(ctx, image, "chw", patchW, patchB, {
      stride: 16,
      padding: 0,
      out: patchOut,
      scratch: patchCols,
    }),
});

const tokens = tensorFrom(ctx, fill(grid * grid * 256), [grid, grid, 256]);
const neckW = tensorFrom(ctx, fill(256 * 256 * 9), [256, 256, 3, 3]);
const neckOut = emptyTensor(ctx, [grid, grid, 256]);
const neckCols = emptyTensor(ctx, [grid * grid, 2304]);
benchKernel({
  name: `conv2d neck 3x3 pad 1, ${grid}x${grid}x256 -> 256`,
  ctx,
  flops: 2 * grid * grid * 2304 * 256,
  run: () =>
    conv2d(ctx, tokens, "hwc", neckW, null, {
      stride: 1,
      padding: 1,
      out: neckOut,
      scratch: neckCols,
    }),
});

// Hiera-B+ patch embedding, the same cut of the image height on a software adapter.
const hieraRows = imageH / 4;
const hieraW = tensorFrom(ctx, fill(112 * 3 * 7 * 7), [112, 3, 7, 7]);
const hieraB = tensorFrom(ctx, fill(112), [112]);
const hieraOut = emptyTensor(ctx, [hieraRows, 256, 112]);
const hieraCols = emptyTensor(ctx, [hieraRows * 256, 147]);
benchKernel({
  name: `conv2d Hiera patch embed 3x${imageH}x1024 -> ${hieraRows}x256x112 (7x7/4 pad 3)`,
  ctx,
  flops: 2 * hieraRows * 256 * 147 * 112,
  run: () =>
    conv2d(ctx, image, "chw", hieraW, hieraB, {
      stride: 4,
      padding: 3,
      out: hieraOut,
      scratch: hieraCols,
    }),
});
