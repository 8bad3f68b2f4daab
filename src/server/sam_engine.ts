/**
 * The real engine: SamModel + SamPredictor (src/predictor.ts) behind the server's Engine
 * interface.
 */
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../types.ts";
import type { Engine, EngineInfo } from "./engine.ts";

interface SamModelLike {
  readonly name: string;
  readonly arch: unknown;
  readonly adapter: string;
  dispose(): void;
}

interface SamPredictorLike {
  setImage(image: RgbImage): Promise<ImageInfo>;
  predict(prompt: Prompt, opts?: { returnLogits?: boolean }): Promise<Prediction>;
  predictBatch(prompts: Prompt[], opts?: { returnLogits?: boolean }): Promise<Prediction[]>;
  getImageEmbedding(): Promise<{ data: Float32Array; shape: number[] }>;
  dispose(): void;
}

interface PredictorModule {
  SamModel: { load(source: string, opts?: { quiet?: boolean }): Promise<SamModelLike> };
  SamPredictor: new (model: SamModelLike, opts?: { cacheBytes?: number }) => SamPredictorLike;
}

export type SamEngine = Engine & { dispose(): void };

/** Loads a model (path or registry name) and wraps a predictor with the given embedding cache. */
export async function loadSamEngine(
  source: string,
  opts: { cacheBytes: number; quiet?: boolean },
): Promise<SamEngine> {
  // Imported by a computed name while src/predictor.ts is being written alongside.
  const path = "../predictor.ts";
  const mod = await import(path) as PredictorModule;
  const model = await mod.SamModel.load(source, { quiet: opts.quiet });
  const predictor = new mod.SamPredictor(model, { cacheBytes: opts.cacheBytes });
  const info: EngineInfo = {
    model: model.name,
    arch: model.arch,
    adapter: model.adapter,
    meaningless: model.name === "sam-tiny" || /sam-tiny/.test(source),
  };
  return {
    info,
    setImage: (image) => predictor.setImage(image),
    predict: (prompt, o) => predictor.predict(prompt, o),
    predictBatch: (prompts, o) => predictor.predictBatch(prompts, o),
    getImageEmbedding: () => predictor.getImageEmbedding(),
    dispose: () => {
      predictor.dispose();
      model.dispose();
    },
  };
}
