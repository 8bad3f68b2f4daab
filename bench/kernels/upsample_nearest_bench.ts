/** SAM 2's FPN top-down step at real size: level 3 (32x32x256) upsampled to 64x64 and added
 * to level 2's lateral features, and the upsample alone. Data movement, reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor } from "../../src/gpu/tensor.ts";
import { upsampleNearest2x } from "../../src/kernels/upsample_nearest.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const C = 256;
const prev = emptyTensor(ctx, [32, 32, C], "prev");
const lateral = emptyTensor(ctx, [64, 64, C], "lateral");
const out = emptyTensor(ctx, [64, 64, C], "out");
benchKernel({
  name: `upsampleNearest2x 32x32x${C} -> 64x64`,
  ctx,
  bytes: 4 * (32 * 32 * C + 64 * 64 * C),
  run: () => upsampleNearest2x(ctx, prev, { out }),
});
benchKernel({
  name: `upsampleNearest2x + lateral 32x32x${C} -> 64x64`,
  ctx,
  bytes: 4 * (32 * 32 * C + 2 * 64 * 64 * C),
  run: () => upsampleNearest2x(ctx, prev, { addend: lateral, out }),
});
