/** Comparison of generated mask records with a fixture's, one to one by mask IoU. */
import assert from "node:assert/strict";
import type { MaskRecord } from "../../src/amg/automatic_mask_generator.ts";
import { areaFromRle, type UncompressedRle } from "../../src/amg/rle.ts";

/** Mask IoU of two RLEs of the same size, from their runs of ones (no decoding). */
export function rleIou(a: UncompressedRle, b: UncompressedRle): number {
  const runs = (rle: UncompressedRle) => {
    const out: number[] = []; // [start, end) pairs in column-major order
    let pos = 0;
    rle.counts.forEach((c, i) => {
      if (i % 2 === 1 && c > 0) out.push(pos, pos + c);
      pos += c;
    });
    return out;
  };
  const ra = runs(a), rb = runs(b);
  let inter = 0, i = 0, j = 0;
  while (i < ra.length && j < rb.length) {
    const lo = Math.max(ra[i], rb[j]), hi = Math.min(ra[i + 1], rb[j + 1]);
    if (hi > lo) inter += hi - lo;
    if (ra[i + 1] < rb[j + 1]) i += 2;
    else j += 2;
  }
  const union = areaFromRle(a) + areaFromRle(b) - inter;
  return union === 0 ? 1 : inter / union;
}

export interface MatchTolerances {
  /** Minimum mask IoU of a matched pair. */
  minIou: number;
  /** Tolerance of predicted_iou, stability_score, point_coords and crop_box. */
  atol: number;
  /**
   * Where the oracle is another implementation of the model (not bit-exact), a check that
   * each pixel where a matched pair's masks differ is explained by it; bbox and area are then
   * compared only for identical masks. Without it they must always be exact.
   */
  checkMaskDiff?: (got: MaskRecord<UncompressedRle>, expected: MaskRecord<UncompressedRle>) => void;
}

/**
 * Matches each expected record to a distinct generated one (greedily, best mask IoU first)
 * and checks the pair: mask IoU >= minIou, bbox and area exact, the rest within atol.
 * Returns, for each expected record, the index of its match.
 */
export function assertRecordsMatch(
  got: MaskRecord<UncompressedRle>[],
  expected: MaskRecord<UncompressedRle>[],
  tol: MatchTolerances,
): number[] {
  assert.equal(got.length, expected.length, "number of masks");
  const used = new Uint8Array(got.length);
  const matchOf: number[] = [];
  expected.forEach((exp, e) => {
    let best = -1, bestIou = -1;
    got.forEach((g, k) => {
      if (used[k]) return;
      const [ex, ey, ew, eh] = exp.bbox, [gx, gy, gw, gh] = g.bbox;
      // Disjoint boxes cannot reach the required IoU: skip the run comparison.
      if (gx > ex + ew || ex > gx + gw || gy > ey + eh || ey > gy + gh) return;
      const iou = rleIou(g.segmentation, exp.segmentation);
      if (iou > bestIou) [best, bestIou] = [k, iou];
    });
    assert.ok(best >= 0 && bestIou >= tol.minIou, `expected mask ${e}: best IoU ${bestIou}`);
    used[best] = 1;
    matchOf.push(best);
    const g = got[best];
    const label = `expected mask ${e} (generated ${best})`;
    const sameMask = g.segmentation.counts.length === exp.segmentation.counts.length &&
      g.segmentation.counts.every((c, k) => c === exp.segmentation.counts[k]);
    if (tol.checkMaskDiff && !sameMask) {
      tol.checkMaskDiff(g, exp);
    } else {
      assert.deepEqual(g.bbox, exp.bbox, `${label}: bbox`);
      assert.equal(g.area, exp.area, `${label}: area`);
    }
    const close = (a: number, b: number, what: string) =>
      assert.ok(Math.abs(a - b) <= tol.atol, `${label}: ${what} ${a} vs ${b}`);
    close(g.predicted_iou, exp.predicted_iou, "predicted_iou");
    close(g.stability_score, exp.stability_score, "stability_score");
    g.point_coords[0].forEach((v, k) => close(v, exp.point_coords[0][k], "point_coords"));
    g.crop_box.forEach((v, k) => close(v, exp.crop_box[k], "crop_box"));
  });
  return matchOf;
}
