import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { mul } from "../../src/kernels/mul.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// Decoder-sized: 4096 tokens x 256 channels, times a per-channel [256] vector and a constant.
const n = 4096 * 256;
const a = tensorFrom(ctx, new Float32Array(n).fill(1), [4096, 256]);
const b = tensorFrom(ctx, new Float32Array(256).fill(2), [256]);
const out = tensorFrom(ctx, new Float32Array(n), [4096, 256]);
benchKernel({
  name: "mul 4096x256 * [256]",
  ctx,
  bytes: 2 * 4 * n,
  run: () => mul(ctx, a, b, out),
});
benchKernel({
  name: "mul 4096x256 * constant",
  ctx,
  bytes: 2 * 4 * n,
  run: () => mul(ctx, a, 0.5, out),
});
