/**
 * The model as the automatic mask generator's `MaskSource`, with the per-mask work on the GPU.
 *
 * For a batch of N point prompts the decoder's low-res logits (N, 3, l, l) stay on the GPU:
 * SAM's postprocess (bilinear to imgSize, crop to the resized image, bilinear to the crop's
 * size; `samPostprocess`) writes the crop-sized logits a chunk of masks at a time, and
 * `maskStats` reduces each chunk to counts and boxes. Only the statistics (8 words a mask)
 * and, once the generator has chosen, the kept masks (1 bit a pixel) come back to the CPU.
 *
 * Crop-sized logits of a whole batch can be large (64 points x 3 masks of a 1200x1800 image
 * are 1.6 GB), so they are produced in chunks of at most `chunkBytes`. When one chunk holds
 * the whole batch its logits are kept and the chosen masks are packed from them; otherwise
 * the chosen masks' low-res planes are postprocessed again, straight to bits.
 *
 * The model itself comes in through `SamGpuBackend` (encoder + decoder on one GpuContext).
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, Tensor } from "../gpu/tensor.ts";
import {
  createMaskStatsBuffer,
  maskStats,
  packMasks,
  readMaskStats,
  readPackedMasks,
  unpackBits,
} from "../kernels/mask_stats.ts";
import { maskWordsPerPlane, samPostprocess } from "../kernels/resize_bilinear.ts";
import type {
  MaskBatch,
  MaskBatchRequest,
  MaskSource,
  MaskSourceImage,
  PointPrediction,
} from "./mask_source.ts";
import type { ModelFamilyName } from "../family.ts";

/** What the source needs of the model: an image encoder and a prompt decoder on the GPU. */
export interface SamGpuBackend {
  readonly ctx: GpuContext;
  /** Encoder input side (1024 for the real models). */
  readonly imgSize: number;
  /**
   * "sam2": the input is the image resized to a square (no padding), so the low-res masks
   * map onto the whole image, and min_mask_region_area is applied by the decoder to each
   * low-res mask (SAM2AutomaticMaskGenerator) instead of the generator's pass. Default "sam".
   */
  readonly family?: ModelFamilyName;
  /** Computes the embedding of an RGB image (H x W x 3) and makes it current. */
  setImage(image: { width: number; height: number; data: Uint8Array }): Promise<void>;
  /**
   * N prompts of one foreground point each, x,y in the pixels of the image last given to
   * setImage (the backend maps them to its input frame: ResizeLongestSide.apply_coords),
   * multimask output: low-res logits (N, 3, l, l) on the GPU, owned by the caller, and IoU
   * predictions (N, 3).
   */
  decodePoints(
    points: Float32Array,
    n: number,
    opts?: { minRegionArea?: number },
  ): Promise<{ lowRes: Tensor; iou: Float32Array }>;
}

export interface ModelMaskSourceOptions {
  /** Upper bound of the crop-sized logits held at once; default 256 MiB (or the binding limit). */
  chunkBytes?: number;
}

/** ResizeLongestSide.get_preprocess_shape: [h, w] with the long side `longSide`. */
export function resizedShape(h: number, w: number, longSide: number): [number, number] {
  const scale = longSide / Math.max(h, w);
  return [Math.trunc(h * scale + 0.5), Math.trunc(w * scale + 0.5)];
}

export class ModelMaskSource implements MaskSource {
  private width = 0;
  private height = 0;
  private readonly chunkBytes: number;

  constructor(readonly backend: SamGpuBackend, opts: ModelMaskSourceOptions = {}) {
    const limit = backend.ctx.device.limits.maxStorageBufferBindingSize;
    this.chunkBytes = Math.min(opts.chunkBytes ?? 256 * 2 ** 20, limit);
  }

  /** SAM 2: min_mask_region_area acts on the low-res masks, in the decoder. */
  get regionsInLowRes(): boolean {
    return this.backend.family === "sam2";
  }

  async setImage(image: MaskSourceImage): Promise<void> {
    if (!image.data) throw new Error("ModelMaskSource: the image has no pixel data");
    if (image.data.length !== image.width * image.height * 3) {
      throw new Error(
        `ModelMaskSource: ${image.data.length} bytes for an RGB image of ` +
          `${image.width}x${image.height}`,
      );
    }
    await this.backend.setImage({ width: image.width, height: image.height, data: image.data });
    this.width = image.width;
    this.height = image.height;
  }

  /**
   * The postprocess geometry of the current image: SAM's (low-res -> imgSize, crop to the
   * resized image, -> original), or SAM 2's single bilinear from the low-res side (the fused
   * kernel with an identity first stage).
   */
  private geometry(low: number) {
    const h = this.height, w = this.width;
    if (h === 0) throw new Error("ModelMaskSource: setImage first");
    const originalSize: [number, number] = [h, w];
    if (this.backend.family === "sam2") {
      return { imgSize: low, inputSize: [low, low] as [number, number], originalSize };
    }
    const imgSize = this.backend.imgSize;
    return { imgSize, inputSize: resizedShape(h, w, imgSize), originalSize };
  }

  private async decode(points: Float32Array, n: number, minRegionArea = 0) {
    if (this.height === 0) throw new Error("ModelMaskSource: setImage first");
    const out = await this.backend.decodePoints(points.subarray(0, 2 * n), n, { minRegionArea });
    const s = out.lowRes.shape;
    const geo = this.geometry(s[2]);
    if (s.length !== 4 || s[0] !== n || s[2] !== s[3] || out.iou.length !== n * s[1]) {
      throw new Error(
        `ModelMaskSource: decoder returned low-res [${s.join(", ")}] and ${out.iou.length} ` +
          `IoUs for ${n} points`,
      );
    }
    return { ...out, geo, masksPerPoint: s[1], low: s[2] };
  }

  /** All logits at the crop's size (N, 3, h, w), read back: the generator's simple path. */
  async predictPoints(points: Float32Array, n: number): Promise<PointPrediction> {
    const { lowRes, iou, geo } = await this.decode(points, n);
    try {
      const logits = samPostprocess(this.backend.ctx, lowRes, geo, "logits");
      try {
        return { masks: await logits.read(), iou };
      } finally {
        logits.destroy();
      }
    } finally {
      lowRes.destroy();
    }
  }

  async predictBatch(request: MaskBatchRequest): Promise<MaskBatch> {
    const ctx = this.backend.ctx;
    const { lowRes, iou, geo, masksPerPoint, low } = await this.decode(
      request.points,
      request.n,
      this.regionsInLowRes ? request.minMaskRegionArea ?? 0 : 0,
    );
    const [h, w] = geo.originalSize;
    const count = request.n * masksPerPoint;
    const plane = h * w, lowPlane = low * low;
    const perChunk = Math.max(1, Math.min(count, Math.floor(this.chunkBytes / (plane * 4))));
    const single = perChunk >= count;
    // samPostprocess's bits output thresholds at 0 (SAM's mask_threshold); another threshold
    // would need the logits kept, i.e. a single chunk.
    if (!single && request.maskThreshold !== 0) {
      lowRes.destroy();
      throw new Error("ModelMaskSource: chunked batches support mask threshold 0 only");
    }
    const owned: { destroy(): void }[] = [lowRes];
    const release = () => owned.splice(0).forEach((t) => t.destroy());
    try {
      const flatLow = lowRes.reshape([count, low, low]); // (N*3, l, l)
      const stats = createMaskStatsBuffer(ctx, count);
      owned.push({ destroy: () => stats.buffer.destroy() });
      const logits = emptyTensor(ctx, [perChunk, h, w], "amg.chunk_logits");
      owned.push(logits);
      const chunkLow = single ? flatLow : emptyTensor(ctx, [perChunk, low, low], "amg.chunk_low");
      if (!single) owned.push(chunkLow);
      for (let c0 = 0; c0 < count; c0 += perChunk) {
        const k = Math.min(perChunk, count - c0);
        let src = flatLow;
        if (!single) {
          ctx.copy(lowRes.buffer, c0 * lowPlane * 4, chunkLow.buffer, 0, k * lowPlane * 4);
          src = new Tensor(ctx, chunkLow.buffer, [k, low, low]);
        }
        const chunk = new Tensor(ctx, logits.buffer, [k, h, w]);
        samPostprocess(ctx, src, geo, "logits", chunk);
        maskStats(ctx, chunk, {
          maskThreshold: request.maskThreshold,
          stabilityOffset: request.stabilityScoreOffset,
          out: stats,
          firstSlot: c0,
        });
      }
      const { stability, boxes } = await readMaskStats(ctx, stats, h, w);
      const readMasks = async (indices: readonly number[]): Promise<Uint8Array[]> => {
        if (indices.length === 0) return [];
        if (single) {
          const all = new Tensor(ctx, logits.buffer, [count, h, w]);
          return await readPackedMasks(ctx, packMasks(ctx, all, indices, request.maskThreshold));
        }
        return await this.postprocessToMasks(lowRes, indices, geo, low);
      };
      return { masksPerPoint, height: h, width: w, iou, stability, boxes, readMasks, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Postprocesses the chosen masks' low-res planes again, straight to packed bits. */
  private async postprocessToMasks(
    lowRes: Tensor,
    indices: readonly number[],
    geo: ReturnType<ModelMaskSource["geometry"]>,
    low: number,
  ): Promise<Uint8Array[]> {
    const ctx = this.backend.ctx;
    const lowPlane = low * low;
    const picked = emptyTensor(ctx, [indices.length, low, low], "amg.picked_low");
    let bits: Tensor | null = null;
    try {
      indices.forEach((i, k) =>
        ctx.copy(lowRes.buffer, i * lowPlane * 4, picked.buffer, k * lowPlane * 4, lowPlane * 4)
      );
      bits = samPostprocess(ctx, picked, geo, "bits");
      const words = new Uint32Array(await ctx.read(bits.buffer, 0, bits.size * 4));
      const [h, w] = geo.originalSize;
      const perMask = maskWordsPerPlane([h, w]);
      return indices.map((_, k) => unpackBits(words, k * perMask, h * w));
    } finally {
      picked.destroy();
      bits?.destroy();
    }
  }
}
