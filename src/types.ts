/**
 * The public data types of wgsam's predictor API, shared by `mod.ts`, the server, the CLIs
 * and the detector. Coordinates are pixels of the original image: x to the right, y down;
 * boxes are [x0, y0, x1, y1].
 */

/** Decoded pixels, row-major. `channels` 3 (RGB) or 4 (RGBA, alpha ignored). */
export interface RgbImage {
  width: number;
  height: number;
  channels: 3 | 4;
  data: Uint8Array;
}

/** One prompt against the current image, as `SamPredictor.predict` takes it. */
export interface Prompt {
  /** Clicks, [x, y] each. */
  points?: ReadonlyArray<readonly [number, number]>;
  /** One per point: 1 foreground, 0 background. */
  labels?: readonly number[];
  /** [x0, y0, x1, y1]. */
  box?: readonly [number, number, number, number];
  /** Low-res logits of an earlier prediction (1 x 4s x 4s, 256 x 256 for the real models). */
  maskInput?: Float32Array;
  /** Three candidate masks (SAM's multimask_output) instead of one. Default true without a box or several points, as SAM's guidance; callers should set it explicitly. */
  multimask?: boolean;
}

/** The answer to one prompt: C = 3 candidates with multimask, else 1. */
export interface Prediction {
  width: number;
  height: number;
  /** C binary masks (0/1), each height x width, row-major: logits > 0. */
  masks: Uint8Array[];
  /** Predicted IoU of each mask (C). */
  scores: Float32Array;
  /** C x 4s x 4s low-res logits, to feed back as `maskInput`. */
  lowResLogits: Float32Array;
  /** Side of one low-res plane (256 for the real models). */
  lowResSize: number;
  /** C x height x width logits at the original size, when asked for with `returnLogits`. */
  logits?: Float32Array;
  /**
   * SAM 2.1 only: the decoder's object-score logit (> 0: an object is there). The official
   * image predictor computes it but neither returns it nor gates the masks with it; nor do we.
   */
  objectScore?: number;
}

/** What `setImage` reports about the image whose embedding is now current. */
export interface ImageInfo {
  /** Content hash of the pixels (hex); the embedding cache key. */
  id: string;
  width: number;
  height: number;
  /** True when the embedding came from the cache instead of the encoder. */
  cached: boolean;
  /**
   * Milliseconds the encoder took (0 when cached): its wall time with `waitForGpu`, else the
   * time to record and submit it (the first prompt's readback then waits for the rest).
   */
  encodeMs: number;
}
