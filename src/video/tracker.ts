/**
 * What the video surfaces (server sessions, the page, `deno task track`) need from a SAM 2.1
 * video predictor, and how they get one: `loadVideoTrackerFactory(source)` reads a SAM 2.1
 * checkpoint once (CPU) and builds a `SamVideoPredictor` (src/sam2/video_predictor.ts) per
 * session or run, each with its own memory bank.
 */
import { getContext, type GpuContext } from "../gpu/context.ts";
import type { GpuChoice } from "../gpu/device.ts";
import { bundledHints } from "../predictor.ts";
import type { Sam2Arch, Sam2ArchHints } from "../sam2/arch.ts";
import { checkpointFamily, loadSam2 } from "../sam2/load.ts";
import {
  SamVideoPredictor,
  type VideoFrameResult,
  type VideoPrompt,
} from "../sam2/video_predictor.ts";
import type { RgbImage } from "../types.ts";
import { findModel, resolveModel } from "../weights/registry.ts";
import type { StateDict } from "../weights/types.ts";

export type { VideoFrameResult, VideoPrompt };

export interface PropagateOptions {
  startFrameIdx?: number;
  reverse?: boolean;
  maxFrames?: number;
}

/** The SamVideoPredictor calls the video surfaces make (issue #17's API). */
export interface VideoTracker {
  readonly numFrames: number;
  addFrame(image: RgbImage): number;
  addNewPointsOrBox(p: VideoPrompt): Promise<VideoFrameResult>;
  propagateInVideo(opts?: PropagateOptions): AsyncIterable<VideoFrameResult>;
  removeObject(objId: number): unknown;
  reset(): void;
  dispose(): void;
}

/** Makes a fresh tracker (its own memory bank) per video. */
export interface VideoTrackerFactory {
  /** The model's name, for messages and GET /api/videos/:id. */
  readonly model: string;
  create(): Promise<VideoTracker>;
}

/** Thrown for a checkpoint that is not SAM 2.1: video tracking needs its memory modules. */
export class NotSam2Error extends Error {
  constructor(model: string) {
    super(
      `video tracking needs a SAM 2.1 model (e.g. sam2.1_hiera_tiny, or the bundled ` +
        `sam2-tiny); ${model} is a SAM 1-layout model`,
    );
    this.name = "NotSam2Error";
  }
}

/**
 * A factory over a checkpoint (registry name or path). The state dict is read once, on the
 * first `create` (a failure is not kept: the next call retries); each tracker uploads its own
 * weights to the GPU.
 */
export function videoTrackerFactory(
  source: string,
  opts: { gpu?: GpuChoice; sam2Hints?: Sam2ArchHints; ctx?: GpuContext } = {},
): VideoTrackerFactory {
  const model = source.split("/").pop()!.replace(/\.(pth|pt|safetensors)$/, "");
  let loaded: Promise<{ ctx: GpuContext; sd: StateDict; arch: Sam2Arch }> | null = null;
  const load = async () => {
    const path = await resolveModel(source);
    if (await checkpointFamily(path) !== "sam2") throw new NotSam2Error(model);
    const hints = opts.sam2Hints ?? findModel(source)?.sam2Hints ?? await bundledHints(path);
    const { sd, arch } = await loadSam2(path, hints);
    return { ctx: opts.ctx ?? await getContext(opts.gpu), sd, arch };
  };
  return {
    model,
    async create() {
      loaded ??= load().catch((e) => {
        loaded = null;
        throw e;
      });
      const { ctx, sd, arch } = await loaded;
      return asTracker(SamVideoPredictor.fromStateDict(ctx, sd, arch));
    },
  };
}

/** Thrown for a call the predictor of this build does not have yet. */
export class TrackerUnavailableError extends Error {
  constructor(what: string) {
    super(`${what} is not available in this build's SamVideoPredictor (issue #17 item 2)`);
    this.name = "TrackerUnavailableError";
  }
}

/**
 * The predictor behind the VideoTracker interface. Propagation and object removal are looked
 * up when called: a predictor without them answers a clear TrackerUnavailableError.
 */
function asTracker(p: SamVideoPredictor): VideoTracker {
  const later = p as
    & SamVideoPredictor
    & Partial<
      Pick<VideoTracker, "propagateInVideo" | "removeObject">
    >;
  return {
    get numFrames() {
      return p.numFrames;
    },
    addFrame: (image) => p.addFrame(image),
    addNewPointsOrBox: (prompt) => p.addNewPointsOrBox(prompt),
    propagateInVideo: (opts) => {
      if (!later.propagateInVideo) throw new TrackerUnavailableError("propagateInVideo");
      return later.propagateInVideo.call(p, opts);
    },
    removeObject: (objId) => {
      if (!later.removeObject) throw new TrackerUnavailableError("removeObject");
      return later.removeObject.call(p, objId);
    },
    reset: () => p.reset(),
    dispose: () => p.dispose(),
  };
}

/** An object's mask on a frame: logits > 0, row-major height x width. */
export function maskOf(logits: Float32Array): Uint8Array {
  const mask = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) mask[i] = logits[i] > 0 ? 1 : 0;
  return mask;
}
