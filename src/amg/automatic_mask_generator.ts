/**
 * "Segment everything": SAM's automatic mask generator (the official
 * `SamAutomaticMaskGenerator`), with the model behind a `MaskSource`.
 *
 * Same steps in the same order as the official: for each crop (the image, then the crops of
 * each layer) the source gets the cropped image; the layer's point grid, scaled to the crop,
 * goes through in batches; each batch's masks are filtered by predicted IoU, stability score
 * and crop edge, and kept as RLE in the image frame; NMS within the crop (by predicted IoU),
 * then NMS across crops (preferring smaller crops), then optional removal of small holes and
 * islands with another NMS, then the output form. Record order is the official's: crop NMS
 * order (smaller crops first, then crop order, then predicted IoU), not sorted by area.
 */
import { batchedNms } from "./nms.ts";
import {
  type MaskBatchRequest,
  type MaskSource,
  type MaskSourceImage,
  predictMaskBatch,
} from "./mask_source.ts";
import { removeSmallRegions } from "./regions.ts";
import {
  areaFromRle,
  cocoEncodeRle,
  type CocoRle,
  maskToRle,
  maskToRleInFrame,
  rleToMask,
  type UncompressedRle,
} from "./rle.ts";
import {
  type Box,
  boxArea,
  boxXyxyToXywh,
  buildAllLayerPointGrids,
  generateCropBoxes,
  isBoxNearCropEdge,
  maskToBox,
  uncropBox,
  uncropPoint,
} from "./utils.ts";

export type OutputMode = "binary_mask" | "uncompressed_rle" | "coco_rle";

export interface AmgParams {
  /** Points along one side of the grid (points_per_side); null when pointGrids is given. */
  pointsPerSide: number | null;
  pointsPerBatch: number;
  predIouThresh: number;
  stabilityScoreThresh: number;
  stabilityScoreOffset: number;
  boxNmsThresh: number;
  cropNLayers: number;
  cropNmsThresh: number;
  cropOverlapRatio: number;
  cropNPointsDownscaleFactor: number;
  /** Explicit grids per crop layer, (n, 2) x,y in [0,1] flattened; exclusive with pointsPerSide. */
  pointGrids: Float64Array[] | null;
  minMaskRegionArea: number;
  outputMode: OutputMode;
}

export const DEFAULT_AMG_PARAMS: Readonly<AmgParams> = Object.freeze({
  pointsPerSide: 32,
  pointsPerBatch: 64,
  predIouThresh: 0.88,
  stabilityScoreThresh: 0.95,
  stabilityScoreOffset: 1.0,
  boxNmsThresh: 0.7,
  cropNLayers: 0,
  cropNmsThresh: 0.7,
  cropOverlapRatio: 512 / 1500,
  cropNPointsDownscaleFactor: 1,
  pointGrids: null,
  minMaskRegionArea: 0,
  outputMode: "binary_mask",
});

/** The model's mask_threshold: logits above it are the mask. */
export const MASK_THRESHOLD = 0.0;

const OFFICIAL_NAMES: Record<string, keyof AmgParams> = {
  points_per_side: "pointsPerSide",
  points_per_batch: "pointsPerBatch",
  pred_iou_thresh: "predIouThresh",
  stability_score_thresh: "stabilityScoreThresh",
  stability_score_offset: "stabilityScoreOffset",
  box_nms_thresh: "boxNmsThresh",
  crop_n_layers: "cropNLayers",
  crop_nms_thresh: "cropNmsThresh",
  crop_overlap_ratio: "cropOverlapRatio",
  crop_n_points_downscale_factor: "cropNPointsDownscaleFactor",
  point_grids: "pointGrids",
  min_mask_region_area: "minMaskRegionArea",
  output_mode: "outputMode",
};

/** SAM2AutomaticMaskGenerator's arguments beyond SAM's, with the only values we implement. */
const SAM2_FIXED: Record<string, unknown> = {
  mask_threshold: MASK_THRESHOLD,
  use_m2m: false,
  multimask_output: true,
};

/**
 * Official snake_case keyword arguments (as in SamAutomaticMaskGenerator(...) or an amg.json
 * `params` object) to AmgParams fields. Unknown names are an error; `point_grids` may be
 * nested arrays ([layer][point][x, y]).
 */
export function officialToAmgParams(official: Record<string, unknown>): Partial<AmgParams> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(official)) {
    // SAM2AutomaticMaskGenerator's extra arguments: accepted at the values implemented here.
    if (Object.hasOwn(SAM2_FIXED, name)) {
      if (value !== SAM2_FIXED[name]) {
        throw new Error(
          `automatic mask generator parameter "${name}" = ${value} is not supported ` +
            `(only ${SAM2_FIXED[name]})`,
        );
      }
      continue;
    }
    // Own names only: "toString" or "constructor" must not find Object.prototype's.
    const field = Object.hasOwn(OFFICIAL_NAMES, name) ? OFFICIAL_NAMES[name] : undefined;
    if (!field) throw new Error(`unknown automatic mask generator parameter "${name}"`);
    if (field === "pointGrids" && value !== null) {
      out[field] = (value as ArrayLike<number>[] | number[][][]).map((grid) =>
        grid instanceof Float64Array ? grid : Float64Array.from((grid as number[][]).flat())
      );
    } else {
      out[field] = value;
    }
  }
  return out as Partial<AmgParams>;
}

/** RGB image, row-major H x W x 3 (data may be absent for sources that ignore pixels). */
export type AmgImage = MaskSourceImage;

export type Segmentation = Uint8Array | UncompressedRle | CocoRle;

/** One mask, with the official record's fields (boxes XYWH, point in image pixels). */
export interface MaskRecord<S extends Segmentation = Segmentation> {
  /** binary_mask: row-major H x W 0/1; otherwise the RLE. */
  segmentation: S;
  area: number;
  bbox: Box;
  predicted_iou: number;
  point_coords: [[number, number]];
  stability_score: number;
  crop_box: Box;
}

export interface AmgProgress {
  /** Point batches done so far, over all crops, and their total. */
  batchesDone: number;
  batchesTotal: number;
  /** Index of the crop being processed and the number of crops. */
  crop: number;
  crops: number;
}

/**
 * Where the candidate masks went: how many were predicted (points x masks per point, over all
 * crops), how many each filter dropped, in the order they run, and how many were kept. Says why
 * a run returned no mask (e.g. every candidate under pred_iou_thresh on a weak model).
 */
export interface AmgFilterCounts {
  candidates: number;
  dropped: {
    /** predicted IoU not above pred_iou_thresh */
    pred_iou_thresh: number;
    /** stability score below stability_score_thresh */
    stability_score_thresh: number;
    /** box touching a crop edge that is not an image edge */
    near_crop_edge: number;
    /** duplicates within a crop (box IoU above box_nms_thresh) */
    box_nms_thresh: number;
    /** duplicates across crops (crop_nms_thresh) */
    crop_nms_thresh: number;
    /** duplicates after small-region cleanup (min_mask_region_area) */
    min_mask_region_area: number;
  };
  kept: number;
}

/** All zero. */
export function emptyFilterCounts(): AmgFilterCounts {
  return {
    candidates: 0,
    dropped: {
      pred_iou_thresh: 0,
      stability_score_thresh: 0,
      near_crop_edge: 0,
      box_nms_thresh: 0,
      crop_nms_thresh: 0,
      min_mask_region_area: 0,
    },
    kept: 0,
  };
}

/** One line for people: "1024 candidate masks; dropped: 1000 by pred_iou_thresh ...; 3 kept". */
export function describeFilterCounts(c: AmgFilterCounts): string {
  const drops = Object.entries(c.dropped).filter(([, n]) => n > 0).map(([k, n]) => `${n} by ${k}`);
  return `${c.candidates} candidate masks` +
    (drops.length ? `; dropped ${drops.join(", ")}` : "") + `; ${c.kept} kept`;
}

/** Masks kept so far, one entry per mask in each list (the official MaskData). */
class MaskData {
  rles: UncompressedRle[] = [];
  /** XYXY, crop frame until uncropped. */
  boxes: Box[] = [];
  iouPreds: number[] = [];
  stability: number[] = [];
  /** x,y, crop frame until uncropped. */
  points: [number, number][] = [];
  cropBoxes: Box[] = [];

  get length(): number {
    return this.rles.length;
  }

  cat(other: MaskData): void {
    this.rles.push(...other.rles);
    this.boxes.push(...other.boxes);
    this.iouPreds.push(...other.iouPreds);
    this.stability.push(...other.stability);
    this.points.push(...other.points);
    this.cropBoxes.push(...other.cropBoxes);
  }

  /** Keeps the given indices, in the given order. */
  select(keep: readonly number[]): void {
    this.rles = keep.map((i) => this.rles[i]);
    this.boxes = keep.map((i) => this.boxes[i]);
    this.iouPreds = keep.map((i) => this.iouPreds[i]);
    this.stability = keep.map((i) => this.stability[i]);
    this.points = keep.map((i) => this.points[i]);
    this.cropBoxes = keep.map((i) => this.cropBoxes[i]);
  }

  flatBoxes(): Float32Array {
    const out = new Float32Array(this.boxes.length * 4);
    this.boxes.forEach((b, i) => out.set(b, i * 4));
    return out;
  }
}

export class AutomaticMaskGenerator {
  readonly params: Readonly<AmgParams>;
  /** Point grid of each crop layer, (n, 2) in [0,1]. */
  readonly pointGrids: Float64Array[];

  constructor(params: Partial<AmgParams> = {}) {
    const merged: AmgParams = { ...DEFAULT_AMG_PARAMS, ...params };
    // The default of 32 points a side applies only when no explicit grids are given.
    if (params.pointGrids && params.pointsPerSide === undefined) merged.pointsPerSide = null;
    if ((merged.pointsPerSide === null) === (merged.pointGrids === null)) {
      throw new Error("exactly one of pointsPerSide or pointGrids must be given");
    }
    if (!["binary_mask", "uncompressed_rle", "coco_rle"].includes(merged.outputMode)) {
      throw new Error(`unknown output mode ${merged.outputMode}`);
    }
    if (!(merged.pointsPerBatch >= 1)) throw new Error("pointsPerBatch must be at least 1");
    this.pointGrids = merged.pointsPerSide !== null
      ? buildAllLayerPointGrids(
        merged.pointsPerSide,
        merged.cropNLayers,
        merged.cropNPointsDownscaleFactor,
      )
      : merged.pointGrids!;
    if (this.pointGrids.length < merged.cropNLayers + 1) {
      throw new Error(
        `${this.pointGrids.length} point grids for ${merged.cropNLayers + 1} crop layers`,
      );
    }
    this.params = Object.freeze(merged);
  }

  /** From the official snake_case keyword arguments (e.g. the params of an amg.json). */
  static fromOfficialParams(official: Record<string, unknown>): AutomaticMaskGenerator {
    return new AutomaticMaskGenerator(officialToAmgParams(official));
  }

  /** Masks for the whole image, as the official generate() returns them. */
  async generate(
    image: AmgImage,
    source: MaskSource,
    onProgress?: (progress: AmgProgress) => void,
  ): Promise<MaskRecord[]> {
    return (await this.generateWithCounts(image, source, onProgress)).records;
  }

  /** generate(), and how many candidates each filter dropped. */
  async generateWithCounts(
    image: AmgImage,
    source: MaskSource,
    onProgress?: (progress: AmgProgress) => void,
  ): Promise<{ records: MaskRecord[]; counts: AmgFilterCounts }> {
    const p = this.params;
    const counts = emptyFilterCounts();
    let data = await this.generateMasks(image, source, counts, onProgress);
    // SAM 2's sources clean each low-res mask instead (SAM2AutomaticMaskGenerator).
    if (p.minMaskRegionArea > 0 && !source.regionsInLowRes) {
      const before = data.length;
      data = AutomaticMaskGenerator.postprocessSmallRegions(
        data,
        p.minMaskRegionArea,
        Math.max(p.boxNmsThresh, p.cropNmsThresh),
      );
      counts.dropped.min_mask_region_area = before - data.length;
    }
    counts.kept = data.length;
    const records = data.rles.map((rle, i): MaskRecord => ({
      segmentation: p.outputMode === "coco_rle"
        ? cocoEncodeRle(rle)
        : p.outputMode === "binary_mask"
        ? rleToMask(rle)
        : rle,
      area: areaFromRle(rle),
      bbox: boxXyxyToXywh(data.boxes[i]),
      predicted_iou: data.iouPreds[i],
      point_coords: [[data.points[i][0], data.points[i][1]]],
      stability_score: data.stability[i],
      crop_box: boxXyxyToXywh(data.cropBoxes[i]),
    }));
    return { records, counts };
  }

  private async generateMasks(
    image: AmgImage,
    source: MaskSource,
    counts: AmgFilterCounts,
    onProgress?: (progress: AmgProgress) => void,
  ): Promise<MaskData> {
    const p = this.params;
    const { boxes: cropBoxes, layerIdxs } = generateCropBoxes(
      image.height,
      image.width,
      p.cropNLayers,
      p.cropOverlapRatio,
    );
    const batchesPerCrop = layerIdxs.map((l) =>
      Math.ceil(this.pointGrids[l].length / 2 / p.pointsPerBatch)
    );
    const progress: AmgProgress = {
      batchesDone: 0,
      batchesTotal: batchesPerCrop.reduce((a, b) => a + b, 0),
      crop: 0,
      crops: cropBoxes.length,
    };
    const data = new MaskData();
    for (let c = 0; c < cropBoxes.length; c++) {
      progress.crop = c;
      data.cat(
        await this.processCrop(
          image,
          source,
          cropBoxes[c],
          layerIdxs[c],
          progress,
          counts,
          onProgress,
        ),
      );
    }
    if (cropBoxes.length > 1) {
      // Prefer masks from smaller crops: score = 1 / crop area, a float32 in torch.
      const scores = new Float32Array(data.cropBoxes.map((b) => 1 / boxArea(b)));
      const before = data.length;
      data.select(batchedNms(data.flatBoxes(), scores, p.cropNmsThresh));
      counts.dropped.crop_nms_thresh = before - data.length;
    }
    return data;
  }

  private async processCrop(
    image: AmgImage,
    source: MaskSource,
    cropBox: Box,
    layerIdx: number,
    progress: AmgProgress,
    counts: AmgFilterCounts,
    onProgress?: (progress: AmgProgress) => void,
  ): Promise<MaskData> {
    const p = this.params;
    const [x0, y0, x1, y1] = cropBox;
    const cropW = x1 - x0, cropH = y1 - y0;
    await source.setImage(cropImage(image, cropBox));

    // Grid (n, 2) in [0,1] scaled to the crop's pixels, in float64 as numpy does.
    const grid = this.pointGrids[layerIdx];
    const nPoints = grid.length / 2;
    const points = new Float64Array(nPoints * 2);
    for (let i = 0; i < nPoints; i++) {
      points[2 * i] = grid[2 * i] * cropW;
      points[2 * i + 1] = grid[2 * i + 1] * cropH;
    }

    const data = new MaskData();
    for (let start = 0; start < nPoints; start += p.pointsPerBatch) {
      const end = Math.min(nPoints, start + p.pointsPerBatch);
      data.cat(
        await this.processBatch(
          points.subarray(2 * start, 2 * end),
          source,
          cropBox,
          image,
          counts,
        ),
      );
      progress.batchesDone++;
      onProgress?.({ ...progress });
    }

    // Remove duplicates within the crop.
    const before = data.length;
    data.select(batchedNms(data.flatBoxes(), new Float32Array(data.iouPreds), p.boxNmsThresh));
    counts.dropped.box_nms_thresh += before - data.length;

    // Back to the image frame.
    data.boxes = data.boxes.map((b) => uncropBox(b, cropBox));
    data.points = data.points.map((pt) => uncropPoint(pt, cropBox));
    data.cropBoxes = data.rles.map(() => [x0, y0, x1, y1]);
    return data;
  }

  private async processBatch(
    points: Float64Array,
    source: MaskSource,
    cropBox: Box,
    image: AmgImage,
    counts: AmgFilterCounts,
  ): Promise<MaskData> {
    const p = this.params;
    const [x0, y0, x1, y1] = cropBox;
    const cropW = x1 - x0, cropH = y1 - y0;
    const n = points.length / 2;
    const request: MaskBatchRequest = {
      points: Float32Array.from(points),
      n,
      maskThreshold: MASK_THRESHOLD,
      predIouThresh: p.predIouThresh,
      stabilityScoreThresh: p.stabilityScoreThresh,
      stabilityScoreOffset: p.stabilityScoreOffset,
      minMaskRegionArea: p.minMaskRegionArea,
    };
    const batch = await predictMaskBatch(source, request, cropH, cropW);
    const perPoint = batch.masksPerPoint;
    // float32 statistics compare with thresholds cast to float32, as in torch.
    const iouThresh = Math.fround(p.predIouThresh);
    const stabilityThresh = Math.fround(p.stabilityScoreThresh);
    const imageBox = [0, 0, image.width, image.height];

    const keep: number[] = [];
    counts.candidates += n * perPoint;
    const dropped = counts.dropped;
    for (let i = 0; i < n * perPoint; i++) {
      if (p.predIouThresh > 0 && !(batch.iou[i] > iouThresh)) {
        dropped.pred_iou_thresh++;
        continue;
      }
      if (p.stabilityScoreThresh > 0 && !(batch.stability[i] >= stabilityThresh)) {
        dropped.stability_score_thresh++;
        continue;
      }
      const box = Array.from(batch.boxes.subarray(4 * i, 4 * i + 4));
      if (isBoxNearCropEdge(box, cropBox, imageBox)) {
        dropped.near_crop_edge++;
        continue;
      }
      keep.push(i);
    }

    const data = new MaskData();
    const masks = await batch.readMasks(keep);
    batch.release?.();
    keep.forEach((i, k) => {
      data.rles.push(
        maskToRleInFrame(masks[k], cropW, cropH, x0, y0, image.width, image.height),
      );
      data.boxes.push(Array.from(batch.boxes.subarray(4 * i, 4 * i + 4)) as Box);
      data.iouPreds.push(batch.iou[i]);
      data.stability.push(batch.stability[i]);
      const pt = Math.floor(i / perPoint);
      data.points.push([points[2 * pt], points[2 * pt + 1]]);
    });
    return data;
  }

  /**
   * Fills small holes and removes small islands (min area `minArea`, 8-connectivity) of every
   * mask, then NMS (threshold nmsThresh) preferring masks that did not change; kept masks that
   * changed get their new RLE and box. Returns the data, filtered and reordered.
   */
  private static postprocessSmallRegions(
    data: MaskData,
    minArea: number,
    nmsThresh: number,
  ): MaskData {
    if (data.length === 0) return data;
    const newMasks: Uint8Array[] = [];
    const scores = new Float32Array(data.length);
    const boxes = new Float32Array(data.length * 4);
    data.rles.forEach((rle, i) => {
      const [h, w] = rle.size;
      const holes = removeSmallRegions(rleToMask(rle), h, w, minArea, "holes");
      const islands = removeSmallRegions(holes.mask, h, w, minArea, "islands");
      newMasks.push(islands.mask);
      scores[i] = holes.changed || islands.changed ? 0 : 1;
      boxes.set(maskToBox(islands.mask, h, w), i * 4);
    });
    const keep = batchedNms(boxes, scores, nmsThresh);
    for (const i of keep) {
      if (scores[i] === 0) {
        const [h, w] = data.rles[i].size;
        data.rles[i] = maskToRle(newMasks[i], h, w);
        data.boxes[i] = Array.from(boxes.subarray(4 * i, 4 * i + 4)) as Box;
      }
    }
    data.select(keep);
    return data;
  }
}

/** The crop of an RGB image (XYXY box); without pixel data, only the size. */
export function cropImage(image: AmgImage, box: readonly number[]): AmgImage {
  const [x0, y0, x1, y1] = box;
  const width = x1 - x0, height = y1 - y0;
  if (!image.data) return { width, height };
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(
      `image data has ${image.data.length} bytes, expected ${image.height}x${image.width}x3`,
    );
  }
  if (x0 === 0 && y0 === 0 && x1 === image.width && y1 === image.height) return image;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const src = ((y + y0) * image.width + x0) * 3;
    data.set(image.data.subarray(src, src + width * 3), y * width * 3);
  }
  return { width, height, data };
}
