/**
 * The seam between a SAM model and its image encoder family: SAM's ViT (image_encoder.ts) and
 * MobileSAM's TinyViT (src/mobile_sam/) both take SAM's preprocessed (3, S, S) image and give
 * the (1, D, s, s) embedding the shared prompt encoder and mask decoder read.
 */
import type { GpuContext } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { isTinyVitCheckpoint } from "../mobile_sam/arch.ts";
import { TinyVitEncoder } from "../mobile_sam/tiny_vit.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import type { Precision } from "../precision.ts";
import { ImageEncoder } from "./image_encoder.ts";

export interface SamImageEncoder {
  /** The model's architecture; `imgSize` is the preprocessing side. */
  readonly arch: SamArch;
  /**
   * Records the forward pass on the (3, S, S) normalised, padded image; returns a new
   * (1, D, s, s) tensor owned by the caller. `onStage` sees each stage's output (named as
   * the family's fixture files), in a buffer later stages reuse.
   */
  encode(
    input: Tensor | Float32Array,
    opts?: { onStage?: (stage: string, t: Tensor) => void },
  ): Tensor;
  /** Frees the activation buffers only (reallocated by the next encode). */
  releaseBuffers(): void;
  /** Frees weights and buffers. */
  dispose(): void;
}

/**
 * The image encoder a checkpoint's tensors call for (TinyViT or SAM's ViT), uploaded;
 * `precision` "f16" stores its GEMM weights, qkv, attention outputs and MLP hidden layers as
 * f16.
 */
export function createImageEncoder(
  ctx: GpuContext,
  sd: StateDict,
  arch: SamArch,
  precision: Precision = "f32",
): SamImageEncoder {
  return isTinyVitCheckpoint(sd)
    ? TinyVitEncoder.fromStateDict(ctx, sd, arch, precision)
    : ImageEncoder.fromStateDict(ctx, sd, arch, precision);
}
