/**
 * A frame's memory, as the video predictor makes and keeps it (sam2_base `_encode_new_memory`,
 * sam2_video_predictor `_run_memory_encoder` / `_run_single_frame_inference`):
 *
 *   high_res = bilinear(low-res logits -> S x S)      (align_corners=False)
 *   mask = (high_res > 0) if the frame's mask came from clicks (binarize_mask_from_pts_for_mem_enc)
 *          else sigmoid(high_res);  mask = mask * 20 - 10
 *   features = MemoryEncoder(pix_feat, mask)           (pix_feat: features WITHOUT no_mem_embed)
 *   features += no_obj_embed_spatial where the object score is <= 0
 *   stored as bfloat16 (the official `.to(torch.bfloat16)`), which also halves what a long
 *   video keeps per memory.
 */
import type { GpuContext } from "../gpu/context.ts";
import { type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { resizeBilinear } from "../kernels/resize_bilinear.ts";
import { sigmoidAffine } from "../kernels/sigmoid_affine.ts";
import type { MemoryEncoder } from "./memory_encoder.ts";

/** float32 -> bfloat16 bits, round to nearest even (torch's `.to(torch.bfloat16)`). */
export function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = u[i];
    if ((v & 0x7fffffff) > 0x7f800000) {
      out[i] = (v >>> 16) | 0x40; // NaN stays a (quiet) NaN
      continue;
    }
    out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bfloat16 bits -> float32 values (exact). */
export function fromBf16(b: Uint16Array): Float32Array {
  const u = new Uint32Array(b.length);
  for (let i = 0; i < b.length; i++) u[i] = b[i] << 16;
  return new Float32Array(u.buffer);
}

export interface FrameMemory {
  /** maskmem_features [s * s, outDim] token-major, bfloat16 bits. */
  features: Uint16Array;
  /** maskmem_pos_enc [s * s, outDim] (the same for every frame of a size; shared, not copied). */
  posEnc: Float32Array;
}

export interface EncodeMemoryInput {
  /** [s, s, C] top-level image features without no_mem_embed. */
  pixFeat: Tensor;
  /** The frame's low-res mask logits (l x l, l = S / 4). */
  lowRes: Float32Array;
  objScore: number;
  /** The frame's mask came from clicks (a prompted frame): binarize instead of sigmoid. */
  fromPoints: boolean;
}

export async function encodeNewMemory(
  ctx: GpuContext,
  encoder: MemoryEncoder,
  noObjEmbedSpatial: Float32Array,
  S: number,
  input: EncodeMemoryInput,
): Promise<FrameMemory> {
  const a = encoder.arch;
  const l = Math.round(Math.sqrt(input.lowRes.length));
  if (l * l !== input.lowRes.length) {
    throw new Error(`encodeNewMemory: low-res mask of ${input.lowRes.length} values is not square`);
  }
  const D = a.memoryEncoder.outDim;
  if (noObjEmbedSpatial.length !== D) {
    throw new Error(
      `encodeNewMemory: no_obj_embed_spatial has ${noObjEmbedSpatial.length} values, need ${D}`,
    );
  }
  const low = tensorFrom(ctx, input.lowRes, [1, l, l], "video.memory.low_res");
  const high = resizeBilinear(ctx, low, S, S); // [1, S, S]
  const mask = sigmoidAffine(ctx, high, {
    mode: input.fromPoints ? "binarize" : "sigmoid",
    scale: a.sigmoidScaleForMemEnc,
    bias: a.sigmoidBiasForMemEnc,
  });
  const out = encoder.encode(input.pixFeat, mask.reshape([S, S]));
  const features = await out.features.read();
  for (const t of [low, high, mask, out.features]) t.destroy();
  if (!(input.objScore > 0)) {
    // (1 - is_obj_appearing) * no_obj_embed_spatial, broadcast over the pixels.
    for (let i = 0; i < features.length; i++) features[i] += noObjEmbedSpatial[i % D];
  }
  return { features: toBf16(features), posEnc: out.posEnc };
}
