import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { createMaskStatsBuffer, maskStats, packMasks } from "../../src/kernels/mask_stats.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
// One chunk of an AMG batch on a 600x900 image (truck.jpg at half size): 48 masks of logits.
const n = 48, h = 600, w = 900;
const logits = new Float32Array(n * h * w);
for (let i = 0; i < logits.length; i++) logits[i] = Math.sin(i * 0.001) * 3;
const t = tensorFrom(ctx, logits, [n, h, w]);
const stats = createMaskStatsBuffer(ctx, n);

benchKernel({
  name: `mask_stats ${n}x${h}x${w}`,
  ctx,
  bytes: 4 * n * h * w,
  // Slots accumulate: the timing is the kernel's; the values are not read.
  run: () => maskStats(ctx, t, { maskThreshold: 0, stabilityOffset: 1, out: stats }),
});

const kept = [0, 5, 9, 17, 21, 30, 33, 47];
benchKernel({
  name: `packMasks ${kept.length} of ${n}x${h}x${w}`,
  ctx,
  bytes: 4 * kept.length * h * w * (1 + 1 / 32),
  run: () => {
    const packed = packMasks(ctx, t, kept, 0);
    // Freed once the GPU has run it (benchKernel syncs right after run).
    void ctx.device.queue.onSubmittedWorkDone().then(() => {
      packed.release?.();
      packed.buffer.destroy();
    });
  },
});
