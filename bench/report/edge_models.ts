/**
 * The light SAM encoders at their released shapes (#18), for timing with random weights
 * (speed does not depend on the values): MobileSAM's TinyViT-5M and SlimSAM-77-uniform's
 * 12-block ViT (width 168, 12 heads of 14, MLP 696), both with SAM's 256-wide neck.
 */
import type { GpuContext } from "../../src/gpu/context.ts";
import { type TinyVitArch, tinyVitExpectedShapes } from "../../src/mobile_sam/arch.ts";
import { TinyVitEncoder } from "../../src/mobile_sam/tiny_vit.ts";
import { ImageEncoder } from "../../src/encoder/image_encoder.ts";
import { expectedShapes, OFFICIAL_ARCHS } from "../../src/weights/arch.ts";
import type { SamArch, StateDict } from "../../src/weights/types.ts";
import type { EmbeddingEncoder } from "./ours.ts";

/** TinyViT-5M as MobileSAM's build_sam_vit_t() makes it. */
export const TINYVIT_5M: TinyVitArch = (() => {
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

/** SlimSAM-77-uniform's encoder: ViT-B's depth, windows and neck at its pruned widths. */
export const SLIMSAM_77: SamArch = {
  ...OFFICIAL_ARCHS.vit_b,
  embedDim: 168,
  numHeads: 12,
  encoderMlpDim: 696,
};

/** Small random values; norm and BatchNorm scales and variances near 1. */
export function randomEdgeWeights(shapes: Iterable<[string, readonly number[]]>): StateDict {
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

/** MobileSAM's encoder (TinyViT-5M and a 256-wide neck) with random weights. */
export function randomMobileSamEncoder(ctx: GpuContext): EmbeddingEncoder {
  const tvShapes = [...tinyVitExpectedShapes(TINYVIT_5M)]
    .filter(([, s]) => s.dtype !== "int64")
    .map(([n, s]) => [n, s.shape] as [string, number[]]);
  const last = TINYVIT_5M.stages[TINYVIT_5M.stages.length - 1].dim;
  const neck = [...expectedShapes(OFFICIAL_ARCHS.vit_b)]
    .filter(([n]) => n.startsWith("image_encoder.neck."))
    .map(([n, s]) =>
      [n, n === "image_encoder.neck.0.weight" ? [256, last, 1, 1] : s] as [string, number[]]
    );
  return TinyVitEncoder.fromStateDict(ctx, randomEdgeWeights([...tvShapes, ...neck]), {
    ...OFFICIAL_ARCHS.vit_b,
    imgSize: TINYVIT_5M.imgSize,
  });
}

/** SlimSAM-77's encoder with random weights. */
export function randomSlimSam77Encoder(ctx: GpuContext): EmbeddingEncoder {
  const shapes = [...expectedShapes(SLIMSAM_77)].filter(([n]) => n.startsWith("image_encoder."));
  return ImageEncoder.fromStateDict(ctx, randomEdgeWeights(shapes), SLIMSAM_77);
}
