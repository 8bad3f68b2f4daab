/**
 * The parts of a SAM 2.1 checkpoint that video tracking needs beyond the image model: the
 * memory encoder, the memory attention, the object-pointer head and the few constants that
 * sam2_base reads (maskmem_tpos_enc, obj_ptr_tpos_proj, no_obj_embed_spatial), uploaded once
 * beside the image encoder and decoder they share the GPU context with.
 */
import type { GpuContext } from "../gpu/context.ts";
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2Arch } from "./arch.ts";
import type { Sam2ImageEncoder } from "./image_encoder.ts";
import type { Sam2Decoder } from "./mask_decoder.ts";
import type { MemoryWeights } from "./memory_bank.ts";
import { inferSam2MemoryArch, type Sam2MemoryArch } from "./memory_arch.ts";
import { MemoryAttention } from "./memory_attention.ts";
import { MemoryEncoder } from "./memory_encoder.ts";
import { ObjectPointerHead } from "./object_pointer.ts";

/** sam2_base max_obj_ptrs_in_encoder of every SAM 2.1 config. */
export const MAX_OBJ_PTRS_IN_ENCODER = 16;

export interface Sam2VideoModules {
  readonly ctx: GpuContext;
  readonly arch: Sam2Arch;
  readonly memArch: Sam2MemoryArch;
  /** The image model's encoder and decoder (owned by the model, not by these modules). */
  readonly encoder: Sam2ImageEncoder;
  readonly decoder: Sam2Decoder;
  readonly memoryEncoder: MemoryEncoder;
  readonly memoryAttention: MemoryAttention;
  readonly pointerHead: ObjectPointerHead;
  readonly memoryWeights: MemoryWeights;
  /** no_obj_embed_spatial [memDim]. */
  readonly noObjEmbedSpatial: Float32Array;
  /** Frees the memory encoder's and attention's GPU weights (not the encoder / decoder). */
  dispose(): void;
}

/** Whether the state dict carries the video modules (an image-only export would not). */
export function hasSam2VideoWeights(sd: StateDict): boolean {
  return [
    "memory_encoder.pix_feat_proj.weight",
    "memory_attention.norm.weight",
    "maskmem_tpos_enc",
    "obj_ptr_tpos_proj.weight",
    "no_obj_embed_spatial",
    "no_obj_ptr",
  ].every((n) => sd.has(n));
}

function f32(sd: StateDict, name: string): Float32Array {
  const t = sd.get(name);
  if (!t) throw new Error(`SAM 2 video: checkpoint has no tensor '${name}'`);
  return tensorF32(t);
}

export function createSam2VideoModules(
  ctx: GpuContext,
  sd: StateDict,
  arch: Sam2Arch,
  encoder: Sam2ImageEncoder,
  decoder: Sam2Decoder,
): Sam2VideoModules {
  const memArch = inferSam2MemoryArch(sd);
  const C = arch.dModel, md = memArch.memoryEncoder.outDim;
  if (memArch.memoryAttention.dModel !== C || memArch.memoryEncoder.inDim !== C) {
    throw new Error(
      `SAM 2 video: memory modules are ${memArch.memoryAttention.dModel} wide, the image model ${C}`,
    );
  }
  if (C % md !== 0) throw new Error(`SAM 2 video: pointer width ${C} is not a multiple of ${md}`);
  const maskmemTposEnc = f32(sd, "maskmem_tpos_enc"); // (num_maskmem, 1, 1, memDim)
  const tposProjW = f32(sd, "obj_ptr_tpos_proj.weight"); // (memDim, C)
  const tposProjB = f32(sd, "obj_ptr_tpos_proj.bias");
  const noObjEmbedSpatial = f32(sd, "no_obj_embed_spatial"); // (1, memDim)
  if (tposProjW.length !== md * C || noObjEmbedSpatial.length !== md) {
    throw new Error("SAM 2 video: obj_ptr_tpos_proj / no_obj_embed_spatial have unexpected sizes");
  }
  const pointerHead = new ObjectPointerHead(sd);
  const memoryEncoder = new MemoryEncoder(ctx, sd, memArch);
  let memoryAttention: MemoryAttention;
  try {
    memoryAttention = new MemoryAttention(ctx, sd, memArch);
  } catch (err) {
    memoryEncoder.dispose();
    throw err;
  }
  return {
    ctx,
    arch,
    memArch,
    encoder,
    decoder,
    memoryEncoder,
    memoryAttention,
    pointerHead,
    memoryWeights: { maskmemTposEnc, tposProjW, tposProjB, C, memDim: md },
    noObjEmbedSpatial,
    dispose() {
      memoryEncoder.dispose();
      memoryAttention.dispose();
    },
  };
}
