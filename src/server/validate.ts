/**
 * Parsing of request bodies into checked prompts and generator parameters. Everything a client
 * sends is untrusted: types, counts, NaN/Infinity (JSON.parse turns 1e999 into Infinity;
 * strings and nulls may stand where numbers belong), ranges and unknown fields are refused with
 * a 400 that says which field is wrong.
 */
import type { Prompt } from "../types.ts";
import { type AmgParams, DEFAULT_AMG_PARAMS, officialToAmgParams } from "../amg/mod.ts";
import { DEFAULT_POLYGON_TOLERANCE } from "../util/contours.ts";
import { HttpError } from "./errors.ts";
import type { Limits } from "./limits.ts";

export type MaskFormat = "png" | "rle" | "polygon";

/** How masks are written: `format`, and for polygons the Douglas-Peucker tolerance. */
export interface OutputFormat {
  format: MaskFormat;
  /** Pixels (`polygon_tolerance`); 0 keeps every corner. */
  polygonTolerance: number;
}

/**
 * The `format` and `polygon_tolerance` fields of a body (one of `allowed`, else `fallback`),
 * and the rest of the body for the route's own parser.
 */
export function parseOutputFormat(
  body: Record<string, unknown>,
  allowed: readonly MaskFormat[],
  fallback: MaskFormat,
): { output: OutputFormat; rest: Record<string, unknown> } {
  const { format = fallback, polygon_tolerance, ...rest } = body;
  if (typeof format !== "string" || !(allowed as string[]).includes(format)) {
    throw bad(`format must be ${allowed.map((f) => `"${f}"`).join(" or ")}`);
  }
  let polygonTolerance = DEFAULT_POLYGON_TOLERANCE;
  if (polygon_tolerance !== undefined) {
    if (format !== "polygon") throw bad('polygon_tolerance goes with "format": "polygon"');
    polygonTolerance = finiteNumber(polygon_tolerance, "polygon_tolerance");
    if (polygonTolerance < 0 || polygonTolerance > 100) {
      throw bad(`polygon_tolerance must be in [0, 100] pixels, got ${polygonTolerance}`);
    }
  }
  return { output: { format: format as MaskFormat, polygonTolerance }, rest };
}

export interface SegmentRequest {
  /** One prompt, or one per box of a batched `boxes` request (same points for each). */
  prompts: Prompt[];
  batched: boolean;
  format: MaskFormat;
  polygonTolerance: number;
  /** The handle named by `mask_input`, if any (resolved by the caller). */
  maskInputHandle: string | null;
}

const SEGMENT_KEYS = new Set([
  "points",
  "labels",
  "box",
  "boxes",
  "mask_input",
  "multimask",
  "format",
  "polygon_tolerance",
]);

function bad(message: string): HttpError {
  return new HttpError(400, message);
}

/** A client's field name for an error message, cut short: a 1 MB name is not echoed back. */
export function fieldName(key: string): string {
  return key.length <= 40
    ? JSON.stringify(key)
    : `${JSON.stringify(key.slice(0, 40))}... (${key.length} characters)`;
}

function finiteNumber(value: unknown, what: string): number {
  if (typeof value !== "number") throw bad(`${what} must be a number, got ${describe(value)}`);
  if (!Number.isFinite(value)) throw bad(`${what} must be finite`);
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string"
    ? `the string ${JSON.stringify(value).slice(0, 40)}`
    : typeof value;
}

function coordRange(width: number, height: number, limits: Limits) {
  const margin = limits.coordMargin * Math.max(width, height);
  return { xMin: -margin, xMax: width + margin, yMin: -margin, yMax: height + margin };
}

function parseXY(value: unknown, what: string, range: ReturnType<typeof coordRange>) {
  if (!Array.isArray(value) || value.length !== 2) throw bad(`${what} must be [x, y]`);
  const x = finiteNumber(value[0], `${what}[0]`);
  const y = finiteNumber(value[1], `${what}[1]`);
  if (x < range.xMin || x > range.xMax || y < range.yMin || y > range.yMax) {
    throw bad(
      `${what} = [${x}, ${y}] is outside the image (x in [${range.xMin}, ${range.xMax}], ` +
        `y in [${range.yMin}, ${range.yMax}])`,
    );
  }
  return [x, y] as [number, number];
}

function parseBox(value: unknown, what: string, range: ReturnType<typeof coordRange>) {
  if (!Array.isArray(value) || value.length !== 4) throw bad(`${what} must be [x0, y0, x1, y1]`);
  const [x0, y0] = parseXY([value[0], value[1]], `${what} corner (x0, y0)`, range);
  const [x1, y1] = parseXY([value[2], value[3]], `${what} corner (x1, y1)`, range);
  if (x0 > x1 || y0 > y1) throw bad(`${what} must have x0 <= x1 and y0 <= y1`);
  return [x0, y0, x1, y1] as [number, number, number, number];
}

/** The prompts of a POST /api/images/:id/segment body for an image of the given size. */
export function parseSegmentRequest(
  body: Record<string, unknown>,
  width: number,
  height: number,
  limits: Limits,
): SegmentRequest {
  for (const key of Object.keys(body)) {
    if (!SEGMENT_KEYS.has(key)) {
      throw bad(`unknown field ${fieldName(key)} (known: ${[...SEGMENT_KEYS].join(", ")})`);
    }
  }
  const range = coordRange(width, height, limits);

  let points: [number, number][] | undefined;
  let labels: number[] | undefined;
  if (body.points !== undefined) {
    if (!Array.isArray(body.points)) throw bad("points must be an array of [x, y]");
    if (body.points.length > limits.maxPoints) {
      throw bad(`${body.points.length} points; at most ${limits.maxPoints}`);
    }
    points = body.points.map((p, i) => parseXY(p, `points[${i}]`, range));
    if (body.labels === undefined) {
      labels = points.map(() => 1);
    } else {
      if (!Array.isArray(body.labels)) throw bad("labels must be an array of 0 and 1");
      if (body.labels.length !== points.length) {
        throw bad(`${body.labels.length} labels for ${points.length} points`);
      }
      labels = body.labels.map((l, i) => {
        if (l !== 0 && l !== 1) throw bad(`labels[${i}] must be 0 or 1, got ${JSON.stringify(l)}`);
        return l;
      });
    }
    if (points.length === 0) {
      points = undefined;
      labels = undefined;
    }
  } else if (body.labels !== undefined) {
    throw bad("labels given without points");
  }

  if (body.box !== undefined && body.boxes !== undefined) throw bad("give box or boxes, not both");
  let boxes: [number, number, number, number][] | undefined;
  let batched = false;
  if (body.box !== undefined && body.box !== null) {
    boxes = [parseBox(body.box, "box", range)];
  } else if (body.boxes !== undefined) {
    if (!Array.isArray(body.boxes)) throw bad("boxes must be an array of [x0, y0, x1, y1]");
    if (body.boxes.length === 0) throw bad("boxes is empty");
    if (body.boxes.length > limits.maxBoxes) {
      throw bad(`${body.boxes.length} boxes; at most ${limits.maxBoxes}`);
    }
    boxes = body.boxes.map((b, i) => parseBox(b, `boxes[${i}]`, range));
    batched = true;
  }

  let maskInputHandle: string | null = null;
  if (body.mask_input !== undefined && body.mask_input !== null) {
    if (typeof body.mask_input !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(body.mask_input)) {
      throw bad("mask_input must be a low_res_handle string from an earlier answer");
    }
    maskInputHandle = body.mask_input;
  }

  if (!points && !boxes && !maskInputHandle) {
    throw bad("give at least one of points, box, boxes or mask_input");
  }

  let multimask: boolean;
  if (body.multimask === undefined) {
    // SAM's guidance: three candidates for an ambiguous prompt (one point, nothing else).
    multimask = !boxes && (points?.length ?? 0) <= 1;
  } else if (typeof body.multimask === "boolean") {
    multimask = body.multimask;
  } else {
    throw bad("multimask must be true or false");
  }

  const { format, polygonTolerance } =
    parseOutputFormat(body, ["png", "rle", "polygon"], "png").output;

  const base: Prompt = { multimask, ...(points ? { points, labels } : {}) };
  const prompts = boxes ? boxes.map((box) => ({ ...base, box })) : [base];
  // Every mask comes back at the image's full size: bound the answer before any GPU work.
  const perPrompt = multimask ? 3 : 1;
  const maskPixels = prompts.length * perPrompt * width * height;
  if (maskPixels > limits.maxMaskPixels) {
    throw bad(
      `${prompts.length} prompt(s) x ${perPrompt} mask(s) of ${width}x${height} pixels = ` +
        `${maskPixels} mask pixels, over the limit of ${limits.maxMaskPixels} a request ` +
        `(--max-mask-pixels)` +
        (prompts.length > 1 || multimask
          ? `: send ${
            [
              prompts.length > 1 ? "fewer boxes per request" : "",
              multimask ? '"multimask": false' : "",
            ]
              .filter((h) => h).join(" or ")
          }`
          : ""),
    );
  }
  return { prompts, batched, format, polygonTolerance, maskInputHandle };
}

/** The official SamAutomaticMaskGenerator parameters that the server takes. */
const EVERYTHING_KEYS = new Set([
  "points_per_side",
  "points_per_batch",
  "pred_iou_thresh",
  "stability_score_thresh",
  "stability_score_offset",
  "box_nms_thresh",
  "crop_n_layers",
  "crop_nms_thresh",
  "crop_overlap_ratio",
  "crop_n_points_downscale_factor",
  "point_grids",
  "min_mask_region_area",
  "output_mode",
]);

/**
 * Work of one point of "segment everything", in mask pixels: three masks at the crop's size,
 * and never less than at a 1024 x 1024 crop, since the decoder's own pass costs about that much
 * whatever the image size. One batch may hold at most the official default, 64 points, at
 * 1024 x 1024, so that a job stopped at its time limit frees the GPU within one such batch.
 */
export function everythingBatchBound(width: number, height: number, limits: Limits): number {
  const perPoint = 3 * Math.max(width * height, 1024 * 1024);
  const byWork = Math.floor(limits.maxBatchWorkPixels / perPoint);
  const byMemory = Math.floor(limits.maxBatchLogitFloats / (3 * width * height));
  return Math.max(1, Math.min(byWork, byMemory));
}

const INT_PARAMS = new Set([
  "points_per_side",
  "points_per_batch",
  "crop_n_layers",
  "crop_n_points_downscale_factor",
  "min_mask_region_area",
]);

/**
 * Generator parameters of a POST /api/images/:id/everything body (official snake_case names),
 * checked; output is always COCO RLE. points_per_batch changes only how the work is split, so
 * it is lowered when one batch's logits would exceed the memory bound.
 */
export function parseEverythingRequest(
  body: Record<string, unknown>,
  width: number,
  height: number,
  limits: Limits,
): AmgParams {
  // No prototype: a "__proto__" field is then a (refused) name, not silently dropped.
  const official: Record<string, unknown> = Object.create(null);
  for (const key of Object.keys(body)) {
    if (!EVERYTHING_KEYS.has(key)) {
      throw bad(
        `unknown parameter ${fieldName(key)} (known: ${[...EVERYTHING_KEYS].join(", ")})`,
      );
    }
  }
  for (const [key, value] of Object.entries(body)) {
    if (key === "output_mode") {
      if (value !== "coco_rle") throw bad('output_mode must be "coco_rle" (the only one served)');
      continue;
    }
    if (key === "point_grids") {
      if (value === null) continue;
      official[key] = parsePointGrids(value, limits);
      continue;
    }
    if (key === "points_per_side" && value === null) {
      official[key] = null;
      continue;
    }
    const n = finiteNumber(value, key);
    if (INT_PARAMS.has(key) && !Number.isInteger(n)) throw bad(`${key} must be an integer`);
    official[key] = n;
  }
  let partial: Partial<AmgParams>;
  try {
    partial = officialToAmgParams(official);
  } catch (e) {
    throw bad((e as Error).message);
  }
  const p: AmgParams = { ...DEFAULT_AMG_PARAMS, ...partial, outputMode: "coco_rle" };
  if (partial.pointGrids && partial.pointsPerSide === undefined) p.pointsPerSide = null;
  if ((p.pointsPerSide === null) === (p.pointGrids === null)) {
    throw bad("give exactly one of points_per_side or point_grids");
  }
  const inRange = (name: string, v: number, lo: number, hi: number) => {
    if (!(v >= lo && v <= hi)) throw bad(`${name} must be in [${lo}, ${hi}], got ${v}`);
  };
  if (p.pointsPerSide !== null) {
    inRange("points_per_side", p.pointsPerSide, 1, limits.maxPointsPerSide);
  }
  inRange("points_per_batch", p.pointsPerBatch, 1, 1024);
  inRange("pred_iou_thresh", p.predIouThresh, 0, 1);
  inRange("stability_score_thresh", p.stabilityScoreThresh, 0, 1);
  inRange("stability_score_offset", p.stabilityScoreOffset, 0, 1e6);
  inRange("box_nms_thresh", p.boxNmsThresh, 0, 1);
  inRange("crop_n_layers", p.cropNLayers, 0, limits.maxCropLayers);
  inRange("crop_nms_thresh", p.cropNmsThresh, 0, 1);
  inRange("crop_overlap_ratio", p.cropOverlapRatio, 0, 0.99);
  inRange("crop_n_points_downscale_factor", p.cropNPointsDownscaleFactor, 1, 64);
  inRange("min_mask_region_area", p.minMaskRegionArea, 0, width * height);
  if (p.pointGrids && p.pointGrids.length < p.cropNLayers + 1) {
    throw bad(`${p.pointGrids.length} point grids for ${p.cropNLayers + 1} crop layers`);
  }
  p.pointsPerBatch = Math.min(p.pointsPerBatch, everythingBatchBound(width, height, limits));
  return p;
}

function parsePointGrids(value: unknown, limits: Limits): number[][][] {
  if (!Array.isArray(value) || value.length === 0) {
    throw bad("point_grids must be a non-empty array of grids, each an array of [x, y] in [0, 1]");
  }
  const maxPoints = limits.maxPointsPerSide * limits.maxPointsPerSide;
  return value.map((grid, g) => {
    if (!Array.isArray(grid) || grid.length === 0 || grid.length > maxPoints) {
      throw bad(`point_grids[${g}] must hold 1 to ${maxPoints} points`);
    }
    return grid.map((pt, i) => {
      if (!Array.isArray(pt) || pt.length !== 2) {
        throw bad(`point_grids[${g}][${i}] must be [x, y]`);
      }
      return pt.map((v, k) => {
        const n = finiteNumber(v, `point_grids[${g}][${i}][${k}]`);
        if (n < 0 || n > 1) throw bad(`point_grids[${g}][${i}][${k}] must be in [0, 1]`);
        return n;
      });
    });
  });
}

export interface DetectRequest {
  /** Class names to keep; undefined keeps every class (names are checked by the caller). */
  classes?: string[];
  scoreThreshold: number;
  iouThreshold: number;
  maxDetections: number;
}

const DETECT_KEYS = new Set(["classes", "score_threshold", "iou_threshold", "max_detections"]);

/**
 * The options of a POST /api/images/:id/detect body. Every detection becomes one box prompt
 * of a batched SAM pass, so max_detections is bounded like a `boxes` request (limits.maxBoxes,
 * also the default).
 */
export function parseDetectRequest(body: Record<string, unknown>, limits: Limits): DetectRequest {
  for (const key of Object.keys(body)) {
    if (!DETECT_KEYS.has(key)) {
      throw bad(`unknown field ${fieldName(key)} (known: ${[...DETECT_KEYS].join(", ")})`);
    }
  }
  const unit = (key: string, fallback: number) => {
    if (body[key] === undefined) return fallback;
    const v = finiteNumber(body[key], key);
    if (v < 0 || v > 1) throw bad(`${key} must be in [0, 1], got ${v}`);
    return v;
  };
  let maxDetections = limits.maxBoxes;
  if (body.max_detections !== undefined) {
    maxDetections = finiteNumber(body.max_detections, "max_detections");
    if (!Number.isInteger(maxDetections) || maxDetections < 1 || maxDetections > limits.maxBoxes) {
      throw bad(`max_detections must be an integer in [1, ${limits.maxBoxes}]`);
    }
  }
  let classes: string[] | undefined;
  if (body.classes !== undefined) {
    const value = body.classes;
    if (!Array.isArray(value) || value.length > 1000) {
      throw bad("classes must be an array of class names (at most 1000)");
    }
    classes = value.map((name, i) => {
      if (typeof name !== "string" || name.trim() === "" || name.length > 200) {
        throw bad(`classes[${i}] must be a class name, got ${describe(name)}`);
      }
      return name.trim();
    });
  }
  return {
    classes,
    scoreThreshold: unit("score_threshold", 0.35),
    iouThreshold: unit("iou_threshold", 0.5),
    maxDetections,
  };
}
