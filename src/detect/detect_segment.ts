/**
 * Detect, then segment: a detector's boxes become SAM box prompts, all of them in ONE
 * batched decoder pass (`predictBatch`, one mask per box: multimask off, as SAM's guidance
 * for box prompts), and each detection becomes a COCO-style annotation with its mask as a
 * compressed RLE.
 *
 * The predictor is typed structurally (`BoxPredictor`) so that this module depends only on
 * the public types, not on the predictor's implementation.
 */
import { areaFromRle, cocoEncodeRle, type CocoRle, maskToRle } from "../amg/rle.ts";
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../types.ts";
import { COCO_91_IDS, COCO_CATEGORIES, isCocoClassList } from "./coco_classes.ts";
import type { Detection, DetectOptions, DetectorLike } from "./detector.ts";

/** What detect-then-segment needs of a SAM predictor (SamPredictor satisfies it). */
export interface BoxPredictor {
  setImage(image: RgbImage): Promise<ImageInfo>;
  predictBatch(prompts: Prompt[]): Promise<Prediction[]>;
}

/** One detection with its mask, in the form of a COCO annotation (results format plus ids). */
export interface DetectSegmentAnnotation {
  /** 1-based, in detection order (best score first). */
  id: number;
  image_id: number;
  /**
   * With COCO's class list the official COCO category id (1..90 with gaps: person 1, car 3,
   * dog 18); with any other class list, the class index.
   */
  category_id: number;
  category_name: string;
  /** The detector's contiguous class index (COCO: 0..79, person 0, car 2, dog 16). */
  class_index: number;
  /** The detector's score. */
  score: number;
  /** The detector's box in photo pixels, [x, y, width, height]. */
  bbox: [number, number, number, number];
  /** SAM's mask as pycocotools' compressed RLE (column-major runs). */
  segmentation: CocoRle;
  /** Mask pixels. */
  area: number;
  /** SAM's predicted IoU of the mask. */
  predicted_iou: number;
  /** Always 0 (COCO's crowd flag; pycocotools' evaluation reads it). */
  iscrowd: 0;
}

export interface DetectSegmentResult {
  width: number;
  height: number;
  detections: Detection[];
  /** One binary mask (height x width, row-major 0/1) per detection. */
  masks: Uint8Array[];
  annotations: DetectSegmentAnnotation[];
  /** The predictor's report on the image; null when nothing was detected (SAM not run). */
  imageInfo: ImageInfo | null;
  timings: { detectMs: number; encodeMs: number; decodeMs: number };
}

export interface DetectSegmentOptions extends DetectOptions {
  /** image_id written in the annotations; default 1. */
  imageId?: number;
}

/** [x0, y0, x1, y1] -> COCO's [x, y, w, h]. */
export function xyxyToXywh(box: readonly number[]): [number, number, number, number] {
  return [box[0], box[1], box[2] - box[0], box[3] - box[1]];
}

/**
 * SAM masks for given detections against the predictor's current image: one batched pass,
 * one mask per box. Returns the predictions in detection order.
 */
export async function segmentDetections(
  predictor: BoxPredictor,
  detections: readonly Detection[],
): Promise<Prediction[]> {
  if (detections.length === 0) return [];
  const prompts: Prompt[] = detections.map((d) => ({ box: d.box, multimask: false }));
  const predictions = await predictor.predictBatch(prompts);
  if (predictions.length !== detections.length) {
    throw new Error(
      `detect-segment: predictBatch returned ${predictions.length} predictions for ` +
        `${detections.length} boxes`,
    );
  }
  return predictions;
}

/** Detections and their masks as COCO-style annotations. */
export function toAnnotations(
  detections: readonly Detection[],
  predictions: readonly Prediction[],
  classNames: readonly string[],
  imageId = 1,
): { annotations: DetectSegmentAnnotation[]; masks: Uint8Array[] } {
  const isCoco = isCocoClassList(classNames);
  const annotations: DetectSegmentAnnotation[] = [];
  const masks: Uint8Array[] = [];
  detections.forEach((d, i) => {
    const p = predictions[i];
    if (p.masks.length !== 1) {
      throw new Error(`detect-segment: expected one mask per box, got ${p.masks.length}`);
    }
    const mask = p.masks[0];
    const rle = maskToRle(mask, p.height, p.width);
    annotations.push({
      id: i + 1,
      image_id: imageId,
      category_id: isCoco ? COCO_91_IDS[d.classId] : d.classId,
      category_name: d.className,
      class_index: d.classId,
      score: d.score,
      bbox: xyxyToXywh(d.box),
      segmentation: cocoEncodeRle(rle),
      area: areaFromRle(rle),
      predicted_iou: p.scores[0],
      iscrowd: 0,
    });
    masks.push(mask);
  });
  return { annotations, masks };
}

/**
 * Detects objects in the photo and segments each with SAM: the detector runs first; when it
 * finds nothing, SAM's encoder is not run at all. Class names are checked before anything
 * runs (unknown names throw, listing close matches).
 */
export async function detectAndSegment(
  image: RgbImage,
  detector: DetectorLike,
  predictor: BoxPredictor,
  opts: DetectSegmentOptions = {},
): Promise<DetectSegmentResult> {
  const t0 = performance.now();
  const detections = await detector.detect(image, opts);
  const t1 = performance.now();
  let imageInfo: ImageInfo | null = null;
  let predictions: Prediction[] = [];
  let t2 = t1;
  if (detections.length) {
    imageInfo = await predictor.setImage(image);
    t2 = performance.now();
    predictions = await segmentDetections(predictor, detections);
  }
  const t3 = performance.now();
  const { annotations, masks } = toAnnotations(
    detections,
    predictions,
    detector.classNames,
    opts.imageId ?? 1,
  );
  return {
    width: image.width,
    height: image.height,
    detections,
    masks,
    annotations,
    imageInfo,
    timings: { detectMs: t1 - t0, encodeMs: t2 - t1, decodeMs: t3 - t2 },
  };
}

/** A COCO instances file with one image. */
export interface CocoInstances {
  images: { id: number; width: number; height: number; file_name?: string }[];
  annotations: DetectSegmentResult["annotations"];
  categories: { id: number; name: string; supercategory?: string }[];
}

/**
 * The result as a COCO instances file (loadable by pycocotools' COCO()): one image, the
 * annotations, and the categories (ids as in the annotations): COCO's standard list for a
 * COCO detector, else the detector's classes numbered by index.
 */
export function cocoJson(
  result: DetectSegmentResult,
  classNames: readonly string[],
  fileName?: string,
  imageId = 1,
): CocoInstances {
  return {
    images: [{
      id: imageId,
      width: result.width,
      height: result.height,
      ...(fileName ? { file_name: fileName } : {}),
    }],
    annotations: result.annotations,
    categories: isCocoClassList(classNames)
      ? COCO_CATEGORIES.map((c) => ({ ...c }))
      : classNames.map((name, id) => ({ id, name })),
  };
}
