/**
 * The real engine on its own thread: `loadWorkerEngine` starts engine_worker.ts, loads the
 * model there and answers the server's Engine calls by message. The server's event loop then
 * only waits for answers: GET /api/info and 503s answer at once while the GPU works (on a
 * software adapter one batch of "segment everything" holds its thread for seconds).
 *
 * Pixels cross once per image: the worker keeps the last KEPT_IMAGES images by key, and this
 * side mirrors that list, so setting a stored image again before each prompt sends only its key.
 */
import type { Precision } from "../precision.ts";
import type { AmgFilterCounts, AmgParams, MaskRecord } from "../amg/mod.ts";
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../types.ts";
import type { Engine, EngineInfo } from "./engine.ts";
import type { EmbeddingEvent } from "../predictor.ts";
import {
  type EngineNews,
  type EngineOp,
  type EngineReply,
  type EngineRequest,
  type ImageRef,
  KEPT_IMAGES,
} from "./engine_worker.ts";
import { HttpError } from "./errors.ts";
import { imageId } from "../predictor.ts";
import type { DecoderWeights } from "./decoder_weights.ts";

export type WorkerEngine = Engine & {
  /** False once the GPU device is lost, or the engine's thread failed. */
  health(): { gpuUsable: boolean; gpuError: string | null };
  everything(
    image: RgbImage,
    params: AmgParams,
    signal: AbortSignal,
  ): Promise<{ records: MaskRecord[]; counts: AmgFilterCounts }>;
  dispose(): void;
};

/** Deno's web Worker, kept before onnxruntime-web can swap in node:worker_threads' (decode.ts). */
const WebWorker = globalThis.Worker;

export async function loadWorkerEngine(
  source: string,
  opts: {
    cacheBytes: number;
    quiet?: boolean;
    /** Told where each embedding came from (metrics). */
    onEmbedding?: (event: EmbeddingEvent) => void;
    /** Default: the worker's $WGSAM_PRECISION, else "f32". */
    precision?: Precision;
  },
): Promise<WorkerEngine> {
  const worker = new WebWorker(new URL("./engine_worker.ts", import.meta.url).href, {
    type: "module",
  });
  let nextId = 1;
  let dead: Error | null = null;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let health: { gpuUsable: boolean; gpuError: string | null } = { gpuUsable: true, gpuError: null };
  worker.onmessage = (event: MessageEvent<EngineReply | EngineNews>) => {
    if ("news" in event.data) {
      const news = event.data;
      if (news.news === "embedding") opts.onEmbedding?.(news.event);
      else health = news.health;
      return;
    }
    const reply = event.data;
    const job = pending.get(reply.id);
    if (!job) return;
    pending.delete(reply.id);
    if (reply.ok) return job.resolve(reply.value);
    const { name, message } = reply.error;
    // The server maps a RangeError to a 400 and a stopped job to its 504.
    if (name === "RangeError") job.reject(new RangeError(message));
    else if (name === "Aborted") job.reject(new HttpError(504, message));
    else job.reject(new Error(message));
  };
  worker.onerror = (event) => {
    event.preventDefault();
    dead = new Error(`the engine's thread failed: ${event.message}`);
    health = { gpuUsable: false, gpuError: dead.message };
    for (const job of pending.values()) job.reject(dead);
    pending.clear();
    worker.terminate();
  };

  const call = <T>(op: EngineOp, args: unknown, onId?: (id: number) => void): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = nextId++;
    onId?.(id);
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      worker.postMessage({ id, op, args } satisfies EngineRequest);
    });
  };

  let info: EngineInfo;
  try {
    info = await call<EngineInfo>("load", {
      source,
      opts: { cacheBytes: opts.cacheBytes, quiet: opts.quiet, precision: opts.precision },
    });
  } catch (e) {
    worker.terminate();
    throw e;
  }

  // Image keys by pixel array, and the keys the worker holds (same eviction order as there).
  const keys = new WeakMap<Uint8Array, number>();
  let nextKey = 1;
  const held: number[] = [];
  const ref = (image: RgbImage): ImageRef => {
    if (image.channels !== 3) throw new RangeError("the engine takes RGB images");
    let key = keys.get(image.data);
    if (key === undefined) {
      key = nextKey++;
      keys.set(image.data, key);
    }
    const base = { key, width: image.width, height: image.height };
    if (held.includes(key)) return base;
    held.push(key);
    while (held.length > KEPT_IMAGES) held.shift();
    return { ...base, data: image.data };
  };

  return {
    info,
    health: () => health,
    setImage: (image) => call<ImageInfo>("setImage", { image: ref(image) }),
    // The predictor's own content hash, computed here: no pixels cross for it.
    imageId: (image) => imageId(image),
    predict: (prompt: Prompt, o?: { returnLogits?: boolean }) =>
      call<Prediction>("predict", { prompt, opts: o }),
    predictBatch: (prompts: Prompt[], o?: { returnLogits?: boolean }) =>
      call<Prediction[]>("predictBatch", { prompts, opts: o }),
    getImageEmbedding: () => call("getImageEmbedding", {}),
    // What the in-process engine offers for this model, asked of the worker's engine.
    ...(info.featureNames && info.featureNames.length > 1
      ? { getImageFeature: (name: string) => call("getImageFeature", { name }) }
      : {}),
    ...(info.decoderServed
      ? { decoderWeights: () => call<DecoderWeights>("decoderWeights", {}) }
      : {}),
    // The Engine interface wants a boolean at once; the worker forgets in its turn.
    forget: (id: string) => {
      call("forget", { id }).catch(() => {});
      return true;
    },
    everything: (image, params, signal) => {
      let job = 0;
      const onAbort = () => void call("abort", { job }).catch(() => {});
      const done = call<{ records: MaskRecord[]; counts: AmgFilterCounts }>("everything", {
        image: ref(image),
        params,
      }, (id) => {
        job = id;
      });
      signal.addEventListener("abort", onAbort, { once: true });
      return done.finally(() => signal.removeEventListener("abort", onAbort));
    },
    dispose: () => {
      call("dispose", {}).catch(() => {}).finally(() => worker.terminate());
    },
  };
}
