/**
 * wgsam: Segment Anything on WebGPU, native to Deno.
 *
 * Load a model, set an image once (its embedding is computed by our WGSL encoder and cached),
 * then prompt it with clicks, boxes and earlier masks; each prompt runs only the decoder.
 *
 * ```ts
 * import { readImageFile, SamModel, SamPredictor } from "./mod.ts";
 *
 * const model = await SamModel.load("sam-tiny"); // "vit_b" after `deno task weights vit_b`
 * const predictor = new SamPredictor(model);
 * await predictor.setImage(await readImageFile("tests/fixtures/sam-tiny/image.png"));
 * const box = await predictor.predict({ box: [16, 21, 112, 91], multimask: false });
 * const refined = await predictor.predict({
 *   points: [[48, 64]],
 *   labels: [0],
 *   maskInput: box.lowResLogits,
 *   multimask: false,
 * });
 * console.log(refined.scores[0], refined.masks[0].length); // IoU estimate, H*W mask bytes
 * predictor.dispose();
 * model.dispose();
 * ```
 *
 * @module
 */
export { DEFAULT_CACHE_BYTES, imageId, SamModel, SamPredictor } from "./src/predictor.ts";
export type { ImageInfo, Prediction, Prompt, RgbImage } from "./src/types.ts";
export {
  decodeImage,
  encodeMaskPng,
  encodeOverlayPng,
  ImageDecodeError,
  readImageFile,
} from "./src/image.ts";
export { convertCheckpoint, loadSam, loadStateDict, openCheckpoint } from "./src/weights/load.ts";
export type { SamArch, StateDict } from "./src/weights/types.ts";
export type { ImageFeatures, ModelFamilyName } from "./src/family.ts";
export { officialSam2Arch, type Sam2Arch, type Sam2ArchHints } from "./src/sam2/arch.ts";
export { convertSam2Checkpoint, loadSam2 } from "./src/sam2/load.ts";
export {
  DEFAULT_HISTORY_FRAMES,
  NO_OBJ_SCORE,
  type PropagateOptions,
  SamVideoPredictor,
  type SamVideoPredictorOptions,
  type VideoFrameResult,
  type VideoMemoryUsage,
  type VideoPrompt,
} from "./src/sam2/video_predictor.ts";
export { inferArch, OFFICIAL_ARCHS } from "./src/weights/arch.ts";
export {
  getModel,
  installInstructions,
  listModels,
  type ModelEntry,
  resolveModel,
} from "./src/weights/registry.ts";
export {
  downloadModel,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadResult,
  md5File,
} from "./src/weights/download.ts";
export * from "./src/amg/mod.ts";
export * from "./src/detect/mod.ts";
export {
  DEFAULT_POLYGON_TOLERANCE,
  findContours,
  type MaskPolygons,
  maskToPolygons,
  type Ring,
  simplifyRing,
} from "./src/util/contours.ts";
export { maskToBrushRle } from "./src/util/brush_rle.ts";
