/**
 * The model as the automatic mask generator's `MaskSource`, with the per-mask work on the GPU.
 *
 * For a batch of N point prompts the decoder's low-res logits (N, 3, l, l) stay on the GPU:
 * SAM's postprocess (bilinear to imgSize, crop to the resized image, bilinear to the crop's
 * size; `samPostprocess`) writes the crop-sized logits a chunk of masks at a time, and
 * `maskStats` reduces each chunk to counts and boxes, and every mask is packed to bits (1 bit
 * a pixel). The IoUs, the statistics (8 words a mask) and the bits come back to the CPU in
 * one readback per batch: a GPU round trip costs more than the bits (52 MB for 64 points x
 * 3 masks of a 1200x1800 image) take to copy, and the generator then picks its masks from
 * them without a second one.
 *
 * Crop-sized logits of a whole batch can be large (64 points x 3 masks of a 1200x1800 image
 * are 1.6 GB), so they are produced, reduced and packed in chunks of at most `chunkBytes`.
 *
 * The model itself comes in through `SamGpuBackend` (encoder + decoder on one GpuContext).
 */
import { type GpuContext, Readback } from "../gpu/context.ts";
import { emptyTensor, Tensor } from "../gpu/tensor.ts";
import {
  createMaskStatsBuffer,
  maskStats,
  packMasks,
  parseMaskStats,
  STATS_WORDS,
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
   * predictions (N, 3), on the CPU or left on the GPU (then owned by the caller and read
   * back with the batch's statistics, in the same readback).
   */
  decodePoints(
    points: Float32Array,
    n: number,
    opts?: { minRegionArea?: number },
  ): Promise<{ lowRes: Tensor; iou: Float32Array | Tensor }>;
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
    const ious = out.iou instanceof Tensor ? out.iou.size : out.iou.length;
    if (s.length !== 4 || s[0] !== n || s[2] !== s[3] || ious !== n * s[1]) {
      out.lowRes.destroy();
      if (out.iou instanceof Tensor) out.iou.destroy();
      throw new Error(
        `ModelMaskSource: decoder returned low-res [${s.join(", ")}] and ${ious} ` +
          `IoUs for ${n} points`,
      );
    }
    return { ...out, geo, masksPerPoint: s[1], low: s[2] };
  }

  /** All logits at the crop's size (N, 3, h, w), read back: the generator's simple path. */
  async predictPoints(points: Float32Array, n: number): Promise<PointPrediction> {
    const { lowRes, iou, geo } = await this.decode(points, n);
    const ctx = this.backend.ctx;
    const logits = samPostprocess(ctx, lowRes, geo, "logits");
    const gpuIou = iou instanceof Tensor ? iou : null;
    const rb = new Readback(ctx, logits.size * 4 + (gpuIou ? gpuIou.size * 4 : 0));
    for (const t of [lowRes, logits, ...(gpuIou ? [gpuIou] : [])]) rb.destroyAfterSubmit(t);
    try {
      const masks = rb.copy(logits.buffer, 0, logits.size * 4);
      const ious = gpuIou ? rb.copy(gpuIou.buffer, 0, gpuIou.size * 4) : -1;
      const data = await rb.map();
      return {
        masks: new Float32Array(data[masks]),
        iou: ious >= 0 ? new Float32Array(data[ious]) : iou as Float32Array,
      };
    } catch (err) {
      rb.discard();
      throw err;
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
    const wordsPerMask = maskWordsPerPlane([h, w]);
    const perChunk = Math.max(1, Math.min(count, Math.floor(this.chunkBytes / (plane * 4))));
    const single = perChunk >= count;
    const owned: { destroy(): void }[] = [lowRes];
    if (iou instanceof Tensor) owned.push(iou);
    const release = () => owned.splice(0).forEach((t) => t.destroy());
    // One readback for the batch: IoUs, statistics and every mask's bits (1/32 of its
    // logits), so the masks the generator keeps need no second round trip.
    const rb = new Readback(
      ctx,
      (iou instanceof Tensor ? count * 4 : 0) + count * STATS_WORDS * 4 + count * wordsPerMask * 4,
    );
    try {
      const iouRange = iou instanceof Tensor ? rb.copy(iou.buffer, 0, count * 4) : -1;
      const flatLow = lowRes.reshape([count, low, low]); // (N*3, l, l)
      const stats = createMaskStatsBuffer(ctx, count);
      owned.push({ destroy: () => stats.buffer.destroy() });
      const logits = emptyTensor(ctx, [perChunk, h, w], "amg.chunk_logits");
      owned.push(logits);
      const chunkLow = single ? flatLow : emptyTensor(ctx, [perChunk, low, low], "amg.chunk_low");
      if (!single) owned.push(chunkLow);
      const bitRanges: number[] = [];
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
        // Packed now: the next chunk overwrites these logits.
        const packed = packMasks(ctx, chunk, [...Array(k).keys()], request.maskThreshold);
        rb.destroyAfterSubmit({
          destroy: () => {
            packed.release?.();
            packed.buffer.destroy();
          },
        });
        bitRanges.push(rb.copy(packed.buffer, 0, k * wordsPerMask * 4));
      }
      const statsRange = rb.copy(stats.buffer, 0, count * STATS_WORDS * 4);
      const data = await rb.map();
      release();
      const { stability, boxes } = parseMaskStats(new Int32Array(data[statsRange]), h, w);
      const ious = iouRange >= 0 ? new Float32Array(data[iouRange]) : iou as Float32Array;
      const words = bitRanges.map((r) => new Uint32Array(data[r]));
      const readMasks = (indices: readonly number[]): Promise<Uint8Array[]> =>
        Promise.resolve(indices.map((i) => {
          if (!Number.isInteger(i) || i < 0 || i >= count) {
            throw new Error(`readMasks: mask index ${i} outside 0..${count - 1}`);
          }
          const c = Math.floor(i / perChunk);
          return unpackBits(words[c], (i - c * perChunk) * wordsPerMask, plane);
        }));
      return {
        masksPerPoint,
        height: h,
        width: w,
        iou: ious,
        stability,
        boxes,
        readMasks,
        release: () => {},
      };
    } catch (err) {
      rb.discard();
      release();
      throw err;
    }
  }
}
