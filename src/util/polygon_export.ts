/**
 * Masks written as polygons, for the server's `"format": "polygon"` and the CLIs'
 * `--format polygon`: a mask's rings with their nesting (`polygons`, `polygon_parents`), a COCO
 * annotation with its `segmentation` as COCO's polygon list (`segmentation_parents` beside it),
 * a mask's largest part (CVAT, Label Studio) and YOLO-seg label files.
 */
import { cocoDecodeRle, type CocoRle, rleToMask, type UncompressedRle } from "../amg/rle.ts";
import { DEFAULT_POLYGON_TOLERANCE, maskToPolygons, ringArea2, yoloSegLine } from "./contours.ts";

/** A mask's rings in COCO polygon form and which ring each one lies in (-1: none). */
export function maskPolygonFields(
  mask: Uint8Array,
  width: number,
  height: number,
  tolerance: number,
): { polygons: number[][]; polygon_parents: number[] } {
  const p = maskToPolygons(mask, width, height, tolerance);
  return { polygons: p.segmentation, polygon_parents: p.parents };
}

/** A generator record's segmentation (COCO RLE, uncompressed RLE or a mask) as a mask. */
export function segmentationMask(segmentation: unknown): Uint8Array {
  if (segmentation instanceof Uint8Array) return segmentation;
  const rle = segmentation as CocoRle | UncompressedRle;
  if (!rle || !Array.isArray(rle.size)) throw new Error("segmentation is not an RLE");
  return rleToMask(
    typeof rle.counts === "string" ? cocoDecodeRle(rle as CocoRle) : rle as UncompressedRle,
  );
}

/**
 * The annotation with its `segmentation` as polygons instead of RLE; `mask` is the decoded
 * mask when the caller has it (else the RLE is decoded here).
 */
export function withPolygonSegmentation<
  T extends { segmentation: CocoRle | UncompressedRle | unknown },
>(
  annotation: T,
  tolerance: number,
  mask?: Uint8Array,
): Omit<T, "segmentation"> & { segmentation: number[][]; segmentation_parents: number[] } {
  const rle = annotation.segmentation as CocoRle | UncompressedRle;
  if (!rle || !Array.isArray(rle.size)) throw new Error("segmentation is not an RLE");
  const [height, width] = rle.size;
  const m = mask ?? segmentationMask(rle);
  const p = maskToPolygons(m, width, height, tolerance);
  return { ...annotation, segmentation: p.segmentation, segmentation_parents: p.parents };
}

/** The border of the mask's largest part, flat [x0, y0, ...]; empty for an empty mask. */
export function largestPolygon(mask: Uint8Array, width: number, height: number): number[] {
  const p = maskToPolygons(mask, width, height);
  let best: number[] = [], bestArea = 0;
  p.segmentation.forEach((ring, i) => {
    if (p.parents[i] !== -1) return;
    const area = Math.abs(ringArea2(ring));
    if (area > bestArea) {
      bestArea = area;
      best = ring;
    }
  });
  return best;
}

/**
 * A YOLO-seg label file: one line per object (`class x y x y ...`, normalized), each object's
 * rings joined into one polygon; empty masks give no line.
 */
export function yoloSegText(
  objects: readonly { mask: Uint8Array; classIndex: number }[],
  width: number,
  height: number,
  tolerance: number,
): string {
  const lines: string[] = [];
  for (const { mask, classIndex } of objects) {
    const rings = maskToPolygons(mask, width, height, tolerance).segmentation;
    const line = yoloSegLine(classIndex, rings, width, height);
    if (line) lines.push(line);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/**
 * The CLIs' `--format` (one of `formats`, the first the default) and `--polygon-tolerance`
 * values; throws an Error naming the flag.
 */
export function parseFormatFlags(
  format: string | undefined,
  tolerance: string | undefined,
  formats: readonly string[],
): { format: string; polygonTolerance: number } {
  const f = format ?? formats[0];
  if (!formats.includes(f)) {
    throw new Error(`--format must be ${formats.join(" or ")}, got '${f}'`);
  }
  let polygonTolerance = DEFAULT_POLYGON_TOLERANCE;
  if (tolerance !== undefined) {
    if (f !== "polygon") throw new Error("--polygon-tolerance goes with --format polygon");
    polygonTolerance = Number(tolerance);
    if (tolerance.trim() === "" || !(polygonTolerance >= 0 && polygonTolerance <= 100)) {
      throw new Error(
        `--polygon-tolerance must be a number of pixels in [0, 100], got '${tolerance}'`,
      );
    }
  }
  return { format: f, polygonTolerance };
}
