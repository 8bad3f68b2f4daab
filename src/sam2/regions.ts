/**
 * SAM2Transforms.postprocess_masks' hole and sprinkle removal on one low-res logit plane,
 * before it is upscaled: background regions (logit <= 0) of at most `maxHoleArea` pixels get
 * logit 10, foreground regions (logit > 0) of at most `maxSprinkleArea` pixels get -10. Both
 * are found on the plane as given (8-connected components, as sam2's connected-components
 * kernel), so the two passes do not see each other's changes.
 */
import { connectedComponents8 } from "../amg/regions.ts";

/** Rewrites `plane` (h x w, row-major) in place; returns the number of pixels changed. */
export function removeSmallRegions(
  plane: Float32Array,
  height: number,
  width: number,
  maxHoleArea: number,
  maxSprinkleArea: number,
): number {
  const n = height * width;
  const fg = new Uint8Array(n);
  for (let q = 0; q < n; q++) fg[q] = plane[q] > 0 ? 1 : 0;
  const edits: [Uint8Array, number, number][] = [];
  if (maxHoleArea > 0) edits.push([fg.map((v) => 1 - v), maxHoleArea, 10]);
  if (maxSprinkleArea > 0) edits.push([fg, maxSprinkleArea, -10]);
  const changes: [number, number][] = [];
  for (const [mask, maxArea, value] of edits) {
    const { labels, sizes } = connectedComponents8(mask, height, width);
    for (let q = 0; q < n; q++) {
      const l = labels[q];
      if (l > 0 && sizes[l] <= maxArea) changes.push([q, value]);
    }
  }
  for (const [q, value] of changes) plane[q] = value;
  return changes.length;
}
