/** SAM's window partition / unpartition on the 64x64 grid with window 14 (padded to 70x70),
 * at ViT-B and ViT-H widths: pure data movement, reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { windowPartition, windowUnpartition } from "../../src/kernels/window.ts";
import { benchKernel } from "../util.ts";
import type { Tensor } from "../../src/gpu/tensor.ts";

/** The kernels allocate their output: free the previous run's (synced by then) each run. */
function freeingPrevious(f: () => Tensor): () => void {
  let last: Tensor | null = null;
  return () => {
    last?.destroy();
    last = f();
  };
}

const ctx = await getContext();
for (const [label, C] of [["ViT-B", 768], ["ViT-H", 1280]] as const) {
  const x = tensorFrom(ctx, new Float32Array(64 * 64 * C).fill(1), [64, 64, C]);
  const windows = windowPartition(ctx, x, 14); // [25, 196, C]
  const padded = 70 * 70 * C;
  benchKernel({
    name: `windowPartition ${label} 64x64x${C} win 14`,
    ctx,
    bytes: 4 * (64 * 64 * C + padded),
    run: freeingPrevious(() => windowPartition(ctx, x, 14)),
  });
  benchKernel({
    name: `windowUnpartition ${label} 25x196x${C} -> 64x64`,
    ctx,
    bytes: 4 * 2 * 64 * 64 * C,
    run: freeingPrevious(() => windowUnpartition(ctx, windows, 14, 64, 64)),
  });
}
