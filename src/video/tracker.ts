/**
 * What the video surfaces (server sessions, the page, `deno task track`) need from a SAM 2.1
 * video predictor, and how they get one: `videoTrackerFactory(source)` loads a SAM 2.1 model
 * once and makes a `SamVideoPredictor` (src/sam2/video_predictor.ts) per session or run: each
 * has its own memory bank, all share the model's GPU weights.
 */
import type { GpuChoice } from "../gpu/device.ts";
import { SamModel } from "../predictor.ts";
import type { Sam2ArchHints } from "../sam2/arch.ts";
import { checkpointFamily } from "../sam2/load.ts";
import {
  type PropagateOptions,
  SamVideoPredictor,
  type VideoFrameResult,
  type VideoPrompt,
} from "../sam2/video_predictor.ts";
import type { RgbImage } from "../types.ts";
import { resolveModel } from "../weights/registry.ts";

export type { PropagateOptions, VideoFrameResult, VideoPrompt };

/** The SamVideoPredictor calls the video surfaces make (issue #17's API). */
export interface VideoTracker {
  readonly numFrames: number;
  addFrame(image: RgbImage): number;
  addNewPointsOrBox(p: VideoPrompt): Promise<VideoFrameResult>;
  propagateInVideo(opts?: PropagateOptions): AsyncIterable<VideoFrameResult>;
  removeObject(objId: number): Promise<unknown>;
  reset(): Promise<void>;
  /** Frames whose pixels are held now and their bytes (dropped ones do not count). */
  memoryUsage(): { framesKept: number; pixelBytes: number };
  dispose(): void;
}

export interface VideoTrackerOptions {
  /**
   * Frames kept behind the newest and the last tracked one, for corrections and reverse
   * tracking (SamVideoPredictor's historyFrames); default Infinity: every frame, as an
   * offline video clicked in any order needs.
   */
  historyFrames?: number;
}

/** Makes a fresh tracker (its own memory bank) per video. */
export interface VideoTrackerFactory {
  /** The model's name, for messages. */
  readonly model: string;
  create(opts?: VideoTrackerOptions): Promise<VideoTracker>;
  /** Frees the model (after every tracker made here is disposed). */
  close(): void;
}

/** Thrown for a checkpoint that is not SAM 2.1: video tracking needs its memory modules. */
export class NotSam2Error extends Error {
  constructor(model: string, family: string) {
    super(
      `video tracking needs a SAM 2.1 model (e.g. sam2.1_hiera_tiny, or the bundled ` +
        `sam2-tiny); ${model} is a ${family} model`,
    );
    this.name = "NotSam2Error";
  }
}

/**
 * A factory over a checkpoint (registry name or path). The model loads on the first `create`
 * (a failure is not kept: the next call retries).
 */
export function videoTrackerFactory(
  source: string,
  opts: { gpu?: GpuChoice; sam2Hints?: Sam2ArchHints } = {},
): VideoTrackerFactory {
  let loaded: Promise<SamModel> | null = null;
  const load = async () => {
    // The family from the checkpoint's tensor names first: a SAM 1 model is refused before
    // any weight or GPU work.
    if (await checkpointFamily(await resolveModel(source)) !== "sam2") {
      throw new NotSam2Error(factory.model, "SAM 1-layout");
    }
    const model = await SamModel.load(source, { quiet: true, ...opts });
    if (model.family !== "sam2") {
      model.dispose();
      throw new NotSam2Error(model.name, model.family);
    }
    return model;
  };
  const factory = {
    model: source.split("/").pop()!.replace(/\.(pth|pt|safetensors)$/, ""),
    async create(o: VideoTrackerOptions = {}): Promise<VideoTracker> {
      loaded ??= load().catch((e) => {
        loaded = null;
        throw e;
      });
      const model = await loaded;
      factory.model = model.name;
      return new SamVideoPredictor(model, { historyFrames: o.historyFrames ?? Infinity });
    },
    close() {
      loaded?.then((m) => m.dispose(), () => {});
      loaded = null;
    },
  };
  return factory;
}

/** An object's mask on a frame: logits > 0, row-major height x width. */
export function maskOf(logits: Float32Array): Uint8Array {
  const mask = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) mask[i] = logits[i] > 0 ? 1 : 0;
  return mask;
}
