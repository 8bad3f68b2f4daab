/**
 * Where the automatic mask generator gets its masks: the model (through a predictor) in the
 * application, a synthetic stand-in in tests.
 *
 * A source has two levels:
 *
 * - `predictPoints` (required) returns raw logits for a batch of point prompts. The generator
 *   then computes everything it needs on the CPU (`maskBatchFromLogits`): stability scores,
 *   boxes, and the binary masks it keeps. Simple, and what the official code does.
 * - `predictBatch` (optional) lets a source do that work itself, e.g. on the GPU next to the
 *   logits: it returns per-mask statistics (IoU prediction, stability score, box) for the
 *   whole batch, and reads back only the binary masks the generator decides to keep
 *   (`readMasks`). The generator applies the official filters (IoU, stability, crop edge) to
 *   those statistics itself, so a source never decides what is kept; the request carries the
 *   thresholds only so that a source can skip work for masks that are bound to be dropped.
 *   Its statistics must follow `logitMaskStats` (strict > against float32 thresholds, exact
 *   integer counts, float32 ratio) so that both paths keep the same masks. `predictPoints`
 *   holds a whole batch of logits (points_per_batch * 3 * h * w floats); this path need not.
 *
 * Both levels see the same prompts: N points, one foreground point per prompt, multimask
 * output (3 masks a point), in the pixel frame of the image last given to `setImage` (the
 * crop), and return masks at that image's size. A model-backed source maps the points to its
 * input frame itself (ResizeLongestSide, as SamPredictor.transform.apply_coords).
 */
import { logitMaskStats, thresholdMask } from "./utils.ts";

export interface MaskSourceImage {
  width: number;
  height: number;
  /** RGB, row-major H x W x 3; absent for sources that do not look at pixels. */
  data?: Uint8Array;
}

export interface PointPrediction {
  /** Logits (N, 3, h, w) at the crop's size. */
  masks: Float32Array;
  /** Predicted IoUs (N, 3). */
  iou: Float32Array;
}

export interface MaskBatchRequest {
  /**
   * (N, 2) x,y in the crop's pixel frame. float32: the official keeps grid points in float64
   * until the prompt encoder casts its normalised coordinates to float32; grids of a power of
   * two points a side (16, 32, 64) on integer crop sizes are exact in float32 anyway.
   */
  points: Float32Array;
  n: number;
  /** Logit threshold of a mask (the model's mask_threshold, 0.0). */
  maskThreshold: number;
  /** Masks with IoU prediction not above this (when > 0) will be dropped. */
  predIouThresh: number;
  /** Masks with stability below this (when > 0) will be dropped. */
  stabilityScoreThresh: number;
  /** Offset of the two thresholds of the stability score. */
  stabilityScoreOffset: number;
  /**
   * min_mask_region_area, for sources with `regionsInLowRes` (SAM 2): holes and islands of at
   * most this many pixels are removed from each low-res mask before upscaling.
   */
  minMaskRegionArea?: number;
}

/**
 * Statistics of the N * masksPerPoint masks of one batch, mask j of point i at index
 * i * masksPerPoint + j. `stability` and `boxes` must be exact for every mask that passes
 * the IoU filter; for the others they may hold anything (NaN, zeros).
 */
export interface MaskBatch {
  masksPerPoint: number;
  height: number;
  width: number;
  /** float32 IoU predictions. */
  iou: Float32Array;
  /** float32 stability scores (see calculateStabilityScore). */
  stability: Float32Array;
  /** XYXY boxes (inclusive extreme pixels) of logits > maskThreshold; [0,0,0,0] if empty. */
  boxes: Int32Array;
  /** Binary masks (h*w, row-major, 0/1) of the given mask indices, in that order. */
  readMasks(indices: readonly number[]): Promise<Uint8Array[]>;
  /** Frees what the batch holds (GPU buffers); called once the generator is done with it. */
  release?(): void;
}

export interface MaskSource {
  /**
   * True when the source applies min_mask_region_area itself, to each low-res mask (SAM 2's
   * predictor), so the generator skips its own pass (SAM2AutomaticMaskGenerator has none).
   */
  readonly regionsInLowRes?: boolean;
  /** Sets the (cropped) image the following predictions refer to; computes its embedding in the real model. */
  setImage(image: MaskSourceImage): Promise<void>;
  /** Points (N,2) x,y in the crop's own pixel frame; one foreground point per prompt, multimask.
   *  Returns logits at the crop's size (N, 3, h, w) and IoU predictions (N, 3). */
  predictPoints(points: Float32Array, n: number): Promise<PointPrediction>;
  /** Optional: statistics for a batch, masks read lazily (see the module comment). */
  predictBatch?(request: MaskBatchRequest): Promise<MaskBatch>;
}

/**
 * The CPU path: statistics and lazy masks from logits (N, m, h, w) and IoUs (N, m). The
 * stability score and box are computed (in one pass) only for masks that pass the IoU
 * filter, as the official computes them only after filtering.
 */
export function maskBatchFromLogits(
  prediction: PointPrediction,
  request: MaskBatchRequest,
  height: number,
  width: number,
): MaskBatch {
  const { masks, iou } = prediction;
  const n = request.n;
  const count = iou.length;
  const masksPerPoint = count / n;
  const plane = height * width;
  if (!Number.isInteger(masksPerPoint) || masks.length !== count * plane) {
    throw new Error(
      `mask source returned ${masks.length} logits and ${count} IoUs for ${n} points at ` +
        `${height}x${width}; expected (N, m, h, w) and (N, m)`,
    );
  }
  const iouThresh = Math.fround(request.predIouThresh);
  const stability = new Float32Array(count).fill(NaN);
  const boxes = new Int32Array(count * 4);
  for (let i = 0; i < count; i++) {
    if (request.predIouThresh > 0 && !(iou[i] > iouThresh)) continue;
    const stats = logitMaskStats(
      masks,
      i * plane,
      height,
      width,
      request.maskThreshold,
      request.stabilityScoreOffset,
    );
    stability[i] = stats.stability;
    boxes.set(stats.box, i * 4);
  }
  return {
    masksPerPoint,
    height,
    width,
    iou,
    stability,
    boxes,
    readMasks: (indices) =>
      Promise.resolve(
        indices.map((i) => thresholdMask(masks, i * plane, plane, request.maskThreshold)),
      ),
  };
}

/** Runs one batch through the source's richest path. */
export async function predictMaskBatch(
  source: MaskSource,
  request: MaskBatchRequest,
  height: number,
  width: number,
): Promise<MaskBatch> {
  const batch = source.predictBatch ? await source.predictBatch(request) : maskBatchFromLogits(
    await source.predictPoints(request.points, request.n),
    request,
    height,
    width,
  );
  if (batch.height !== height || batch.width !== width) {
    throw new Error(
      `mask source returned masks of ${batch.height}x${batch.width} for a ${height}x${width} crop`,
    );
  }
  const count = request.n * batch.masksPerPoint;
  if (
    batch.iou.length !== count || batch.stability.length !== count ||
    batch.boxes.length !== count * 4
  ) {
    throw new Error(`mask source returned statistics of the wrong length for ${count} masks`);
  }
  return batch;
}
