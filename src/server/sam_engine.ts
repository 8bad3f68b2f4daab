/**
 * The real engine: SamModel + SamPredictor (src/predictor.ts) behind the server's Engine
 * interface. "Segment everything" runs the generator's GPU mask source (ModelMaskSource:
 * statistics and kept masks computed next to the logits) on the predictor's cached embedding,
 * so an image already uploaded is not encoded again, with the decoder's low-res logits kept
 * on the GPU (`lowResOut`) instead of read back and uploaded again.
 */
import type { Precision } from "../precision.ts";
import {
  type EmbeddingEvent,
  imageId,
  SamModel,
  SamPredictor,
  type SharedEmbeddings,
} from "../predictor.ts";
import { ModelMaskSource, type SamGpuBackend } from "../amg/model_source.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { decodePointPrompts } from "../amg/sam_backend.ts";
import type { Engine, EngineInfo } from "./engine.ts";
import { buildDecoderWeights, type DecoderWeights } from "./decoder_weights.ts";
import { resolveModel } from "../weights/registry.ts";

export type SamEngine = Engine & {
  dispose(): void;
  /** False once the GPU device is lost (then every GPU call fails). */
  health(): { gpuUsable: boolean; gpuError: string | null };
};

/** SamGpuBackend over a predictor: setImage goes through its embedding cache. */
class PredictorBackend implements SamGpuBackend {
  constructor(private readonly model: SamModel, private readonly predictor: SamPredictor) {}

  get ctx() {
    return this.model.ctx;
  }

  get imgSize(): number {
    return this.model.imgSize;
  }

  get family() {
    return this.model.family;
  }

  async setImage(image: { width: number; height: number; data: Uint8Array }): Promise<void> {
    await this.predictor.setImage({ ...image, channels: 3 });
  }

  decodePoints(
    points: Float32Array,
    n: number,
    opts: { minRegionArea?: number } = {},
  ): Promise<{ lowRes: Tensor; iou: Float32Array | Tensor }> {
    const features = this.predictor.currentFeatures;
    const current = this.predictor.currentImage;
    if (!features || !current) throw new Error("decodePoints: setImage first");
    return decodePointPrompts(
      this.ctx,
      this.model.decoder,
      features,
      points,
      n,
      [current.height, current.width],
      opts,
    );
  }
}

/** Loads a model (path or registry name) and wraps a predictor with the given embedding cache. */
export async function loadSamEngine(
  source: string,
  opts: {
    cacheBytes: number;
    quiet?: boolean;
    /** A store behind the local cache (Redis: src/server/embedding_store.ts). */
    shared?: SharedEmbeddings;
    /** Told where each embedding came from (metrics). */
    onEmbedding?: (event: EmbeddingEvent) => void;
    /** Default: $WGSAM_PRECISION, else "f32" (SamModel.load). */
    precision?: Precision;
  },
): Promise<SamEngine> {
  const model = await SamModel.load(source, { quiet: opts.quiet, precision: opts.precision });
  const predictor = new SamPredictor(model, {
    cacheBytes: opts.cacheBytes,
    shared: opts.shared,
    onEmbedding: opts.onEmbedding,
  });
  let gpuError: string | null = null;
  model.ctx.device.lost.then((lost) => {
    if (lost.reason !== "destroyed") gpuError = `GPU device lost: ${lost.message || lost.reason}`;
  });
  const backend = new PredictorBackend(model, predictor);
  const arch = model.arch;
  const info: EngineInfo = {
    model: model.name,
    family: model.family,
    arch: "family" in arch
      ? {
        family: "sam2",
        img_size: arch.imgSize,
        hiera_width: arch.trunk.embedDim,
        hiera_stages: arch.trunk.stages,
        hiera_heads: arch.trunk.numHeads,
        window_spec: arch.trunk.windowSpec,
        global_att_blocks: arch.trunk.globalAttBlocks,
        prompt_embed_dim: arch.dModel,
        low_res_size: model.decoder.lowResSize,
      }
      : {
        family: model.family,
        img_size: arch.imgSize,
        encoder_width: arch.embedDim,
        encoder_depth: arch.depth,
        encoder_heads: arch.numHeads,
        window_size: arch.windowSize,
        global_attn_indexes: arch.globalAttnIndexes,
        prompt_embed_dim: arch.promptEmbedDim,
        low_res_size: model.decoder.lowResSize,
      },
    decoderServed: true,
    featureNames: model.family === "sam2"
      ? ["image_embed", "high_res_feats_0", "high_res_feats_1"]
      : ["image_embeddings"],
    adapter: model.adapter,
    provider: model.provider,
    precision: model.precision,
    meaningless: model.name === "sam-tiny" || model.name === "sam2-tiny",
    imgSize: arch.imgSize,
  };
  let decoderWeights: Promise<DecoderWeights> | null = null;
  return {
    info,
    setImage: (image) => predictor.setImage(image, { waitForGpu: true }),
    imageId: (image) => imageId(image),
    predict: (prompt, o) => predictor.predict(prompt, o),
    predictBatch: (prompts, o) => predictor.predictBatch(prompts, o),
    getImageEmbedding: () => predictor.getImageEmbedding(),
    getImageFeature: async (name) => {
      const found = (await predictor.getImageFeatures()).find((f) => f.name === name);
      if (!found) throw new Error(`no image feature '${name}'`);
      return found;
    },
    forget: (id) => predictor.forget(id),
    maskSource: () => new ModelMaskSource(backend),
    health: () => ({ gpuUsable: gpuError === null, gpuError }),
    // SAM 1's and SAM 2.1's (src/web/decoder/page_decoder.ts runs either). Read from the
    // checkpoint on first use; a failure is not kept, so a later call retries.
    decoderWeights: () =>
      decoderWeights ??= resolveModel(source).then((path) => buildDecoderWeights(path, arch))
        .catch((e) => {
          decoderWeights = null;
          throw e;
        }),
    dispose: () => {
      predictor.dispose();
      model.dispose();
    },
  };
}
