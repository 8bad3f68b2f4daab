/**
 * What the server needs from the model: SamPredictor's calls plus a description for
 * GET /api/info. `samEngine` (sam_engine.ts) wraps the real predictor; tests plug in small
 * stand-ins. The server calls these only from its work queue, one at a time, and always calls
 * `setImage` before the prompts of a request, since another request may have changed the
 * current image in between (the predictor's embedding cache makes that cheap).
 */
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../types.ts";
import type {
  AmgFilterCounts,
  AmgParams,
  MaskRecord,
  MaskSource,
  MaskSourceImage,
  PointPrediction,
} from "../amg/mod.ts";
import type { ModelFamilyName } from "../family.ts";
import type { DecoderWeights } from "./decoder_weights.ts";

export interface EngineInfo {
  /** Model name (registry name or file name). */
  model: string;
  /** "sam", "mobile_sam", "slimsam" (SAM 1 layout) or "sam2" (SAM 2.1 Hiera); absent: "sam". */
  family?: ModelFamilyName;
  /** Whether `decoderWeights` serves this model's decoder to the page (SAM 1 and 2.1). */
  decoderServed?: boolean;
  /**
   * The tensors the decoder reads per image, the embedding first (GET .../embedding?tensor=);
   * absent: ["image_embeddings"]. SAM 2.1: image_embed, high_res_feats_0, high_res_feats_1.
   */
  featureNames?: string[];
  /** Architecture summary (encoder width, depth, image size...). */
  arch: unknown;
  /** The GPU adapter, in words. */
  adapter: string;
  /** The WebGPU provider ("deno" or "dawn"); absent for engines without a GPU. */
  provider?: string;
  /** "f32" or "f16" (weights and GEMM activations stored as float16); absent: "f32". */
  precision?: string;
  /** True for the bundled random-weight test model: its masks mean nothing. */
  meaningless: boolean;
  /**
   * The model's square input size (ResizeLongestSide's long side, e.g. 1024); when given, an
   * upload too thin for it is refused before any GPU work.
   */
  imgSize?: number;
}

export interface Engine {
  readonly info: EngineInfo;
  setImage(image: RgbImage): Promise<ImageInfo>;
  predict(prompt: Prompt, opts?: { returnLogits?: boolean }): Promise<Prediction>;
  predictBatch(prompts: Prompt[], opts?: { returnLogits?: boolean }): Promise<Prediction[]>;
  getImageEmbedding(): Promise<{ data: Float32Array; shape: number[] }>;
  /** One of `info.featureNames` for the current image (SAM 2's high-res features). */
  getImageFeature?(name: string): Promise<{ data: Float32Array; shape: number[] }>;
  /**
   * The id `setImage` will give this image (its content hash), without encoding it: lets the
   * server answer an upload before a long encode ends (202). Without it, uploads wait.
   */
  imageId?(image: RgbImage): Promise<string>;
  /** Drops an image's cached embedding (DELETE /api/images/:id); true when it was cached. */
  forget?(id: string): boolean;
  /** A mask source for "segment everything"; the default is `predictorMaskSource(this)`. */
  maskSource?(): MaskSource;
  /**
   * "Segment everything" run by the engine itself (on its own thread: worker_engine.ts),
   * stopping between batches once `signal` aborts (an HttpError 504). Without it the server
   * runs the generator over `maskSource()`.
   */
  everything?(
    image: RgbImage,
    params: AmgParams,
    signal: AbortSignal,
  ): Promise<{ records: MaskRecord[]; counts: AmgFilterCounts }>;
  /** The decoder tensors for the page to decode itself (GET /api/decoder); absent: 404. */
  decoderWeights?(): Promise<DecoderWeights>;
}

/**
 * A mask source on top of the predictor calls: every grid point is a one-point foreground
 * prompt with three candidates, batched through `predictBatch`, logits at the crop's size.
 */
export function predictorMaskSource(engine: Engine): MaskSource {
  return {
    async setImage(image: MaskSourceImage): Promise<void> {
      if (!image.data) throw new Error("the model needs pixels");
      await engine.setImage({
        width: image.width,
        height: image.height,
        channels: 3,
        data: image.data,
      });
    },
    async predictPoints(points: Float32Array, n: number): Promise<PointPrediction> {
      const prompts: Prompt[] = [];
      for (let i = 0; i < n; i++) {
        prompts.push({
          points: [[points[2 * i], points[2 * i + 1]]],
          labels: [1],
          multimask: true,
        });
      }
      const preds = await engine.predictBatch(prompts, { returnLogits: true });
      const plane = preds[0] ? preds[0].width * preds[0].height : 0;
      const masks = new Float32Array(n * 3 * plane);
      const iou = new Float32Array(n * 3);
      preds.forEach((p, i) => {
        if (!p.logits || p.scores.length !== 3) {
          throw new Error("predictBatch did not return three candidates with logits");
        }
        masks.set(p.logits, i * 3 * plane);
        iou.set(p.scores, i * 3);
      });
      return { masks, iou };
    },
  };
}
