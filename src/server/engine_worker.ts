/**
 * Worker entry of the server's engine (see worker_engine.ts): the model, its GPU device and
 * "segment everything" live on this thread, so that waiting on the GPU (on a software adapter,
 * seconds at a stretch inside one batch) and the generator's CPU work never hold the server's
 * event loop. Messages are `{ id, op, args }`; answers `{ id, ok, value | error }`.
 */
import type { AmgParams, MaskSource } from "../amg/mod.ts";
import { AutomaticMaskGenerator } from "../amg/mod.ts";
import type { RgbImage } from "../types.ts";
import type { EmbeddingEvent } from "../predictor.ts";
import { loadSamEngine, type SamEngine } from "./sam_engine.ts";

export type EngineOp =
  | "load"
  | "setImage"
  | "predict"
  | "predictBatch"
  | "getImageEmbedding"
  | "getImageFeature"
  | "decoderWeights"
  | "forget"
  | "everything"
  | "abort"
  | "dispose";

export interface EngineRequest {
  id: number;
  op: EngineOp;
  // deno-lint-ignore no-explicit-any
  args: any;
}

export type EngineReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; message: string } };

/** Unasked news from the worker: where an embedding came from, a change of GPU health. */
export type EngineNews =
  | { news: "embedding"; event: EmbeddingEvent }
  | { news: "health"; health: { gpuUsable: boolean; gpuError: string | null } };

/** An image as sent: its pixels once, then only its key (the worker keeps the last few). */
export interface ImageRef {
  key: number;
  width: number;
  height: number;
  data?: Uint8Array;
}

/** How many images the worker keeps by key (the host mirrors this bookkeeping). */
export const KEPT_IMAGES = 2;

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<EngineRequest>) => void) | null;
  postMessage(message: EngineReply | EngineNews): void;
};

let engine: SamEngine | null = null;
const images = new Map<number, RgbImage>();
const running = new Set<number>();
const aborted = new Set<number>();

function image(ref: ImageRef): RgbImage {
  if (ref.data) {
    images.set(ref.key, { width: ref.width, height: ref.height, channels: 3, data: ref.data });
    // Same order as the host's list: the oldest goes first.
    while (images.size > KEPT_IMAGES) images.delete(images.keys().next().value!);
  }
  const found = images.get(ref.key);
  if (!found) throw new Error(`engine worker: image ${ref.key} is not kept`);
  return found;
}

/** Tells the host when the GPU device is lost (its health() turns false). */
function watchHealth(e: SamEngine): void {
  let last = JSON.stringify(e.health());
  const timer = setInterval(() => {
    if (!engine) return clearInterval(timer);
    const now = JSON.stringify(e.health());
    if (now !== last) scope.postMessage({ news: "health", health: e.health() });
    last = now;
  }, 1000);
}

class Aborted extends Error {
  override name = "Aborted";
}

/** The model's mask source, stopping between batches once the job is aborted. */
function stoppable(source: MaskSource, job: number): MaskSource {
  const check = () => {
    if (aborted.has(job)) throw new Aborted("segment everything stopped: time limit");
  };
  return {
    setImage: (im) => (check(), source.setImage(im)),
    predictPoints: (points, n) => (check(), source.predictPoints(points, n)),
    ...(source.predictBatch
      ? { predictBatch: (request) => (check(), source.predictBatch!(request)) }
      : {}),
  };
}

async function run(op: EngineOp, args: EngineRequest["args"], id: number): Promise<unknown> {
  if (op === "load") {
    engine = await loadSamEngine(args.source, {
      ...args.opts,
      onEmbedding: (event) => scope.postMessage({ news: "embedding", event }),
    });
    watchHealth(engine);
    return engine.info;
  }
  if (!engine) throw new Error("engine worker: no model loaded");
  switch (op) {
    case "setImage":
      return await engine.setImage(image(args.image));
    case "predict":
      return await engine.predict(args.prompt, args.opts);
    case "predictBatch":
      return await engine.predictBatch(args.prompts, args.opts);
    case "getImageEmbedding":
      return await engine.getImageEmbedding();
    case "getImageFeature":
      if (!engine.getImageFeature) throw new Error("this model has no other image tensors");
      return await engine.getImageFeature(args.name);
    case "decoderWeights":
      if (!engine.decoderWeights) throw new Error("this model's decoder is not served");
      return await engine.decoderWeights();
    case "forget":
      return engine.forget?.(args.id) ?? false;
    case "everything": {
      const im = image(args.image);
      const generator = new AutomaticMaskGenerator(args.params as AmgParams);
      running.add(id);
      try {
        return await generator.generateWithCounts(
          { width: im.width, height: im.height, data: im.data },
          stoppable(engine.maskSource!(), id),
        );
      } finally {
        running.delete(id);
        aborted.delete(id);
      }
    }
    case "abort":
      if (running.has(args.job)) aborted.add(args.job);
      return true;
    case "dispose":
      engine.dispose();
      engine = null;
      return true;
  }
  throw new Error(`engine worker: unknown op ${op}`);
}

scope.onmessage = async (event: MessageEvent<EngineRequest>) => {
  const { id, op, args } = event.data;
  try {
    scope.postMessage({ id, ok: true, value: await run(op, args, id) });
  } catch (e) {
    const err = e as Error;
    scope.postMessage({
      id,
      ok: false,
      error: { name: err?.name ?? "Error", message: err?.message ?? String(e) },
    });
  }
};
