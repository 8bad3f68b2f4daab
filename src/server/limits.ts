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
  /**
   * Time limit of one request that uses the GPU, ms (waiting included). An upload's encode is
   * bounded only while it waits: once running it finishes (it is cached, never wasted).
   */
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
   * Work of one "everything" batch in mask pixels, at most: points * 3 * max(H * W, 1024^2)
   * (see validate.ts everythingBatchBound); the time limit stops a job between batches.
   */
  maxBatchWorkPixels: number;
  /**
   * Full-size mask pixels one segment request may ask for (prompts * masks per prompt * W * H),
   * at most: the answer's masks, and the logits behind them, grow with it.
   */
  maxMaskPixels: number;
  /** Scans (SOS segments) of a JPEG upload, at most: each is a pass over the whole image. */
  maxJpegScans: number;
  /** Time limit of decoding one upload, ms (also bounded by requestTimeoutMs). */
  decodeTimeoutMs: number;
  /** Request body bytes buffered across all requests at once; past it, a 503. */
  maxBufferedBytes: number;
  /** How long an upload waits for its encode before answering 202 "encoding", ms. */
  uploadAnswerMs: number;
  /** Video tracking sessions open at once (each holds its own model weights on the GPU). */
  maxVideoSessions: number;
  /** Frames one video session may hold. */
  maxVideoFrames: number;
  /** Pixel bytes of the frames of one video session, at most. */
  maxVideoBytes: number;
  /** A video session unused this long is closed, ms. */
  videoIdleMs: number;
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
  // The official default batch, 64 points, at 1024 x 1024.
  maxBatchWorkPixels: 64 * 3 * 1024 * 1024,
  // 64 single-mask boxes on a 2048x2048 image, or 16 on a 4096x4096 one.
  maxMaskPixels: 256 * 1024 * 1024,
  // libjpeg's progressive scripts write 10 scans; 64 leaves room for any sane encoder.
  maxJpegScans: 64,
  decodeTimeoutMs: 30_000,
  // Four uploads of the default largest size at once.
  maxBufferedBytes: 128 * 1024 * 1024,
  // A GPU encodes in well under a second; a CPU-only host takes minutes (ViT-B ~870 s).
  uploadAnswerMs: 20_000,
  maxVideoSessions: 2,
  maxVideoFrames: 3000,
  maxVideoBytes: 1024 * 1024 * 1024,
  videoIdleMs: 10 * 60_000,
});
