/**
 * Reader of an `amg.json` as the reference fixtures write it: the official generator's
 * keyword arguments (`params`, snake_case, plus `output_mode`), optionally the image size,
 * and the records (`annotations`) it produced.
 */
import {
  type AmgParams,
  type MaskRecord,
  officialToAmgParams,
} from "./automatic_mask_generator.ts";
import type { CocoRle, UncompressedRle } from "./rle.ts";

export interface AmgJson {
  /** Generator parameters (defaults where the file names none); outputMode included. */
  params: Partial<AmgParams>;
  /** [height, width] of the image, from `image_size_hw` or else the first record's mask. */
  imageSizeHw: [number, number] | null;
  records: MaskRecord<UncompressedRle | CocoRle>[];
}

const RECORD_KEYS = [
  "segmentation",
  "area",
  "bbox",
  "predicted_iou",
  "point_coords",
  "stability_score",
  "crop_box",
];

export function parseAmgJson(json: string | Record<string, unknown>): AmgJson {
  const obj = typeof json === "string" ? JSON.parse(json) : json;
  if (typeof obj !== "object" || obj === null) throw new Error("amg.json: not an object");
  const official: Record<string, unknown> = { ...(obj.params ?? {}) };
  if (obj.output_mode !== undefined) official.output_mode = obj.output_mode;
  const params = officialToAmgParams(official);
  const records = (obj.annotations ?? []) as MaskRecord<UncompressedRle | CocoRle>[];
  records.forEach((r, i) => {
    for (const key of RECORD_KEYS) {
      if (!(key in r)) throw new Error(`amg.json: annotation ${i} has no "${key}"`);
    }
  });
  const size = obj.image_size_hw ?? records[0]?.segmentation.size ?? null;
  return { params, imageSizeHw: size ? [size[0], size[1]] : null, records };
}
