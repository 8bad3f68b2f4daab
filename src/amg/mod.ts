/** Automatic mask generation ("segment everything"): the generator, its mask source, RLE. */
export * from "./automatic_mask_generator.ts";
export * from "./amg_json.ts";
export * from "./mask_source.ts";
export {
  ModelMaskSource,
  type ModelMaskSourceOptions,
  type SamGpuBackend,
} from "./model_source.ts";
export * from "./nms.ts";
export * from "./regions.ts";
export * from "./rle.ts";
export { SamModelBackend } from "./sam_backend.ts";
export * from "./utils.ts";
