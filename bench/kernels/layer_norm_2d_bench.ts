import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { layerNorm2d } from "../../src/kernels/layer_norm_2d.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// The encoder neck's LayerNorm2d: (1, 256, 64, 64).
const shape = [1, 256, 64, 64];
const n = 256 * 64 * 64;
const x = tensorFrom(ctx, new Float32Array(n).fill(1), shape);
const w = tensorFrom(ctx, new Float32Array(256).fill(1), [256]);
const b = tensorFrom(ctx, new Float32Array(256), [256]);
const out = tensorFrom(ctx, new Float32Array(n), shape);
benchKernel({
  name: "layerNorm2d 1x256x64x64",
  ctx,
  bytes: 2 * 4 * n, // one read, one write (the kernel reads x three times, mostly from cache)
  run: () => layerNorm2d(ctx, x, w, b, 1e-6, out),
});
