/**
 * The video side of a SAM 2 checkpoint (memory encoder, memory attention, object pointers),
 * read from tensor shapes. What no shape tells (attention heads, RoPE theta, where the
 * position encodings are added, the sigmoid scale / bias of the memory mask) comes from the
 * official SAM 2.1 configs, identical in all four sizes (`configs/sam2.1/sam2.1_hiera_*.yaml`)
 * and in the fixtures.
 */
import type { StateDict } from "../weights/types.ts";

export interface Sam2MemoryArch {
  /** Memory encoder: in_dim (= d_model of the image features), out_dim (memory channels). */
  memoryEncoder: {
    inDim: number;
    outDim: number;
    /** Mask downsampler: its strided convs (channels 1 -> 4 -> 16 -> ...), then a 1x1 to inDim. */
    downsampleLayers: number;
    downsampleKernel: number;
    downsampleStride: number;
    downsamplePadding: number;
    fuserLayers: number;
    fuserKernel: number;
    /** Fuser ConvNeXt blocks have layer scale (gamma). */
    fuserLayerScale: boolean;
  };
  memoryAttention: {
    dModel: number;
    numLayers: number;
    dimFeedforward: number;
    /** kv_in_dim of the cross-attention = memory channels. */
    kvInDim: number;
    selfAttnHeads: number;
    crossAttnHeads: number;
    ropeTheta: number;
    /** curr + 0.1 * curr_pos at the input (pos_enc_at_input). */
    posEncAtInput: boolean;
    /** The memory pos enc is added to the cross-attention keys, not to the queries. */
    posEncAtCrossAttnKeys: boolean;
  };
  /** maskmem_tpos_enc's length. */
  numMaskmem: number;
  sigmoidScaleForMemEnc: number;
  sigmoidBiasForMemEnc: number;
}

/** Heads of both RoPE attentions in every released SAM 2.1 config. */
const OFFICIAL_HEADS = 1;

function shapeOf(sd: StateDict, name: string): number[] {
  const t = sd.get(name);
  if (!t) throw new Error(`SAM 2 video: checkpoint has no tensor '${name}'`);
  return t.shape;
}

function countLayers(sd: StateDict, prefix: string, suffix: string): number {
  let n = 0;
  while (sd.has(`${prefix}${n}${suffix}`)) n++;
  return n;
}

export function inferSam2MemoryArch(
  sd: StateDict,
  hints: { selfAttnHeads?: number; crossAttnHeads?: number } = {},
): Sam2MemoryArch {
  const me = "memory_encoder.";
  const [inDim] = shapeOf(sd, `${me}pix_feat_proj.weight`);
  const outDim = sd.has(`${me}out_proj.weight`) ? shapeOf(sd, `${me}out_proj.weight`)[0] : inDim;
  // nn.Sequential indices: conv, LayerNorm2d, GELU per layer (3 each), then the 1x1 conv.
  const ds = `${me}mask_downsampler.encoder.`;
  let downsampleLayers = 0;
  while (sd.has(`${ds}${3 * downsampleLayers}.weight`)) downsampleLayers++;
  downsampleLayers--; // the last conv found is the final 1x1
  if (downsampleLayers < 1) throw new Error("SAM 2 video: no mask downsampler convs");
  const [, , k] = shapeOf(sd, `${ds}0.weight`);
  const last = shapeOf(sd, `${ds}${3 * downsampleLayers}.weight`);
  if (last[0] !== inDim || last[2] !== 1) {
    throw new Error(`SAM 2 video: mask downsampler ends in [${last}], expected a 1x1 to ${inDim}`);
  }
  const fuserLayers = countLayers(sd, `${me}fuser.layers.`, ".dwconv.weight");
  const fuserKernel = fuserLayers > 0 ? shapeOf(sd, `${me}fuser.layers.0.dwconv.weight`)[2] : 0;
  const ma = "memory_attention.";
  const [dModel] = shapeOf(sd, `${ma}norm.weight`);
  const numLayers = countLayers(sd, `${ma}layers.`, ".norm1.weight");
  const [dimFeedforward] = shapeOf(sd, `${ma}layers.0.linear1.weight`);
  const [, kvInDim] = shapeOf(sd, `${ma}layers.0.cross_attn_image.k_proj.weight`);
  if (kvInDim !== outDim) {
    throw new Error(
      `SAM 2 video: cross-attention reads ${kvInDim} channels, memories have ${outDim}`,
    );
  }
  const [numMaskmem] = shapeOf(sd, "maskmem_tpos_enc");
  return {
    memoryEncoder: {
      inDim,
      outDim,
      downsampleLayers,
      downsampleKernel: k,
      // stride 2 / padding 1 for the 3x3 kernel of every SAM 2.1 config (total stride 16).
      downsampleStride: 2,
      downsamplePadding: (k - 1) / 2,
      fuserLayers,
      fuserKernel,
      fuserLayerScale: sd.has(`${me}fuser.layers.0.gamma`),
    },
    memoryAttention: {
      dModel,
      numLayers,
      dimFeedforward,
      kvInDim,
      selfAttnHeads: hints.selfAttnHeads ?? OFFICIAL_HEADS,
      crossAttnHeads: hints.crossAttnHeads ?? OFFICIAL_HEADS,
      ropeTheta: 10000,
      posEncAtInput: true,
      posEncAtCrossAttnKeys: true,
    },
    numMaskmem,
    sigmoidScaleForMemEnc: 20,
    sigmoidBiasForMemEnc: -10,
  };
}
