/**
 * The HTTP application: `createApp(options)` returns a `(req) => Promise<Response>` handler that
 * tests call directly and `Deno.serve` mounts. Routes:
 *
 *   GET    /                          the page (src/web/)
 *   GET    /api/info                  server, model, adapter, queue and cache state
 *   POST   /api/images                upload (raw PNG/JPEG or multipart field "image")
 *   GET    /api/images/:id            size of a stored image
 *   DELETE /api/images/:id            forget a stored image
 *   POST   /api/images/:id/segment    prompts -> masks (PNG, COCO RLE or polygons) + handles
 *   POST   /api/images/:id/everything automatic mask generation -> COCO annotations (RLE or polygons)
 *   POST   /api/images/:id/detect     detector boxes -> SAM masks -> COCO annotations (RLE or polygons)
 *   GET    /api/images/:id/embedding  the image embedding as .npy
 *   GET    /api/decoder[/<sha>.safetensors]  the decoder weights for the page (decoder_routes.ts)
 *
 * Every error is JSON `{ "error": "..." }`; unexpected exceptions are logged and become a 500.
 */
import type { Prediction, Prompt } from "../types.ts";
import { AutomaticMaskGenerator, cocoEncodeRle, type MaskSource, maskToRle } from "../amg/mod.ts";
import { cocoJson, detectAndSegment, resolveClassIds, UnknownClassError } from "../detect/mod.ts";
import { ByteLru } from "../util/lru.ts";
import { encodeNpyF32 } from "../util/npy.ts";
import { readImageUpload, readJsonObject } from "./body.ts";
import { decodeUpload } from "./decode.ts";
import { decoderRoute } from "./decoder_routes.ts";
import type { ServerDetector } from "./detector.ts";
import { type Engine, predictorMaskSource } from "./engine.ts";
import { errorResponse, HttpError, jsonResponse } from "./errors.ts";
import { DEFAULT_LIMITS, type Limits } from "./limits.ts";
import { encodeMaskPng } from "../image.ts";
import { imageId } from "../predictor.ts";
import { WorkQueue } from "./queue.ts";
import type { ExtraRoutes, RouteContext, StoredImage } from "./route_context.ts";
import { cvatRoutes } from "./cvat.ts";
import { labelStudioRoutes } from "./label_studio.ts";
import {
  type OutputFormat,
  parseDetectRequest,
  parseEverythingRequest,
  parseOutputFormat,
  parseSegmentRequest,
} from "./validate.ts";
import { maskPolygonFields, withPolygonSegmentation } from "../util/polygon_export.ts";

export const SERVER_NAME = "wgsam";
export const SERVER_VERSION = "0.1.0";

export const MEANINGLESS_WARNING =
  "Running on the bundled sam-tiny test model (random weights): its masks are meaningless. " +
  "Get a real model with `deno task weights vit_b` and restart.";

export interface AppOptions {
  engine: Engine;
  /** The object detector of POST /api/images/:id/detect; absent: that route answers 404. */
  detector?: ServerDetector | null;
  limits?: Partial<Limits>;
  /** Where log lines go (default console.log); tests pass a no-op or a collector. */
  log?: (line: string) => void;
  /** Folder of the page's files (default src/web/). */
  webDir?: URL;
  /**
   * Uploads shared with other hosts (`serve --redis`: src/server/embedding_store.ts): an id
   * uploaded elsewhere is fetched from there on a local miss. Never rejects.
   */
  sharedImages?: {
    getImage(id: string): Promise<Uint8Array | null>;
    putImage(id: string, file: Uint8Array): Promise<void>;
    forget(id: string): Promise<void>;
  } | null;
}

export type AppHandler = ((req: Request) => Promise<Response>) & {
  readonly limits: Readonly<Limits>;
  readonly queue: WorkQueue;
};

interface LowResEntry {
  imageId: string;
  /** One plane of low-res logits, lowResSize^2. */
  logits: Float32Array;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

const STATIC_FILES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/index.html": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/decoder.js": ["decoder.js", "text/javascript; charset=utf-8"], // deno task bundle:web
  "/style.css": ["style.css", "text/css; charset=utf-8"],
  "/favicon.svg": ["favicon.svg", "image/svg+xml"],
  "/favicon.ico": ["favicon.svg", "image/svg+xml"], // browsers ask for it unprompted
};

export function createApp(options: AppOptions): AppHandler {
  const engine = options.engine;
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const log = options.log ?? ((line: string) => console.log(line));
  const webDir = options.webDir ?? new URL("../web/", import.meta.url);
  const queue = new WorkQueue(limits.maxQueue);
  // Decoding runs on this thread anyway; one at a time bounds the memory of large photos.
  const decodeQueue = new WorkQueue(limits.maxQueue);
  const detector = options.detector ?? null;
  const images = new ByteLru<string, StoredImage>(limits.imageCacheBytes);
  const handles = new ByteLru<string, LowResEntry>(limits.handleCacheBytes);
  const startedAt = Date.now();
  let requests = 0;

  const staticCache = new Map<string, Uint8Array | null>();
  function staticFile(name: string): Uint8Array | null {
    if (!staticCache.has(name)) {
      try {
        staticCache.set(name, Deno.readFileSync(new URL(name, webDir)));
      } catch {
        staticCache.set(name, null);
      }
    }
    return staticCache.get(name)!;
  }

  async function lookupImage(id: string): Promise<StoredImage> {
    const stored = ID_PATTERN.test(id) ? images.get(id) ?? await sharedImage(id) : undefined;
    if (!stored) {
      throw new HttpError(404, `unknown image id "${id.slice(0, 80)}" (upload it again)`);
    }
    return stored;
  }

  /** An image another host was sent (`--redis`), decoded here; null when unknown. */
  async function sharedImage(id: string): Promise<StoredImage | undefined> {
    const file = await options.sharedImages?.getImage(id);
    if (!file) return undefined;
    const image = await decodeQueue.run(
      () => decodeUpload(file, { ...limits, imgSize: engine.info.imgSize }),
      { timeoutMs: limits.requestTimeoutMs },
    );
    // The id is the content hash of the pixels: a file that decodes to others is not this one.
    if (await imageId(image) !== id) return undefined;
    const stored = { id, image };
    return images.set(id, stored, image.data.byteLength) ? stored : undefined;
  }

  /** Runs GPU work through the queue under the request's time limit. */
  function onGpu<T>(job: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    // Not req.signal: under Deno.serve it also aborts after every successful response (legacy
    // behaviour), so a waiting job is bounded by the time limit instead.
    return queue.run(() => job(abort.signal), { timeoutMs: limits.requestTimeoutMs })
      .catch((e) => {
        abort.abort(); // lets long jobs (segment everything) stop at their next step
        throw e;
      });
  }

  /**
   * GPU work on a stored image: the engine's current image may have changed since it was
   * uploaded (another request), so it is set again first (cheap: the embedding is cached).
   */
  function onImage<T>(stored: StoredImage, job: () => Promise<T>): Promise<T> {
    return onGpu(async () => {
      await engine.setImage(stored.image);
      return await job();
    });
  }

  /** Drops an image's cached embedding in its turn on the GPU queue; it cannot be refused. */
  function forgetEmbedding(id: string): void {
    const forget = engine.forget?.bind(engine);
    if (!forget) return;
    queue.always(() => forget(id)).catch((e) => {
      log(`ERROR forgetting the embedding of ${id}: ${(e as Error)?.stack ?? e}`);
    });
  }

  function info() {
    return {
      server: {
        name: SERVER_NAME,
        version: SERVER_VERSION,
        uptime_s: Math.round((Date.now() - startedAt) / 1000),
        requests,
      },
      model: {
        name: engine.info.model,
        arch: engine.info.arch,
        meaningless: engine.info.meaningless,
      },
      adapter: engine.info.adapter,
      detector: detector?.info() ?? null,
      warning: engine.info.meaningless ? MEANINGLESS_WARNING : null,
      queue: queue.stats(),
      cache: {
        images: { count: images.size, bytes: images.bytes, max_bytes: images.maxBytes },
        low_res_handles: { count: handles.size, bytes: handles.bytes, max_bytes: handles.maxBytes },
      },
      limits: {
        max_upload_bytes: limits.maxUploadBytes,
        max_json_bytes: limits.maxJsonBytes,
        max_pixels: limits.maxPixels,
        max_side: limits.maxSide,
        max_points: limits.maxPoints,
        max_boxes: limits.maxBoxes,
        coord_margin: limits.coordMargin,
        max_queue: limits.maxQueue,
        request_timeout_ms: limits.requestTimeoutMs,
        max_points_per_side: limits.maxPointsPerSide,
        max_crop_layers: limits.maxCropLayers,
        max_mask_pixels: limits.maxMaskPixels,
      },
    };
  }

  async function upload(req: Request): Promise<Response> {
    const bytes = await readImageUpload(req, limits.maxUploadBytes);
    const { result, image } = await ingest(bytes);
    return jsonResponse({
      id: result.id,
      width: image.width,
      height: image.height,
      encodeMs: Math.round(result.encodeMs * 10) / 10,
      cached: result.cached,
    });
  }

  /** Decodes, checks, encodes and stores an image (uploads, CVAT and Label Studio images). */
  async function ingest(bytes: Uint8Array) {
    const image = await decodeQueue.run(
      () => decodeUpload(bytes, { ...limits, imgSize: engine.info.imgSize }),
      { timeoutMs: limits.requestTimeoutMs },
    );
    // Refused before the encoder runs: it could never be stored for the prompts to come.
    if (image.data.byteLength > images.maxBytes) {
      throw new HttpError(413, "image is larger than the whole image cache (--cache-mb)");
    }
    const result = await onGpu(() =>
      engine.setImage(image).catch((e) => {
        // The preprocessing's refusal of an image that the checks above let through.
        if (e instanceof RangeError) throw new HttpError(400, e.message);
        throw e;
      })
    );
    if (!images.set(result.id, { id: result.id, image }, image.data.byteLength)) {
      throw new HttpError(413, "image is larger than the whole image cache (--cache-mb)");
    }
    await options.sharedImages?.putImage(result.id, bytes);
    return { result, image };
  }

  // The CVAT (nuclio) and Label Studio ML backend surfaces, through this same handler.
  const context: RouteContext = {
    engine,
    detector,
    limits,
    log,
    ingestImage: async (bytes) => {
      const { result, image } = await ingest(bytes);
      return { id: result.id, image };
    },
    onImage,
    onGpu,
    maskSource: (signal) => stoppable(engine.maskSource?.() ?? predictorMaskSource(engine), signal),
  };
  const extraRoutes: ExtraRoutes[] = [cvatRoutes(context), labelStudioRoutes(context)];

  async function segment(req: Request, id: string): Promise<Response> {
    const stored = await lookupImage(id);
    const { width, height } = stored.image;
    const body = await readJsonObject(req, limits.maxJsonBytes);
    const parsed = parseSegmentRequest(body, width, height, limits);
    let prompts: Prompt[] = parsed.prompts;
    if (parsed.maskInputHandle) {
      const entry = handles.get(parsed.maskInputHandle);
      if (!entry) {
        throw new HttpError(400, "mask_input: unknown or expired low_res_handle (segment again)");
      }
      if (entry.imageId !== stored.id) {
        throw new HttpError(400, "mask_input: that low_res_handle belongs to another image");
      }
      prompts = prompts.map((p) => ({ ...p, maskInput: entry.logits }));
    }
    const predictions = await onImage(stored, async () => {
      try {
        if (parsed.batched) return await engine.predictBatch(prompts);
        return [await engine.predict(prompts[0])];
      } catch (e) {
        // The predictor's refusal of a prompt that the validation here let through.
        if (e instanceof RangeError) throw new HttpError(400, e.message);
        throw e;
      }
    });
    const results = [];
    for (const pred of predictions) {
      results.push(await describePrediction(pred, stored.id, parsed));
    }
    const body0 = { width, height, format: parsed.format };
    if (parsed.batched) {
      // One entry per box, each with its masks (not repeated in a flat list: 64 boxes of
      // three candidates are megabytes already).
      return jsonResponse({ ...body0, results });
    }
    return jsonResponse({ ...body0, ...results[0] });
  }

  async function describePrediction(pred: Prediction, imageId: string, output: OutputFormat) {
    const format = output.format;
    const plane = pred.lowResSize * pred.lowResSize;
    // An image deleted while this job waited gets no handles: nothing would ever free them.
    const keepHandles = images.has(imageId);
    const masks = [];
    let best = 0;
    for (let i = 0; i < pred.masks.length; i++) {
      let handle: string | null = null;
      if (keepHandles) {
        handle = crypto.randomUUID().replaceAll("-", "");
        const logits = pred.lowResLogits.slice(i * plane, (i + 1) * plane);
        handles.set(handle, { imageId, logits }, logits.byteLength);
      }
      const score = pred.scores[i];
      if (score > pred.scores[best]) best = i;
      const mask = pred.masks[i];
      let area = 0;
      for (let k = 0; k < mask.length; k++) area += mask[k] ? 1 : 0;
      masks.push({
        score,
        area,
        low_res_handle: handle,
        ...(format === "png"
          ? { png_base64: (await encodeMaskPng(mask, pred.width, pred.height)).toBase64() }
          : format === "polygon"
          ? maskPolygonFields(mask, pred.width, pred.height, output.polygonTolerance)
          : { rle: cocoEncodeRle(maskToRle(mask, pred.height, pred.width)) }),
      });
    }
    return { masks, best, low_res_handle: masks[best]?.low_res_handle ?? null };
  }

  async function everything(req: Request, id: string): Promise<Response> {
    const stored = await lookupImage(id);
    const { width, height } = stored.image;
    const body = await readJsonObject(req, limits.maxJsonBytes);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    const params = parseEverythingRequest(rest, width, height, limits);
    let generator: AutomaticMaskGenerator;
    try {
      generator = new AutomaticMaskGenerator(params);
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
    const t0 = performance.now();
    const { records, counts } = await onGpu((signal) => {
      const source = stoppable(engine.maskSource?.() ?? predictorMaskSource(engine), signal);
      return generator.generateWithCounts({ width, height, data: stored.image.data }, source);
    });
    return jsonResponse({
      width,
      height,
      ms: Math.round(performance.now() - t0),
      count: records.length,
      params: {
        points_per_side: params.pointsPerSide,
        points_per_batch: params.pointsPerBatch,
        pred_iou_thresh: params.predIouThresh,
        stability_score_thresh: params.stabilityScoreThresh,
        stability_score_offset: params.stabilityScoreOffset,
        box_nms_thresh: params.boxNmsThresh,
        crop_n_layers: params.cropNLayers,
        crop_nms_thresh: params.cropNmsThresh,
        crop_overlap_ratio: params.cropOverlapRatio,
        crop_n_points_downscale_factor: params.cropNPointsDownscaleFactor,
        min_mask_region_area: params.minMaskRegionArea,
        output_mode: "coco_rle",
      },
      format: output.format,
      annotations: output.format === "polygon"
        ? records.map((r) => withPolygonSegmentation(r, output.polygonTolerance))
        : records,
      filtered: counts, // why there are this many: candidates dropped per threshold
    });
  }

  async function embedding(id: string): Promise<Response> {
    const stored = await lookupImage(id);
    const emb = await onImage(stored, () => engine.getImageEmbedding());
    return new Response(encodeNpyF32(emb.data, emb.shape) as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": "application/octet-stream",
        "content-disposition": `attachment; filename="${stored.id.slice(0, 16)}_embedding.npy"`,
        "cache-control": "no-store",
      },
    });
  }

  async function detect(req: Request, id: string): Promise<Response> {
    if (!detector) {
      throw new HttpError(
        404,
        "no detector configured: start the server with --detector PATH.onnx (or WGSAM_DETECTOR)",
      );
    }
    const stored = await lookupImage(id);
    const body = await readJsonObject(req, limits.maxJsonBytes);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    const opts = parseDetectRequest(rest, limits);
    const classNames = detector.detector.classNames;
    try {
      resolveClassIds(opts.classes, classNames); // refused before waiting for the GPU
    } catch (e) {
      if (e instanceof UnknownClassError) throw new HttpError(400, e.message);
      throw e;
    }
    const t0 = performance.now();
    // detectAndSegment sets the image itself (and skips SAM when nothing is detected).
    const result = await onGpu(() =>
      detectAndSegment(stored.image, detector.detector, engine, opts).catch((e) => {
        if (e instanceof UnknownClassError || e instanceof RangeError) {
          throw new HttpError(400, e.message);
        }
        throw e;
      })
    );
    const coco = cocoJson(result, classNames);
    return jsonResponse({
      width: result.width,
      height: result.height,
      ms: Math.round(performance.now() - t0),
      detections: result.annotations.length,
      format: output.format,
      annotations: output.format === "polygon"
        ? coco.annotations.map((a, i) =>
          withPolygonSegmentation(a, output.polygonTolerance, result.masks[i])
        )
        : coco.annotations,
      categories: coco.categories,
    });
  }

  function methodNotAllowed(allow: string[]): never {
    throw new HttpError(405, `method not allowed; use ${allow.join(" or ")}`, {
      allow: allow.join(", "),
    });
  }

  async function route(req: Request, method: string, path: string): Promise<Response> {
    for (const extra of extraRoutes) {
      const answer = await extra(req, method, path);
      if (answer) return answer;
    }
    const file = STATIC_FILES[path];
    if (file) {
      if (method !== "GET") methodNotAllowed(["GET"]);
      const bytes = staticFile(file[0]);
      if (!bytes) throw new HttpError(404, `page file ${file[0]} is missing`);
      return new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": file[1], "cache-control": "no-cache" },
      });
    }
    if (path === "/api/info") {
      if (method !== "GET") methodNotAllowed(["GET"]);
      return jsonResponse(info());
    }
    if (path === "/api/images") {
      if (method !== "POST") methodNotAllowed(["POST"]);
      return await upload(req);
    }
    const decoderAnswer = await decoderRoute(engine, req, method, path);
    if (decoderAnswer) return decoderAnswer;
    const m = /^\/api\/images\/([^/]+)(?:\/(segment|everything|embedding|detect))?\/?$/.exec(path);
    if (m) {
      let id = "";
      try {
        id = decodeURIComponent(m[1]);
      } catch {
        throw new HttpError(404, "malformed image id");
      }
      switch (m[2]) {
        case undefined:
          if (method === "GET") {
            const s = await lookupImage(id);
            return jsonResponse({ id: s.id, width: s.image.width, height: s.image.height });
          }
          if (method === "DELETE") {
            await lookupImage(id);
            // All or nothing, and never a 503: the image and its low_res_handles go at once
            // (CPU side). Every handle is visited in recency order and each kept one
            // re-inserted in turn, so their relative order (eviction) is unchanged.
            images.delete(id);
            for (const handle of handles.keys()) {
              if (handles.get(handle)?.imageId === id) handles.delete(handle);
            }
            // The embedding goes too, from inside the GPU queue so no running job loses it:
            // after the jobs already waiting, never refused for a full queue and with no time
            // limit (at once when the queue is idle); the response does not wait for it.
            forgetEmbedding(id);
            await options.sharedImages?.forget(id);
            return jsonResponse({ deleted: id });
          }
          return methodNotAllowed(["GET", "DELETE"]);
        case "segment":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await segment(req, id);
        case "everything":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await everything(req, id);
        case "embedding":
          if (method !== "GET") methodNotAllowed(["GET"]);
          return await embedding(id);
        case "detect":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await detect(req, id);
      }
    }
    throw new HttpError(404, `no route ${path.slice(0, 200)}`);
  }

  const handler = async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    requests++;
    let path = "/";
    let response: Response;
    try {
      path = new URL(req.url).pathname;
      // HEAD is GET without the body.
      const method = req.method === "HEAD" ? "GET" : req.method;
      response = await route(req, method, path);
      if (req.method === "HEAD") {
        response = new Response(null, { status: response.status, headers: response.headers });
      }
    } catch (e) {
      if (e instanceof HttpError) {
        response = errorResponse(e.status, e.message, e.headers);
      } else {
        log(`ERROR ${req.method} ${path}: ${(e as Error)?.stack ?? e}`);
        response = errorResponse(500, `internal error: ${(e as Error)?.message ?? e}`);
      }
    }
    log(`${req.method} ${path} ${response.status} ${Math.round(performance.now() - t0)}ms`);
    return response;
  };
  return Object.assign(handler, { limits: Object.freeze(limits), queue });
}

/** A mask source that stops (throws) at its next step once the signal aborts. */
function stoppable(source: MaskSource, signal: AbortSignal): MaskSource {
  const check = () => {
    if (signal.aborted) throw new HttpError(504, "segment everything stopped: time limit");
  };
  return {
    setImage: (image) => {
      check();
      return source.setImage(image);
    },
    predictPoints: (points, n) => {
      check();
      return source.predictPoints(points, n);
    },
    ...(source.predictBatch
      ? {
        predictBatch: (request) => {
          check();
          return source.predictBatch!(request);
        },
      }
      : {}),
  };
}
