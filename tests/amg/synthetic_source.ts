/**
 * The stand-in mask source of the amg-synthetic fixture (see the fixtures README): for a point
 * (x, y) in the crop's pixel frame, three cones of logits
 *   logit_k(col, row) = R_k - sqrt((col - x)^2 + (row - y)^2),
 *   R_k = (0.06, 0.15, 0.30)[k] * max(crop_w, crop_h),
 * and IoU predictions iou_k = 0.75 + 0.08 k + 0.1 sin(0.05 x + 0.03 y).
 *
 * Precision: the IoUs are computed in float64 and stored as float32 (the fixture's values
 * are exactly that, not float32 arithmetic: 0.9299481511116028 for k = 1 at (155.25,
 * 213.5625), where float32 ops give 0.929948091506958). The logits are float32 arithmetic,
 * each operation rounded as torch's float32 tensors would; float64 logits reproduce the
 * fixture exactly too (every RLE is identical either way), so the fixture does not tell.
 */
import type {
  MaskBatch,
  MaskBatchRequest,
  MaskSource,
  MaskSourceImage,
  PointPrediction,
} from "../../src/amg/mask_source.ts";
import { logitMaskStats, thresholdMask } from "../../src/amg/utils.ts";

const RADIUS_FRACTIONS = [0.06, 0.15, 0.30];
const f32 = Math.fround;

export class SyntheticMaskSource implements MaskSource {
  width = 0;
  height = 0;
  /** Number of setImage calls, and of points predicted, for the test's bookkeeping. */
  imagesSet = 0;
  pointsPredicted = 0;

  setImage(image: MaskSourceImage): Promise<void> {
    this.width = image.width;
    this.height = image.height;
    this.imagesSet++;
    return Promise.resolve();
  }

  /** IoU prediction of mask k for a point. */
  iou(x: number, y: number, k: number): number {
    return f32(0.75 + 0.08 * k + 0.1 * Math.sin(0.05 * x + 0.03 * y));
  }

  /** Writes the logits of mask k for point (x, y) into out[offset ...] (h x w), in float32. */
  writeLogits(x: number, y: number, k: number, out: Float32Array, offset: number): void {
    const w = this.width, h = this.height;
    const radius = f32(RADIUS_FRACTIONS[k] * Math.max(w, h));
    const px = f32(x), py = f32(y);
    const dx2 = new Float32Array(w), dy2 = new Float32Array(h);
    for (let c = 0; c < w; c++) dx2[c] = f32(c - px) * f32(c - px);
    for (let row = 0; row < h; row++) dy2[row] = f32(row - py) * f32(row - py);
    for (let row = 0; row < h; row++) {
      const base = offset + row * w, dy = dy2[row];
      // Stored into a Float32Array: the subtraction is rounded once, as a float32 op.
      for (let c = 0; c < w; c++) out[base + c] = radius - f32(Math.sqrt(f32(dx2[c] + dy)));
    }
  }

  predictPoints(points: Float32Array, n: number): Promise<PointPrediction> {
    const plane = this.width * this.height;
    const masks = new Float32Array(n * 3 * plane);
    const iou = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) {
      const x = points[2 * i], y = points[2 * i + 1];
      for (let k = 0; k < 3; k++) {
        this.writeLogits(x, y, k, masks, (i * 3 + k) * plane);
        iou[i * 3 + k] = this.iou(x, y, k);
      }
    }
    this.pointsPredicted += n;
    return Promise.resolve({ masks, iou });
  }
}

/**
 * The same stand-in behind the richer `predictBatch` path: statistics for every mask, one
 * logit plane at a time (so no batch of logits is ever held), masks recomputed on demand.
 */
export class SyntheticBatchSource extends SyntheticMaskSource {
  masksRead = 0;

  predictBatch(request: MaskBatchRequest): Promise<MaskBatch> {
    const { points, n } = request;
    const h = this.height, w = this.width, plane = h * w;
    const logits = new Float32Array(plane);
    const iou = new Float32Array(n * 3);
    const stability = new Float32Array(n * 3);
    const boxes = new Int32Array(n * 3 * 4);
    for (let i = 0; i < n * 3; i++) {
      const x = points[2 * Math.floor(i / 3)], y = points[2 * Math.floor(i / 3) + 1];
      iou[i] = this.iou(x, y, i % 3);
      this.writeLogits(x, y, i % 3, logits, 0);
      const stats = logitMaskStats(
        logits,
        0,
        h,
        w,
        request.maskThreshold,
        request.stabilityScoreOffset,
      );
      stability[i] = stats.stability;
      boxes.set(stats.box, 4 * i);
    }
    this.pointsPredicted += n;
    return Promise.resolve({
      masksPerPoint: 3,
      height: h,
      width: w,
      iou,
      stability,
      boxes,
      readMasks: (indices: readonly number[]) => {
        this.masksRead += indices.length;
        return Promise.resolve(indices.map((i) => {
          const x = points[2 * Math.floor(i / 3)], y = points[2 * Math.floor(i / 3) + 1];
          this.writeLogits(x, y, i % 3, logits, 0);
          return thresholdMask(logits, 0, plane, request.maskThreshold);
        }));
      },
    });
  }
}
