/**
 * Box non-maximum suppression with the semantics of torchvision's `batched_nms` on the CPU
 * (as SAM's automatic mask generator calls it, boxes cast to float32).
 *
 * - Boxes are sorted by score, descending, with a stable sort (torchvision's CPU kernel
 *   sorts with stable=true); NaN scores sort first, as torch's descending sort puts them.
 * - Areas and IoU are computed in float32 exactly as the kernel does:
 *   area = (x1 - x0) * (y1 - y0), inter = max(0, min x1 - max x0) * max(0, ...),
 *   iou = inter / (area_i + area_j - inter); no +1 on widths.
 * - A box is suppressed when its IoU with a kept, higher-ranked box is > the threshold
 *   (compared in double, as the kernel's `double iou_threshold`); 0/0 (two empty boxes)
 *   never suppresses.
 * - The result lists kept indices best first. Categories: boxes only suppress boxes of the
 *   same category (what torchvision's coordinate-offset trick achieves).
 *
 * One difference is known: for more than 1000 boxes torchvision re-sorts the kept indices
 * with a non-stable sort, so kept boxes of exactly equal score may come out in another order
 * there; the set kept is the same.
 */
const f32 = Math.fround;

export function batchedNms(
  boxes: ArrayLike<number>,
  scores: ArrayLike<number>,
  iouThreshold: number,
  categories?: ArrayLike<number>,
): number[] {
  const n = scores.length;
  if (boxes.length !== n * 4) {
    throw new Error(`nms: ${boxes.length / 4} boxes but ${n} scores`);
  }
  if (categories && categories.length !== n) {
    throw new Error(`nms: ${categories.length} categories for ${n} boxes`);
  }
  const x0 = new Float32Array(n), y0 = new Float32Array(n);
  const x1 = new Float32Array(n), y1 = new Float32Array(n);
  const area = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x0[i] = boxes[4 * i];
    y0[i] = boxes[4 * i + 1];
    x1[i] = boxes[4 * i + 2];
    y1[i] = boxes[4 * i + 3];
    area[i] = f32(x1[i] - x0[i]) * f32(y1[i] - y0[i]);
  }
  const order = stableArgsortDescending(scores);
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let a = 0; a < n; a++) {
    const i = order[a];
    if (suppressed[i]) continue;
    keep.push(i);
    for (let b = a + 1; b < n; b++) {
      const j = order[b];
      if (suppressed[j]) continue;
      if (categories && categories[j] !== categories[i]) continue;
      const w = Math.max(0, f32(Math.min(x1[i], x1[j]) - Math.max(x0[i], x0[j])));
      const h = Math.max(0, f32(Math.min(y1[i], y1[j]) - Math.max(y0[i], y0[j])));
      const inter = f32(w * h);
      const iou = f32(inter / f32(f32(area[i] + area[j]) - inter));
      if (iou > iouThreshold) suppressed[j] = 1;
    }
  }
  return keep;
}

/** Indices by score, highest first, ties in index order, NaN first. */
export function stableArgsortDescending(scores: ArrayLike<number>): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  return idx.sort((a, b) => {
    const sa = scores[a], sb = scores[b];
    const nanA = Number.isNaN(sa), nanB = Number.isNaN(sb);
    if (nanA !== nanB) return nanA ? -1 : 1;
    if (!nanA && sa !== sb) return sb > sa ? 1 : -1;
    return a - b;
  });
}
