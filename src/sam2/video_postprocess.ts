/**
 * The video predictor's `fill_holes_in_mask_scores` (sam2 `utils/misc.py`): background
 * regions (logit <= 0, 8-connected) of at most `maxArea` low-res pixels get the logit 0.1.
 * Unlike the image predictor's postprocess (+10, and island removal), nothing else changes.
 */
import { connectedComponents8 } from "../amg/regions.ts";

/** torch.where(is_hole, 0.1, mask) on a float32 mask: 0.1 as float32. */
export const HOLE_FILL_LOGIT = Math.fround(0.1);

/** Rewrites `plane` (height x width, row-major) in place; returns the pixels filled. */
export function fillHolesInMaskScores(
  plane: Float32Array,
  height: number,
  width: number,
  maxArea: number,
): number {
  if (!(maxArea > 0)) throw new Error(`fillHolesInMaskScores: maxArea ${maxArea} must be positive`);
  const n = height * width;
  if (plane.length !== n) {
    throw new Error(
      `fillHolesInMaskScores: plane has ${plane.length} values, need ${height} x ${width}`,
    );
  }
  const bg = new Uint8Array(n);
  for (let q = 0; q < n; q++) bg[q] = plane[q] <= 0 ? 1 : 0;
  const { labels, sizes } = connectedComponents8(bg, height, width);
  let filled = 0;
  for (let q = 0; q < n; q++) {
    const l = labels[q];
    if (l > 0 && sizes[l] <= maxArea) {
      plane[q] = HOLE_FILL_LOGIT;
      filled++;
    }
  }
  return filled;
}
