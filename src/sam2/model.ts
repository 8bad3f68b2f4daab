/**
 * A SAM 2.1 checkpoint as the family seam's encoder and decoder (src/family.ts): the Hiera
 * image encoder with SAM2Transforms (src/sam2/image_encoder.ts) and the SAM 2 decoder.
 */
import type { GpuContext } from "../gpu/context.ts";
import {
  type FamilyDecoder,
  type FamilyEncoder,
  sam2Decoder,
  sam2ImageFeatures,
} from "../family.ts";
import type { Sam2Arch, Sam2ArchHints } from "./arch.ts";
import { encodeImageSam2, Sam2ImageEncoder } from "./image_encoder.ts";
import { loadSam2 } from "./load.ts";
import { Sam2Decoder } from "./mask_decoder.ts";
import type { StateDict } from "../weights/types.ts";
import {
  createSam2VideoModules,
  hasSam2VideoWeights,
  type Sam2VideoModules,
} from "./video_model.ts";

/** The three tensors SAM2ImagePredictor keeps, NCHW (s = S / 16). */
export function sam2FeatureShapes(arch: Sam2Arch): { name: string; shape: number[] }[] {
  const C = arch.dModel, s = arch.imgSize / arch.backboneStride;
  return [
    { name: "image_embed", shape: [1, C, s, s] },
    { name: "high_res_feats_0", shape: [1, C / 8, 4 * s, 4 * s] },
    { name: "high_res_feats_1", shape: [1, C / 4, 2 * s, 2 * s] },
  ];
}

/**
 * SAM 2's encoder and decoder from weights in memory, and the video modules (memory encoder,
 * memory attention, object pointers) with `video` when the checkpoint has them.
 */
export function sam2Modules(
  ctx: GpuContext,
  sd: StateDict,
  arch: Sam2Arch,
  opts: { video?: boolean } = {},
): { encoder: FamilyEncoder; decoder: FamilyDecoder; video?: Sam2VideoModules } {
  const encoder = Sam2ImageEncoder.fromStateDict(ctx, sd, arch);
  let decoder: Sam2Decoder;
  try {
    decoder = Sam2Decoder.create(ctx, sd, arch);
  } catch (err) {
    encoder.dispose();
    throw err;
  }
  let video: Sam2VideoModules | undefined;
  try {
    video = opts.video && hasSam2VideoWeights(sd)
      ? createSam2VideoModules(ctx, sd, arch, encoder, decoder)
      : undefined;
  } catch (err) {
    encoder.dispose();
    decoder.dispose();
    throw err;
  }
  return {
    video,
    encoder: {
      family: "sam2",
      imgSize: arch.imgSize,
      featureShapes: sam2FeatureShapes(arch),
      encode: (image, opts) => sam2ImageFeatures(encodeImageSam2(encoder, image, opts).features),
      dispose: () => encoder.dispose(),
    },
    decoder: sam2Decoder(decoder),
  };
}

/** Loads a SAM 2 checkpoint (`hints`: what no tensor shape tells, see arch.ts). */
export async function loadSam2Modules(
  ctx: GpuContext,
  path: string | URL,
  hints?: Sam2ArchHints,
  opts: { video?: boolean } = {},
): Promise<
  { arch: Sam2Arch; encoder: FamilyEncoder; decoder: FamilyDecoder; video?: Sam2VideoModules }
> {
  const { sd, arch } = await loadSam2(path, hints);
  return { arch, ...sam2Modules(ctx, sd, arch, opts) };
}
