/**
 * Detect, then segment: ONNX object detectors (YOLO-NAS without NMS head, YOLOv8 / YOLO11)
 * through onnxruntime-web, their boxes segmented by SAM in one batched pass, COCO-style
 * annotations and overlay drawing.
 */
export {
  closeClassNames,
  COCO_91_IDS,
  COCO_CATEGORIES,
  COCO_CLASSES,
  type CocoCategory,
  isCocoClassList,
  resolveClassIds,
  UnknownClassError,
} from "./coco_classes.ts";
export {
  DEFAULT_INPUT_SIZE,
  type Detection,
  type DetectOptions,
  Detector,
  type DetectorLike,
  type DetectorOptions,
  type ExecutionProviderChoice,
  webgpuAdapterInfo,
} from "./detector.ts";
export {
  type BoxPredictor,
  cocoJson,
  detectAndSegment,
  type DetectSegmentAnnotation,
  type DetectSegmentOptions,
  type DetectSegmentResult,
  segmentDetections,
  toAnnotations,
  xyxyToXywh,
} from "./detect_segment.ts";
export {
  boxToInput,
  boxToSource,
  type Letterbox,
  letterboxGeometry,
  letterboxImage,
  PAD_VALUE,
} from "./letterbox.ts";
export {
  decodeCandidates,
  detectLayout,
  nmsCandidates,
  UnknownLayoutError,
  type YoloLayout,
  type YoloLayoutKind,
} from "./yolo.ts";
export {
  drawOverlay,
  type OverlayItem,
  overlayItems,
  type OverlayOptions,
  paletteColor,
  renderOverlayPng,
} from "./overlay.ts";
