/**
 * The HTTP application: `createApp(options)` returns a `(req) => Promise<Response>` handler that
 * tests call directly and `Deno.serve` mounts. Routes:
 *
 *   GET    /                          the page (src/web/)
 *   GET    /api/info                  server, model, adapter, queue and cache state
 *   POST   /api/images                upload (raw PNG/JPEG or multipart field "image"); 200 once
 *                                     encoded, or 202 status "encoding" if that takes long
 *   GET    /api/images/:id            size and status ("waiting", "encoding", "ready")
 *   DELETE /api/images/:id            forget a stored image
 *   POST   /api/images/:id/segment    prompts -> masks (PNG, COCO RLE or polygons) + handles
 *   POST   /api/images/:id/everything automatic mask generation -> COCO annotations (RLE or polygons)
 *   POST   /api/images/:id/detect     detector boxes -> SAM masks -> COCO annotations (RLE or polygons)
 *   GET    /api/images/:id/embedding  the image embedding as .npy (?tensor=: SAM 2's others)
 *   GET    /api/decoder[/<sha>.safetensors]  the decoder weights for the page (decoder_routes.ts)
 *   /api/videos[/:id[/frames|prompts|propagate|objects/:objId]]  SAM 2.1 video tracking
 *                                     sessions (video_routes.ts)
 *
 * Every error is JSON `{ "error": "..." }`; unexpected exceptions are logged and become a 500.
 * Before routing, every request passes the Host/Origin checks of access.ts (403) and takes its
 * share of the request-body byte budget (503 past it).
 */
import type { ImageInfo, Prediction, Prompt, RgbImage } from "../types.ts";
import { AutomaticMaskGenerator, cocoEncodeRle, type MaskSource, maskToRle } from "../amg/mod.ts";
import { cocoJson, detectAndSegment, resolveClassIds, UnknownClassError } from "../detect/mod.ts";
import { ByteLru } from "../util/lru.ts";
import { encodeNpyF32 } from "../util/npy.ts";
import { type AccessPolicy, accessPolicy, checkAccess } from "./access.ts";
import { type BodyLease, ByteBudget, readImageUpload, readJsonObject } from "./body.ts";
import { decodeUpload, WorkerDecoder } from "./decode.ts";
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
import { type LabelStudioOptions, labelStudioRoutes } from "./label_studio.ts";
import {
  type OutputFormat,
  parseDetectRequest,
  parseEverythingRequest,
  parseOutputFormat,
  parseSegmentRequest,
} from "./validate.ts";
import { maskPolygonFields, withPolygonSegmentation } from "../util/polygon_export.ts";
import type { VideoTrackerFactory } from "../video/tracker.ts";
import { videoRoutes } from "./video_routes.ts";

export const SERVER_NAME = "wgsam";
export const SERVER_VERSION = "0.1.0";

export const MEANINGLESS_WARNING =
  "Running on the bundled sam-tiny test model (random weights): its masks are meaningless. " +
  "Get a real model with `deno task weights vit_b` and restart.";

/** MEANINGLESS_WARNING naming the bundled test model in use (sam-tiny or sam2-tiny). */
export function meaninglessWarning(model: string): string {
  return MEANINGLESS_WARNING.replace("sam-tiny", model === "sam2-tiny" ? model : "sam-tiny");
}

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
  /** The Label Studio backend's connection and --ls-allow-host list (default: environment). */
  labelStudio?: LabelStudioOptions;
  sharedImages?: {
    getImage(id: string): Promise<Uint8Array | null>;
    putImage(id: string, file: Uint8Array): Promise<void>;
    forget(id: string): Promise<void>;
  } | null;
  /** Host names and foreign origins allowed besides the defaults (see access.ts). */
  access?: { allowHosts?: readonly string[]; allowOrigins?: readonly string[] };
  /** SAM 2.1 video trackers for /api/videos (video_routes.ts); absent: those routes 404. */
  video?: VideoTrackerFactory | null;
}

export type AppHandler = ((req: Request) => Promise<Response>) & {
  readonly limits: Readonly<Limits>;
  readonly queue: WorkQueue;
  readonly access: Readonly<AccessPolicy>;
  /** Bytes of request bodies held now (the budget of limits.maxBufferedBytes). */
  readonly bufferedBytes: () => number;
  /** Ends the image decoder's worker (the app still answers; a decode starts a new one). */
  close(): void;
};

/** A stored image, and its encode while that runs (route_context's StoredImage plus state). */
interface ImageEntry extends StoredImage {
  /** Until its embedding is computed: settles when the encode ends (rejects if it failed). */
  encoding: Promise<ImageInfo> | null;
  /** When the upload was queued for the encoder and when the encode started (ms). */
  queuedAt: number;
  startedAt: number | null;
}

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
  "/video.js": ["video.js", "text/javascript; charset=utf-8"], // the page's video mode
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
  // One decode at a time (in a worker) bounds the memory of large photos.
  const decodeQueue = new WorkQueue(limits.maxQueue);
  const decoder = new WorkerDecoder({
    maxJpegScans: limits.maxJpegScans,
    timeoutMs: Math.min(limits.decodeTimeoutMs, limits.requestTimeoutMs),
  });
  const bodyBudget = new ByteBudget(limits.maxBufferedBytes);
  const access = accessPolicy(options.access);
  const detector = options.detector ?? null;
  const images = new ByteLru<string, ImageEntry>(limits.imageCacheBytes);
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

  async function lookupImage(id: string): Promise<ImageEntry> {
    const stored = ID_PATTERN.test(id) ? images.get(id) ?? await sharedImage(id) : undefined;
    if (!stored) {
      throw new HttpError(404, `unknown image id "${id.slice(0, 80)}" (upload it again)`);
    }
    return stored;
  }

  /** An image another host was sent (`--redis`), decoded here; null when unknown. */
  async function sharedImage(id: string): Promise<ImageEntry | undefined> {
    const file = await options.sharedImages?.getImage(id);
    if (!file) return undefined;
    const image = await decodeQueue.run(
      () => decodeUpload(file, { ...limits, imgSize: engine.info.imgSize }, decoder.decoder()),
      { timeoutMs: limits.requestTimeoutMs, limitRunning: false },
    );
    // The id is the content hash of the pixels: a file that decodes to others is not this one.
    if (await imageId(image) !== id) return undefined;
    const stored: ImageEntry = { id, image, encoding: null, queuedAt: 0, startedAt: 0 };
    return images.set(id, stored, image.data.byteLength) ? stored : undefined;
  }

  /**
   * Runs GPU work through the queue under the request's time limit. `limitRunning: false`
   * (image encoding) bounds only the wait: an encode, once started, finishes and is cached.
   */
  function onGpu<T>(
    job: (signal: AbortSignal) => Promise<T>,
    opts: { limitRunning?: boolean } = {},
  ): Promise<T> {
    const abort = new AbortController();
    // Not req.signal: under Deno.serve it also aborts after every successful response (legacy
    // behaviour), so a waiting job is bounded by the time limit instead.
    return queue.run(() => job(abort.signal), {
      timeoutMs: limits.requestTimeoutMs,
      limitRunning: opts.limitRunning,
    })
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
        family: engine.info.family ?? "sam",
        arch: engine.info.arch,
        meaningless: engine.info.meaningless,
        precision: engine.info.precision ?? "f32",
      },
      adapter: engine.info.adapter,
      gpu_provider: engine.info.provider ?? null,
      detector: detector?.info() ?? null,
      warning: engine.info.meaningless ? meaninglessWarning(engine.info.model) : null,
      queue: queue.stats(),
      cache: {
        images: { count: images.size, bytes: images.bytes, max_bytes: images.maxBytes },
        low_res_handles: { count: handles.size, bytes: handles.bytes, max_bytes: handles.maxBytes },
      },
      videos: videos.stats(),
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
        max_jpeg_scans: limits.maxJpegScans,
        decode_timeout_ms: Math.min(limits.decodeTimeoutMs, limits.requestTimeoutMs),
        max_buffered_bytes: limits.maxBufferedBytes,
        max_batch_work_pixels: limits.maxBatchWorkPixels,
        upload_answer_ms: limits.uploadAnswerMs,
      },
    };
  }

  /**
   * Waits for a stored image's encode (prompts on an image still encoding wait for it, with no
   * time limit of their own: the encode ends, and their own limit starts after).
   */
  async function whenEncoded(stored: ImageEntry): Promise<void> {
    if (stored.encoding) await stored.encoding;
  }

  /** The encode of a new image, started now (queued); the image is stored at once by its id. */
  function startEncode(id: string, image: RgbImage): ImageEntry {
    const stored: ImageEntry = {
      id,
      image,
      encoding: null,
      queuedAt: performance.now(),
      startedAt: null,
    };
    if (!images.set(id, stored, image.data.byteLength)) {
      throw new HttpError(413, "image is larger than the whole image cache (--cache-mb)");
    }
    // The time limit bounds the wait for the GPU, not the encode: on a CPU-only adapter a
    // large encoder takes many minutes, and a 504 would only throw that work away.
    const encode = onGpu(() => {
      stored.startedAt = performance.now();
      return engine.setImage(image).catch((e) => {
        // The preprocessing's refusal of an image that the checks above let through.
        if (e instanceof RangeError) throw new HttpError(400, e.message);
        throw e;
      });
    }, { limitRunning: false });
    stored.encoding = encode.then((info) => {
      stored.encoding = null;
      return info;
    }, (e) => {
      if (images.get(id) === stored) images.delete(id);
      throw e;
    });
    stored.encoding.catch(() => {}); // heard by whoever waits; none may
    return stored;
  }

  async function upload(req: Request, lease: BodyLease): Promise<Response> {
    const bytes = await readImageUpload(req, limits.maxUploadBytes, lease);
    const got = await ingest(bytes, limits.uploadAnswerMs);
    if (!got.done) {
      // Still encoding: GET /api/images/:id tells when it is ready; prompts sent meanwhile wait.
      const { entry } = got;
      return jsonResponse(
        {
          id: entry.id,
          width: entry.image.width,
          height: entry.image.height,
          ...encodeStatus(entry),
        },
        202,
      );
    }
    const { result, image } = got;
    return jsonResponse({
      id: result.id,
      width: image.width,
      height: image.height,
      encodeMs: Math.round(result.encodeMs * 10) / 10,
      cached: result.cached,
    });
  }

  /**
   * Decodes, checks, encodes and stores an image (uploads, CVAT and Label Studio images); when
   * the encode outlasts `answerWithinMs` (the engine can name the image before encoding it),
   * the stored entry still encoding instead.
   */
  async function ingest(
    bytes: Uint8Array,
    answerWithinMs: number,
  ): Promise<
    { done: true; result: ImageInfo; image: RgbImage } | { done: false; entry: ImageEntry }
  > {
    const image = await decodeQueue.run(
      () => decodeUpload(bytes, { ...limits, imgSize: engine.info.imgSize }, decoder.decoder()),
      // The decoder's own clock bounds a running decode (and ends its worker).
      { timeoutMs: limits.requestTimeoutMs, limitRunning: false },
    );
    // Refused before the encoder runs: it could never be stored for the prompts to come.
    if (image.data.byteLength > images.maxBytes) {
      throw new HttpError(413, "image is larger than the whole image cache (--cache-mb)");
    }
    const id = await engine.imageId?.(image);
    const known = id === undefined ? undefined : images.get(id);
    if (id !== undefined && (!known || known.encoding)) {
      // A new image (or one still encoding): answered when its encode ends, or with 202 and
      // status "encoding" after limits.uploadAnswerMs; GET /api/images/:id tells when it is
      // ready, and prompts sent meanwhile wait for it.
      const stored = known ?? startEncode(id, image);
      const share = () => options.sharedImages?.putImage(id, bytes);
      const outcome = await within(stored.encoding!, answerWithinMs);
      if (!outcome.done) {
        stored.encoding!.then(share).catch(() => {}); // shared once encoded
        return { done: false, entry: stored };
      }
      await share();
      return { done: true, result: outcome.value, image: stored.image };
    }
    // Known and ready (or an engine that cannot name an image before encoding it). A known
    // image is set by its stored pixels: the engine has seen that very array (no new hash).
    const result = await onGpu(() =>
      engine.setImage(known?.image ?? image).catch((e) => {
        // The preprocessing's refusal of an image that the checks above let through.
        if (e instanceof RangeError) throw new HttpError(400, e.message);
        throw e;
      }), { limitRunning: false });
    const entry: ImageEntry = {
      id: result.id,
      image: known?.image ?? image,
      encoding: null,
      queuedAt: 0,
      startedAt: 0,
    };
    if (!images.set(result.id, entry, image.data.byteLength)) {
      throw new HttpError(413, "image is larger than the whole image cache (--cache-mb)");
    }
    await options.sharedImages?.putImage(result.id, bytes);
    return { done: true, result, image: entry.image };
  }

  // The CVAT (nuclio) and Label Studio ML backend surfaces, through this same handler.
  const context: RouteContext = {
    engine,
    detector,
    limits,
    log,
    ingestImage: async (bytes) => {
      // Their answers need the masks: they wait for the encode, however long.
      const got = await ingest(bytes, Infinity);
      if (!got.done) throw new Error("ingest: an encode without an end");
      return { id: got.result.id, image: got.image };
    },
    onImage,
    onGpu,
    maskSource: (signal) => stoppable(engine.maskSource?.() ?? predictorMaskSource(engine), signal),
  };
  const videos = videoRoutes({
    limits,
    log,
    family: engine.info.family ?? "sam",
    model: engine.info.model,
    factory: options.video ?? null,
    decodeFrame: (bytes) =>
      decodeQueue.run(
        () => decodeUpload(bytes, { ...limits, imgSize: engine.info.imgSize }, decoder.decoder()),
        { timeoutMs: limits.requestTimeoutMs, limitRunning: false },
      ),
    onGpu: (job) => onGpu(job),
    always: (job) => {
      queue.always(job).catch((e) => log(`ERROR freeing a video session: ${e?.stack ?? e}`));
    },
  });
  const extraRoutes: ExtraRoutes[] = [
    cvatRoutes(context),
    labelStudioRoutes(context, options.labelStudio),
  ];

  async function segment(req: Request, id: string, lease: BodyLease): Promise<Response> {
    const stored = await lookupImage(id);
    const { width, height } = stored.image;
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
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
    await whenEncoded(stored);
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
    return {
      masks,
      best,
      low_res_handle: masks[best]?.low_res_handle ?? null,
      // SAM 2.1: the object-score logit (> 0: an object is there), as information only.
      ...(pred.objectScore !== undefined ? { object_score: pred.objectScore } : {}),
    };
  }

  async function everything(req: Request, id: string, lease: BodyLease): Promise<Response> {
    const stored = await lookupImage(id);
    const { width, height } = stored.image;
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    const params = parseEverythingRequest(rest, width, height, limits);
    let generator: AutomaticMaskGenerator;
    try {
      generator = new AutomaticMaskGenerator(params);
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
    await whenEncoded(stored);
    const t0 = performance.now();
    const { records, counts } = await onGpu((signal) => {
      if (engine.everything) return engine.everything(stored.image, params, signal);
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

  /**
   * The image embedding as .npy; `?tensor=NAME` picks another of the tensors the decoder
   * reads (SAM 2.1: image_embed, high_res_feats_0, high_res_feats_1; all three are needed to
   * decode). The `x-wgsam-tensors` header lists them.
   */
  async function embedding(id: string, req: Request): Promise<Response> {
    const stored = await lookupImage(id);
    await whenEncoded(stored);
    const names = engine.info.featureNames ?? ["image_embeddings"];
    const tensor = new URL(req.url).searchParams.get("tensor");
    if (tensor !== null && !names.includes(tensor)) {
      throw new HttpError(
        400,
        `tensor must be one of ${names.join(", ")}; got '${tensor.slice(0, 100)}'`,
      );
    }
    const emb = await onImage(
      stored,
      () =>
        tensor === null || tensor === names[0] || !engine.getImageFeature
          ? engine.getImageEmbedding()
          : engine.getImageFeature(tensor),
    );
    const suffix = tensor === null || tensor === names[0] ? "embedding" : tensor;
    return new Response(encodeNpyF32(emb.data, emb.shape) as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": "application/octet-stream",
        "content-disposition": `attachment; filename="${stored.id.slice(0, 16)}_${suffix}.npy"`,
        "cache-control": "no-store",
        "x-wgsam-tensors": names.join(","),
      },
    });
  }

  async function detect(req: Request, id: string, lease: BodyLease): Promise<Response> {
    if (!detector) {
      throw new HttpError(
        404,
        "no detector configured: start the server with --detector PATH.onnx (or WGSAM_DETECTOR)",
      );
    }
    const stored = await lookupImage(id);
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    const opts = parseDetectRequest(rest, limits);
    const classNames = detector.detector.classNames;
    try {
      resolveClassIds(opts.classes, classNames); // refused before waiting for the GPU
    } catch (e) {
      if (e instanceof UnknownClassError) throw new HttpError(400, e.message);
      throw e;
    }
    await whenEncoded(stored);
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

  async function route(
    req: Request,
    method: string,
    path: string,
    lease: BodyLease,
  ): Promise<Response> {
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
      return await upload(req, lease);
    }
    const videoAnswer = await videos.route(req, method, path, lease);
    if (videoAnswer) return videoAnswer;
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
            return jsonResponse({
              id: s.id,
              width: s.image.width,
              height: s.image.height,
              ...encodeStatus(s),
            });
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
          return await segment(req, id, lease);
        case "everything":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await everything(req, id, lease);
        case "embedding":
          if (method !== "GET") methodNotAllowed(["GET"]);
          return await embedding(id, req);
        case "detect":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await detect(req, id, lease);
      }
    }
    throw new HttpError(404, `no route ${path.slice(0, 200)}`);
  }

  const handler = async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    requests++;
    let path = "/";
    let response: Response;
    let corsHeaders: Record<string, string> = {};
    const lease = bodyBudget.lease();
    try {
      let url = new URL(req.url);
      // Behind the guarded listener, Deno.serve sees a Unix socket: the client asked for http.
      if (url.protocol === "http+unix:") url = new URL(`http://${url.host}${url.pathname}`);
      path = url.pathname;
      const decision = checkAccess(req, url, access, path.startsWith("/api/"));
      corsHeaders = decision.headers;
      if (decision.preflight) {
        response = decision.preflight;
      } else {
        // HEAD is GET without the body.
        const method = req.method === "HEAD" ? "GET" : req.method;
        response = await route(req, method, path, lease);
        if (req.method === "HEAD") {
          response = new Response(null, { status: response.status, headers: response.headers });
        }
      }
    } catch (e) {
      if (e instanceof HttpError) {
        response = errorResponse(e.status, e.message, e.headers);
      } else {
        log(`ERROR ${req.method} ${path}: ${(e as Error)?.stack ?? e}`);
        response = errorResponse(500, `internal error: ${(e as Error)?.message ?? e}`);
      }
    } finally {
      lease.release();
    }
    for (const [name, value] of Object.entries(corsHeaders)) response.headers.set(name, value);
    log(`${req.method} ${path} ${response.status} ${Math.round(performance.now() - t0)}ms`);
    return response;
  };
  return Object.assign(handler, {
    limits: Object.freeze(limits),
    queue,
    access,
    bufferedBytes: () => bodyBudget.used,
    close: () => {
      decoder.dispose();
      videos.close();
    },
  });
}

/** A stored image's state: "ready", or "waiting" for the GPU / "encoding", for how long. */
function encodeStatus(s: ImageEntry) {
  if (!s.encoding) return { status: "ready" };
  const now = performance.now();
  if (s.startedAt === null) {
    return { status: "waiting", waiting_ms: Math.round(now - s.queuedAt) };
  }
  return { status: "encoding", encoding_ms: Math.round(now - s.startedAt) };
}

/** The promise's value if it settles within `ms`, else `{ done: false }` (its timer cleared). */
async function within<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ done: true; value: T } | { done: false }> {
  if (!Number.isFinite(ms)) return { done: true, value: await promise };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<{ done: false }>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ done: true as const, value })), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A mask source that stops (throws) at its next step once the signal aborts, so a timed-out
 * job frees the GPU queue after the batch in flight. Before each step it also lets the event
 * loop run (a macrotask turn): the generator's CPU work between batches (NMS, RLE) would
 * otherwise keep other requests (GET /api/info, 503s) waiting until the whole job ends.
 */
function stoppable(source: MaskSource, signal: AbortSignal): MaskSource {
  const check = async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (signal.aborted) throw new HttpError(504, "segment everything stopped: time limit");
  };
  return {
    regionsInLowRes: source.regionsInLowRes,
    setImage: async (image) => {
      await check();
      return await source.setImage(image);
    },
    predictPoints: async (points, n) => {
      await check();
      return await source.predictPoints(points, n);
    },
    ...(source.predictBatch
      ? {
        predictBatch: async (request) => {
          await check();
          return await source.predictBatch!(request);
        },
      }
      : {}),
  };
}
