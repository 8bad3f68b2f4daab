/**
 * 3x3 convolution, stride 1, padding 1, no bias, by Winograd F(4x4, 3x3): the input
 * transform (winograd_input.ts), 36 batched GEMMs [T, C] x [D, C]^T (matmul.ts, tuned per
 * shape like any GEMM), the output transform (winograd_output.ts). Token-major [s, s, C] in,
 * [s, s, D] out, as SAM's neck works. 2.25x fewer multiplications than the 3x3 im2col GEMM
 * (36 products per 16 outputs instead of 9 per output), and no unfolded [s*s, 9C] copy.
 *
 * The filter is transformed once, on the CPU at load (`winogradFilter`): U[e] = G g G^T
 * for each tile element e, stored [36, D, C] so that each GEMM reads it as a linear weight.
 * The transforms' coefficients (at most 8 in A^T, 1/24 in G) cost a few float32 ulps, far
 * below the goldens' tolerance; tests/kernels/conv3x3_winograd_test.ts checks against a
 * float64 direct convolution.
 */
import type { GpuContext } from "../gpu/context.ts";
import { Tensor, tensorFrom } from "../gpu/tensor.ts";
import { matmul } from "./matmul.ts";
import { winogradInput, winogradTiles } from "./winograd_input.ts";
import { winogradOutput } from "./winograd_output.ts";

/** G of F(4x4, 3x3): the 6 tile elements of a 3-tap filter. */
export const WINOGRAD_G = [
  [1 / 4, 0, 0],
  [-1 / 6, -1 / 6, -1 / 6],
  [-1 / 6, 1 / 6, -1 / 6],
  [1 / 24, 1 / 12, 1 / 6],
  [1 / 24, -1 / 12, 1 / 6],
  [0, 0, 1],
];

/**
 * PyTorch's 3x3 weight [D, C, 3, 3] (row-major) -> U [36, D, C], U[6i+j, d, c] =
 * sum_ab G[i][a] w[d, c, a, b] G[j][b], computed in float64.
 */
export function winogradFilterHost(w: Float32Array, D: number, C: number): Float32Array {
  if (w.length !== D * C * 9) {
    throw new Error(`winogradFilter: weight has ${w.length} elements, need ${D} x ${C} x 3 x 3`);
  }
  const u = new Float32Array(36 * D * C);
  const gw = new Float64Array(18); // G w: [6, 3]
  for (let d = 0; d < D; d++) {
    for (let c = 0; c < C; c++) {
      const o = (d * C + c) * 9;
      for (let i = 0; i < 6; i++) {
        for (let b = 0; b < 3; b++) {
          const g = WINOGRAD_G[i];
          gw[i * 3 + b] = g[0] * w[o + b] + g[1] * w[o + 3 + b] + g[2] * w[o + 6 + b];
        }
      }
      for (let i = 0; i < 6; i++) {
        for (let j = 0; j < 6; j++) {
          const g = WINOGRAD_G[j];
          const v = gw[i * 3] * g[0] + gw[i * 3 + 1] * g[1] + gw[i * 3 + 2] * g[2];
          u[((i * 6 + j) * D + d) * C + c] = v;
        }
      }
    }
  }
  return u;
}

/** Uploads the transformed filter of a [D, C, 3, 3] weight as a [36, D, C] tensor. */
export function winogradFilter(
  ctx: GpuContext,
  w: Float32Array,
  D: number,
  C: number,
  label = "winograd.filter",
): Tensor {
  return tensorFrom(ctx, winogradFilterHost(w, D, C), [36, D, C], label);
}

/** Elements of each scratch (`v`: the transformed input, `m`: the products) for s, C, D. */
export function winogradScratch(s: number, C: number, D: number): { v: number; m: number } {
  const tiles = winogradTiles(s) ** 2;
  return { v: 36 * tiles * C, m: 36 * tiles * D };
}

export interface Conv3x3WinogradOptions {
  /** [s, s, D] result. */
  out: Tensor;
  /** At least winogradScratch(...).v and .m elements, in two different buffers. */
  scratchV: Tensor;
  scratchM: Tensor;
}

/** x: [s, s, C]; filter: winogradFilter's [36, D, C]. Returns [s, s, D] in opts.out. */
export function conv3x3Winograd(
  ctx: GpuContext,
  x: Tensor,
  filter: Tensor,
  opts: Conv3x3WinogradOptions,
): Tensor {
  const [s, , C] = x.shape;
  const [e, D, Cf] = filter.shape;
  if (filter.shape.length !== 3 || e !== 36 || Cf !== C) {
    throw new Error(`conv3x3Winograd: filter [${filter.shape}] must be [36, D, ${C}]`);
  }
  const tiles = winogradTiles(s) ** 2;
  const need = winogradScratch(s, C, D);
  if (opts.scratchV.size < need.v || opts.scratchM.size < need.m) {
    throw new Error(
      `conv3x3Winograd: scratch of ${opts.scratchV.size} / ${opts.scratchM.size} elements, ` +
        `need ${need.v} / ${need.m}`,
    );
  }
  if (opts.scratchV.buffer === opts.scratchM.buffer) {
    throw new Error("conv3x3Winograd: scratchV and scratchM must be different buffers");
  }
  // [36, T, C]: tile element e of every tile, channels last.
  const v = winogradInput(ctx, x, new Tensor(ctx, opts.scratchV.buffer, [36, tiles, C]));
  // 36 GEMMs: [36, T, C] x [36, D, C]^T -> [36, T, D].
  const m = matmul(ctx, v, filter, {
    transposeB: true,
    out: new Tensor(ctx, opts.scratchM.buffer, [36, tiles, D]),
  });
  return winogradOutput(ctx, m, s, D, opts.out);
}
