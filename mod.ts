/**
 * wgsam: Segment Anything on WebGPU, native to Deno.
 *
 * @module
 */
export { convertCheckpoint, loadSam, loadStateDict, openCheckpoint } from "./src/weights/load.ts";
export type { SamArch, StateDict } from "./src/weights/types.ts";
export { inferArch, OFFICIAL_ARCHS } from "./src/weights/arch.ts";
export * from "./src/amg/mod.ts";
