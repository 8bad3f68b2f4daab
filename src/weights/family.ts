/**
 * Which SAM family a checkpoint belongs to, from its tensors: "mobile_sam" (a TinyViT image
 * encoder), "slimsam" (SAM's ViT pruned as SlimSAM does: ViT-B's 12 heads narrowed below
 * head_dim 64; SlimSAM-77 has 14, SlimSAM-50 32) or "sam" (every other SAM ViT: Meta's B / L
 * / H all have head_dim 64, and our toy fixtures have other head counts). All three share the
 * prompt encoder and mask decoder.
 */
import { isTinyVitCheckpoint } from "../mobile_sam/arch.ts";
import type { TensorShapes } from "./arch.ts";
import type { SamArch } from "./types.ts";

export type ModelFamily = "sam" | "mobile_sam" | "slimsam";

export function modelFamily(shapes: TensorShapes, arch: SamArch): ModelFamily {
  if (isTinyVitCheckpoint(shapes)) return "mobile_sam";
  const headDim = arch.embedDim / arch.numHeads;
  return arch.numHeads === 12 && headDim < 64 ? "slimsam" : "sam";
}
