/** SAM 2.1's rotary encoding at 1024 px (64x64 grid, 1 head of 256): the memory attention's
 * queries (4096 rows) and its keys over 7 memory frames + 16 object pointers of 4 tokens
 * (64 rows copied unrotated). Memory-bound: reported in GB/s. */
import { getContext } from "../../src/gpu/context.ts";
import { emptyTensor, tensorFrom } from "../../src/gpu/tensor.ts";
import { applyAxialRope, createRopeTable } from "../../src/kernels/rope_axial.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const D = 256, grid = 64 * 64;
const table = createRopeTable(ctx, D, 64, 64);
const cases = [
  ["queries 4096x256", grid, grid],
  ["memory keys 7x4096+64 rows x256", 7 * grid + 64, 7 * grid],
] as const;
for (const [label, rows, ropeRows] of cases) {
  const x = tensorFrom(ctx, new Float32Array(rows * D).fill(0.5), [rows, D]);
  const out = emptyTensor(ctx, [rows, D]);
  benchKernel({
    name: `applyAxialRope ${label}`,
    ctx,
    bytes: 4 * (2 * rows * D + grid * D),
    flops: 6 * ropeRows * (D / 2),
    run: () => applyAxialRope(ctx, x, table, { heads: 1, ropeRows, out }),
  });
}
