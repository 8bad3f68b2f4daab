/** Every bound the server enforces, in one place; each has a default and a flag or field. */
export interface Limits {
  /** Largest request body of an image upload (raw or multipart), bytes. */
  maxUploadBytes: number;
  /** Largest JSON request body, bytes. */
  maxJsonBytes: number;
  /** Largest decoded image, width * height; checked from the PNG/JPEG header before decoding. */
  maxPixels: number;
  /** Largest side of an image, pixels. */
  maxSide: number;
  /** Points in one prompt. */
  maxPoints: number;
  /** Boxes in one batched request. */
  maxBoxes: number;
  /** How far outside the image a point or box corner may lie, as a fraction of the longer side. */
  coordMargin: number;
  /** Requests waiting for the GPU queue (one more runs). */
  maxQueue: number;
  /** Time limit of one request that uses the GPU, ms (waiting included). */
  requestTimeoutMs: number;
  /** Byte bound of the decoded images kept by id. */
  imageCacheBytes: number;
  /** Byte bound of the low-res logits kept for `mask_input` handles. */
  handleCacheBytes: number;
  /** points_per_side of "segment everything", at most. */
  maxPointsPerSide: number;
  /** crop_n_layers of "segment everything", at most. */
  maxCropLayers: number;
  /** Floats of logits one "everything" batch may hold (points_per_batch * 3 * H * W), at most. */
  maxBatchLogitFloats: number;
  /**
   * Full-size mask pixels one segment request may ask for (prompts * masks per prompt * W * H),
   * at most: the answer's masks, and the logits behind them, grow with it.
   */
  maxMaskPixels: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxUploadBytes: 32 * 1024 * 1024,
  maxJsonBytes: 1024 * 1024,
  maxPixels: 4096 * 4096,
  maxSide: 8192,
  maxPoints: 64,
  maxBoxes: 64,
  coordMargin: 0.25,
  maxQueue: 16,
  requestTimeoutMs: 300_000,
  imageCacheBytes: 512 * 1024 * 1024,
  handleCacheBytes: 64 * 1024 * 1024,
  maxPointsPerSide: 64,
  maxCropLayers: 2,
  maxBatchLogitFloats: 64 * 1024 * 1024,
  // 64 single-mask boxes on a 2048x2048 image, or 16 on a 4096x4096 one.
  maxMaskPixels: 256 * 1024 * 1024,
});
