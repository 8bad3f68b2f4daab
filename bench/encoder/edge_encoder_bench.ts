/**
 * Light encoders at their released shapes with random weights (speed does not depend on the
 * values): MobileSAM's TinyViT-5M and SlimSAM-77-uniform's 12-block ViT (width 168, 12 heads
 * of 14, MLP 696), both with SAM's 256-wide neck. Prints ms and GFLOP/s in official FLOPs
 * (a multiply-add = 2; matrix products and convolutions as the official code runs them, the
 * zero-padded window rows included); SlimSAM's count is bench/report/flops.ts's flopsEncoder.
 *
 *   deno bench -A bench/encoder/edge_encoder_bench.ts
 *
 * On a software adapter each runs once (a pass takes minutes on llvmpipe).
 */
import { ImageEncoder } from "../../src/encoder/image_encoder.ts";
import type { SamImageEncoder } from "../../src/encoder/encoder.ts";
import { getContext } from "../../src/gpu/context.ts";
import { type TinyVitArch, tinyVitExpectedShapes } from "../../src/mobile_sam/arch.ts";
import { TinyVitEncoder } from "../../src/mobile_sam/tiny_vit.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import type { SamArch, StateDict } from "../../src/weights/types.ts";
import { flopsEncoder } from "../report/flops.ts";
import { isSoftwareAdapter } from "../report/measure.ts";

const ctx = await getContext();
const software = isSoftwareAdapter(ctx.gpu.description);

/** TinyViT-5M as build_sam_vit_t() makes it. */
const TINYVIT_5M: TinyVitArch = (() => {
  const dims = [64, 128, 160, 320], heads = [0, 4, 5, 10], windows = [0, 7, 14, 7];
  const depths = [2, 2, 6, 2], grids = [256, 128, 64, 64];
  return {
    imgSize: 1024,
    stemDim: 32,
    neckDim: 256,
    outGrid: 64,
    stages: dims.map((dim, i) => ({
      dim,
      depth: depths[i],
      grid: grids[i],
      mbconvHidden: i === 0 ? 4 * dim : 0,
      heads: heads[i],
      window: windows[i],
      mlpDim: i === 0 ? 0 : 4 * dim,
      localConv: i === 0 ? 0 : 3,
      downsample: i < 3
        ? { outDim: dims[i + 1], stride: grids[i + 1] === grids[i] ? 1 : 2, outGrid: grids[i + 1] }
        : null,
    })),
  };
})();

/** Official FLOPs of a TinyViT encoder pass and SAM's neck. */
function flopsTinyVit(tv: TinyVitArch): number {
  const S = tv.imgSize, h1 = S / 2, g0 = S / 4;
  let f = 2 * h1 * h1 * tv.stemDim * 27 + 2 * g0 * g0 * tv.stages[0].dim * 9 * tv.stemDim;
  for (const s of tv.stages) {
    const T = s.grid * s.grid, C = s.dim;
    if (s.mbconvHidden) f += s.depth * (2 * T * (2 * C * s.mbconvHidden + 9 * s.mbconvHidden));
    if (s.heads) {
      const padded = Math.ceil(s.grid / s.window) * s.window;
      const rows = padded * padded, L = s.window * s.window;
      const perBlock = 2 * rows * C * 3 * C + // qkv on the padded windows
        2 * 2 * rows * L * C + // q k^T and attn @ v
        2 * rows * C * C + // proj
        2 * T * C * s.localConv * s.localConv + // local conv
        2 * 2 * T * C * s.mlpDim; // fc1 + fc2
      f += s.depth * perBlock;
    }
    if (s.downsample) {
      const o = s.downsample.outDim, To = s.downsample.outGrid ** 2;
      f += 2 * T * C * o + 2 * To * o * 9 + 2 * To * o * o;
    }
  }
  const last = tv.stages[tv.stages.length - 1].dim, T = tv.outGrid ** 2, D = tv.neckDim;
  return f + 2 * T * last * D + 2 * T * D * D * 9;
}

/** A deterministic normalised (3, S, S) input. */
function encoderInput(size: number): Float32Array {
  const a = new Float32Array(3 * size * size);
  for (let i = 0; i < a.length; i++) a[i] = ((i * 2654435761) % 1000) / 500 - 1;
  return a;
}

/** Small random values; norm and BatchNorm scales and variances near 1. */
function randomWeights(shapes: Iterable<[string, readonly number[]]>): StateDict {
  const sd: StateDict = new Map();
  let s = 12345;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const one = /(norm\d?|norm_head|bn|neck\.[13])\.weight$|running_var$/.test(name);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      data[i] = (one ? 1 : 0) + ((s >>> 8) / 2 ** 24 - 0.5) * 0.04;
    }
    sd.set(name, { name, dtype: "float32", shape: [...shape], bytes: new Uint8Array(data.buffer) });
  }
  return sd;
}

const SLIMSAM_77: SamArch = {
  ...OFFICIAL_ARCHS.vit_b,
  embedDim: 168,
  numHeads: 12,
  encoderMlpDim: 696,
};

function bench(name: string, flops: number, make: () => SamImageEncoder) {
  let encoder: SamImageEncoder | null = null;
  let runs = 0;
  const input = encoderInput(1024);
  Deno.bench({
    name,
    group: "edge encoders",
    n: software ? 1 : 10,
    warmup: software ? 0 : 2,
    async fn(t) {
      // Deno calls a bench at least 3 times; on a software adapter only the first measures.
      if (software && runs++ > 0) return;
      encoder ??= make();
      t.start();
      const t0 = performance.now();
      const out = encoder.encode(input);
      await ctx.sync();
      out.destroy();
      const ms = performance.now() - t0;
      t.end();
      console.log(
        `${name}: ${ms.toFixed(0)} ms, ${(flops / 1e9).toFixed(1)} GFLOP, ` +
          `${(flops / 1e6 / ms).toFixed(2)} GFLOP/s on ${ctx.gpu.description}`,
      );
    },
  });
  addEventListener("unload", () => (encoder as SamImageEncoder | null)?.dispose());
}

const tvShapes = [...tinyVitExpectedShapes(TINYVIT_5M)]
  .filter(([, s]) => s.dtype !== "int64")
  .map(([n, s]) => [n, s.shape] as [string, number[]]);
const neck = [...expectedShapes(OFFICIAL_ARCHS.vit_b)]
  .filter(([n]) => n.startsWith("image_encoder.neck."))
  .map(([n, s]) =>
    [n, n === "image_encoder.neck.0.weight" ? [256, 320, 1, 1] : s] as [string, number[]]
  );
bench(
  "MobileSAM encoder (TinyViT-5M, 1024 px)",
  flopsTinyVit(TINYVIT_5M),
  () =>
    TinyVitEncoder.fromStateDict(ctx, randomWeights([...tvShapes, ...neck]), {
      ...OFFICIAL_ARCHS.vit_b,
      imgSize: 1024,
    }),
);
bench(
  "SlimSAM-77 encoder (ViT 168 wide, 12 blocks, 1024 px)",
  flopsEncoder(SLIMSAM_77),
  () =>
    ImageEncoder.fromStateDict(
      ctx,
      randomWeights(
        [...expectedShapes(SLIMSAM_77)].filter(([n]) => n.startsWith("image_encoder.")),
      ),
      SLIMSAM_77,
    ),
);
