import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { resizeBilinear, samPostprocess } from "../../src/kernels/resize_bilinear.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// Three 256x256 low-res mask planes of a real model, to a 1200x1800 (H x W) photo.
const low = tensorFrom(ctx, new Float32Array(3 * 256 * 256).fill(0.5), [3, 256, 256]);
const geo = {
  imgSize: 1024,
  inputSize: [683, 1024] as [number, number],
  originalSize: [1200, 1800] as [number, number],
};
const pixels = 3 * 1200 * 1800;

benchKernel({
  name: "resizeBilinear 3x256x256 -> 3x1024x1024",
  ctx,
  bytes: 4 * (3 * 256 * 256 + 3 * 1024 * 1024),
  run: () => resizeBilinear(ctx, low, 1024, 1024),
});
benchKernel({
  name: "samPostprocess logits 3x256x256 -> 3x1200x1800",
  ctx,
  bytes: 4 * pixels,
  run: () => samPostprocess(ctx, low, geo, "logits"),
});
benchKernel({
  name: "samPostprocess bits 3x256x256 -> 3x1200x1800",
  ctx,
  bytes: pixels / 8,
  run: () => samPostprocess(ctx, low, geo, "bits"),
});
