/**
 * The seam between the predictor (and the AMG, the server) and a model family: an image
 * encoder that turns pixels into the features its decoder reads, and a prompt decoder over
 * those features. SAM (ViT encoder, src/encoder + src/decoder) keeps one tensor per image,
 * SAM 2.1 (Hiera + FPN, src/sam2) three; everything above this file sees `ImageFeatures` and
 * never asks which family it holds.
 */
import type { GpuContext } from "./gpu/context.ts";
import type { Tensor } from "./gpu/tensor.ts";
import { encodeImage } from "./encoder/image_encoder.ts";
import type { SamImageEncoder } from "./encoder/encoder.ts";
import type { ModelFamily } from "./weights/family.ts";
import type { DecoderOptions, DecoderResult, SamDecoder } from "./decoder/mask_decoder.ts";
import type { DecoderPrompt } from "./decoder/transforms.ts";
import type { Sam2Decoder, Sam2Features } from "./sam2/mask_decoder.ts";
import type { RgbImage } from "./types.ts";

/**
 * "sam", "mobile_sam" (TinyViT encoder), "slimsam" (pruned ViT): SAM 1's layout (one embedding,
 * ResizeLongestSide, the same decoder; see weights/family.ts); "sam2": SAM 2.1 (Hiera, square
 * resize, three tensors).
 */
export type ModelFamilyName = ModelFamily | "sam2";

/** What a family's encoder keeps of one image, on the GPU (NCHW, batch 1). */
export interface ImageFeatures {
  /** The image embedding (1, C, s, s): SAM's image_embeddings, SAM 2's image_embed. */
  readonly embedding: Tensor;
  /**
   * Every tensor the decoder reads, by official name, the embedding first: SAM
   * ["image_embeddings"]; SAM 2 ["image_embed", "high_res_feats_0", "high_res_feats_1"].
   */
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly tensor: Tensor }>;
}

/** Bytes the features hold on the GPU (what the embedding cache counts). */
export function featureBytes(features: ImageFeatures): number {
  return features.tensors.reduce((a, t) => a + t.tensor.size * 4, 0);
}

export function destroyFeatures(features: ImageFeatures): void {
  for (const t of features.tensors) t.tensor.destroy();
}

/** Options of one decoder call, as SamDecoder takes them, plus SAM 2's region cleanup. */
export interface FamilyDecodeOptions extends DecoderOptions {
  /**
   * SAM 2 only: remove holes and islands of at most this many low-res pixels before the
   * upscaling (what SAM2AutomaticMaskGenerator does with min_mask_region_area); SAM ignores it.
   */
  minRegionArea?: number;
}

/** One prompt's decoder output; `objectScore` where the family predicts one (SAM 2). */
export interface FamilyDecoderResult extends DecoderResult {
  objectScore?: number;
}

/** Options of one encoder pass. */
export interface EncodeOptions {
  onStage?: (stage: string, t: Tensor) => void;
}

export interface FamilyEncoder {
  readonly family: ModelFamilyName;
  /** Square encoder input side (1024 for the real models). */
  readonly imgSize: number;
  /** Name and NCHW shape of each tensor `encode` returns, in order (the embedding first). */
  readonly featureShapes: ReadonlyArray<{ readonly name: string; readonly shape: number[] }>;
  /**
   * Records the encoder's GPU work for `image`; the caller syncs (and owns the features).
   * `onStage` sees each stage's output (named as the family's fixture files), in a buffer later
   * stages reuse: copy what you keep.
   */
  encode(image: RgbImage, opts?: EncodeOptions): ImageFeatures;
  dispose(): void;
}

export interface FamilyDecoder {
  readonly family: ModelFamilyName;
  /** Side of the low-res masks (4s: 256 for the real models). */
  readonly lowResSize: number;
  /** Whether the low-res masks map onto the whole image (SAM 2's square input, no padding). */
  readonly squareInput: boolean;
  predict(
    features: ImageFeatures,
    prompts: readonly DecoderPrompt[],
    opts: FamilyDecodeOptions,
  ): Promise<FamilyDecoderResult[]>;
  /** Forgets what was kept from `features` (call before destroying them). */
  releaseEmbedding(features: ImageFeatures): boolean;
  /** Whether the prompt-independent work of the features with this embedding is kept (tests). */
  hasImageCached(embedding: Tensor): boolean;
  /** Number of images whose prompt-independent work is kept. */
  readonly cachedImages: number;
  dispose(): void;
}

/** A SAM 1-layout encoder (ViT or TinyViT) behind the seam. */
export function samEncoder(encoder: SamImageEncoder, family: ModelFamily = "sam"): FamilyEncoder {
  const { promptEmbedDim, imgSize, patchSize } = encoder.arch;
  const s = imgSize / patchSize;
  return {
    family,
    imgSize,
    featureShapes: [{ name: "image_embeddings", shape: [1, promptEmbedDim, s, s] }],
    encode(image, opts) {
      const { embedding } = encodeImage(encoder, image, opts);
      return { embedding, tensors: [{ name: "image_embeddings", tensor: embedding }] };
    },
    dispose: () => encoder.dispose(),
  };
}

/** SAM's decoder behind the seam (shared by every SAM 1-layout family). */
export function samDecoder(decoder: SamDecoder, family: ModelFamily = "sam"): FamilyDecoder {
  return {
    family,
    get lowResSize() {
      return decoder.lowResSize;
    },
    squareInput: false,
    predict: (features, prompts, opts) => decoder.predict(features.embedding, prompts, opts),
    releaseEmbedding: (features) => decoder.releaseEmbedding(features.embedding),
    hasImageCached: (embedding) => decoder.hasImageCached(embedding),
    get cachedImages() {
      return decoder.cachedImages;
    },
    dispose: () => decoder.dispose(),
  };
}

/** The three SAM 2 tensors of `features`, by name. */
export function sam2Features(features: ImageFeatures): Sam2Features {
  const get = (name: string) => {
    const t = features.tensors.find((x) => x.name === name);
    if (!t) throw new Error(`sam2: the image features have no '${name}' (not a SAM 2 encoding?)`);
    return t.tensor;
  };
  return {
    imageEmbed: get("image_embed"),
    highRes0: get("high_res_feats_0"),
    highRes1: get("high_res_feats_1"),
  };
}

/** SAM 2's features as ImageFeatures (image_embed first). */
export function sam2ImageFeatures(f: Sam2Features): ImageFeatures {
  return {
    embedding: f.imageEmbed,
    tensors: [
      { name: "image_embed", tensor: f.imageEmbed },
      { name: "high_res_feats_0", tensor: f.highRes0 },
      { name: "high_res_feats_1", tensor: f.highRes1 },
    ],
  };
}

/** SAM 2's decoder behind the seam. */
export function sam2Decoder(decoder: Sam2Decoder): FamilyDecoder {
  return {
    family: "sam2",
    get lowResSize() {
      return decoder.lowResSize;
    },
    squareInput: true,
    async predict(features, prompts, opts) {
      const area = opts.minRegionArea ?? 0;
      const results = await decoder.predict(sam2Features(features), prompts, {
        ...opts,
        maxHoleArea: area,
        maxSprinkleArea: area,
      });
      return results.map((r) => ({ ...r, objectScore: r.objScore }));
    },
    releaseEmbedding: (features) => decoder.releaseEmbedding(features.embedding),
    hasImageCached: (embedding) => decoder.hasImageCached(embedding),
    get cachedImages() {
      return decoder.cachedImages;
    },
    dispose: () => decoder.dispose(),
  };
}

/** A family's encoder and decoder on one GpuContext. */
export interface FamilyModules {
  ctx: GpuContext;
  encoder: FamilyEncoder;
  decoder: FamilyDecoder;
}
