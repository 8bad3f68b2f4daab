/**
 * The padded-tile attention variants ("tiledpad", "tiledpar", and "tiledsg" where the device
 * has `subgroups`) against "tiled" and "rows16w8" (the CPU-adapter default), back to back at
 * sam-mini's encoder attentions: 2 heads of 64, rel pos; windowed blocks (25 windows of
 * 14 x 14 tokens) and global blocks (4096 tokens, 64 x 64 grid). Every variant runs in two
 * rounds, interleaved, so drift on a shared host shows up as a spread between rounds.
 * On a CPU adapter run `deno bench --allow-all bench/kernels/attention_padded_bench.ts
 * --filter "gpu time"` (it prints a line per timed run: 3 per entry and round; about 9
 * minutes on llvmpipe, most of it in the global blocks).
 *
 * Measured on llvmpipe (LLVM 15.0.6, 256 bits), Deno 2.9.6, 2 cores shared with other jobs
 * (load 5), one run; GFLOP/s, median of 3 timed runs, round 1 / round 2:
 *
 *   variant    windowed 25 x 196   global 4096
 *   tiled      0.49 / 0.48         0.75 / 0.66
 *   rows16w8   1.64 / 1.71         3.35 / 2.38
 *   tiledpad   0.60 / 0.60         0.69 / 0.66
 *   tiledpar   0.60 / 0.58         0.69 / 0.72
 *
 * On llvmpipe the padded tiles gain about 20% over tiled on the windows (200 computed query
 * rows per window instead of 224, and no loads for the padded ones) and nothing measurable
 * on the global blocks (4096 = 128 x 32: no padded rows); the parallel softmax neither wins
 * nor loses there (its two extra barriers per key tile cost about what the 64-thread exp
 * saves). rows16w8 stays the CPU default, 3-4x ahead. The padded variants are for GPUs,
 * where `deno task tune` decides.
 */
import { getContext } from "../../src/gpu/context.ts";
import { tensorFrom } from "../../src/gpu/tensor.ts";
import { attention, type AttentionDims } from "../../src/kernels/attention.ts";
import { relPosBias } from "../../src/kernels/rel_pos.ts";
import { benchKernel } from "../util.ts";

const ctx = await getContext();
const VARIANTS = [
  "tiled",
  "rows16w8",
  "tiledpad",
  "tiledpar",
  ...(ctx.gpu.hasSubgroups ? ["tiledsg"] : []),
];

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + seed) * 0.5;
  return a;
}

/** sam-mini's attention: fused qkv [batch, n, 3C], 2 heads of 64, rel pos on side x side. */
function samMini(label: string, batch: number, side: number) {
  const heads = 2, headDim = 64, n = side * side, C = heads * headDim;
  const qkv = tensorFrom(ctx, fill(batch * n * 3 * C, 1), [batch, n, 3 * C]);
  const dims: AttentionDims = { batch, heads, headDim, nq: n, nk: n };
  const view = (part: number) => ({ tensor: qkv, offset: part * C, rowStride: 3 * C });
  const rh = tensorFrom(ctx, fill(side * side * headDim, 2), [side, side, headDim]);
  const rw = tensorFrom(ctx, fill(side * side * headDim, 3), [side, side, headDim]);
  const relPos = relPosBias(ctx, view(0), dims, side, side, rh, rw, side, side);
  const out = tensorFrom(ctx, new Float32Array(batch * n * C), [batch, n, C]);
  for (const round of [1, 2]) {
    for (const variant of VARIANTS) {
      benchKernel({
        name:
          `sam-mini ${label} ${batch}x${n} tokens, 2 x 64, rel pos: ${variant} (round ${round})`,
        group: label,
        ctx,
        flops: 4 * batch * heads * n * n * headDim,
        run: () => attention(ctx, view(0), view(1), view(2), dims, { relPos, out, variant }),
      });
    }
  }
}

samMini("windowed", 25, 14);
samMini("global", 1, 64);
