/**
 * Precision of a loaded model: "f32" (default: every tensor float32) or "f16" (weights of the
 * matrix products, and the encoder activations between GEMMs and attention: qkv, the attention
 * output and the MLP hidden layer, stored as float16, half the bytes;
 * accumulation, LayerNorm, softmax and the residual stream stay float32, since SAM run fully
 * in fp16 is known to break: facebookresearch/segment-anything #540, #696).
 *
 * Chosen by `SamModel.load(src, { precision })`, `--precision` on `serve` and the CLIs, or
 * `WGSAM_PRECISION` in the environment. f16 needs the adapter's `shader-f16` feature.
 */
import type { GpuContext } from "./gpu/context.ts";
import { envFlag } from "./gpu/device.ts";

export type Precision = "f32" | "f16";

export const PRECISIONS: readonly Precision[] = ["f32", "f16"];

/** The precision named by `value`, or a clear error naming `where` it came from. */
export function parsePrecision(value: string, where: string): Precision {
  const v = value.trim().toLowerCase();
  if (v === "f32" || v === "f16") return v;
  throw new Error(`${where}: precision must be "f32" or "f16", got ${JSON.stringify(value)}`);
}

/** Set by `--precision` (src/cli/args.ts): over $WGSAM_PRECISION for this process. */
let processDefault: Precision | undefined;

/** Makes `p` the precision of every later load that names none (the CLIs' --precision). */
export function setDefaultPrecision(p: Precision): void {
  processDefault = p;
}

/** --precision when given, else $WGSAM_PRECISION when set (and valid), else "f32". */
export function defaultPrecision(): Precision {
  if (processDefault) return processDefault;
  const env = envFlag("WGSAM_PRECISION");
  if (env === undefined || env === "") return "f32";
  return parsePrecision(env, "WGSAM_PRECISION");
}

/**
 * Refuses f16 on a device without `shader-f16` (some Dawn backends, SwiftShader, browsers
 * without it), saying what to do instead.
 */
export function checkPrecision(ctx: GpuContext, precision: Precision): void {
  if (precision === "f16" && !ctx.gpu.hasF16) {
    throw new Error(
      `precision "f16" needs the WebGPU feature "shader-f16", which this adapter ` +
        `(${ctx.gpu.provider}: ${ctx.gpu.description}) does not offer; use precision "f32" ` +
        `(or another provider: --gpu deno has it on Mesa lavapipe)`,
    );
  }
}
