import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { add } from "../../src/kernels/add.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// ViT-H MLP-sized residual: 4096 tokens x 1280 channels.
const n = 4096 * 1280;
const a = tensorFrom(ctx, new Float32Array(n).fill(1), [n]);
const b = tensorFrom(ctx, new Float32Array(n).fill(2), [n]);
const out = tensorFrom(ctx, new Float32Array(n), [n]);

benchKernel({
  name: "add 4096x1280",
  ctx,
  bytes: 3 * 4 * n,
  run: () => add(ctx, a, b, out),
});

// Broadcast: a bias / positional table [1280] over the 4096 tokens.
const row = tensorFrom(ctx, new Float32Array(1280).fill(2), [1280]);
benchKernel({
  name: "add 4096x1280 + [1280]",
  ctx,
  bytes: 2 * 4 * n,
  run: () => add(ctx, a, row, out),
});
