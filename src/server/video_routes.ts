/**
 * SAM 2.1 video tracking over HTTP (issue #17), one session per video:
 *
 *   POST   /api/videos                         open a session -> 201 {id, ...}
 *   GET    /api/videos/:id                     its size, frame count, objects
 *   DELETE /api/videos/:id                     close it (its GPU memory goes)
 *   POST   /api/videos/:id/frames              append a frame: PNG/JPEG body, or raw RGBA
 *                                              (application/octet-stream, ?width=&height=)
 *   POST   /api/videos/:id/prompts             {frame_idx, obj_id, points?, labels?, box?}
 *                                              -> every object's mask on that frame
 *   POST   /api/videos/:id/propagate           {start_frame_idx?, reverse?, max_frames?}
 *                                              -> NDJSON, one line per frame, then {done}
 *   DELETE /api/videos/:id/objects/:objId      stop tracking one object
 *
 * Masks come as COCO RLE (default) or polygons (`"format": "polygon"`). Every model call goes
 * through the server's GPU queue like the image routes (503 + Retry-After when full, 504 past
 * the time limit); a propagation takes the queue one frame at a time, so other requests run
 * between its frames, and stops when its response is closed.
 */
import { cocoEncodeRle, maskToRle } from "../amg/rle.ts";
import type { RgbImage } from "../types.ts";
import { maskPolygonFields } from "../util/polygon_export.ts";
import {
  maskOf,
  NotSam2Error,
  type PropagateOptions,
  type VideoFrameResult,
  type VideoTracker,
  type VideoTrackerFactory,
} from "../video/tracker.ts";
import { type BodyLease, readBodyLimited, readImageUpload, readJsonObject } from "./body.ts";
import { HttpError, jsonResponse } from "./errors.ts";
import type { Limits } from "./limits.ts";
import { checkPromptInImage } from "./route_context.ts";
import { type OutputFormat, parseOutputFormat } from "./validate.ts";
import { type VideoSession, VideoSessions } from "./video_sessions.ts";

export interface VideoRouteDeps {
  limits: Readonly<Limits>;
  log: (line: string) => void;
  /** The model family the server runs ("sam2" is needed). */
  family: string;
  model: string;
  /** Builds trackers; null: this server has none (video routes answer 404). */
  factory: VideoTrackerFactory | null;
  /** Decodes a PNG/JPEG frame with the upload checks (size limits, decode worker). */
  decodeFrame(bytes: Uint8Array): Promise<RgbImage>;
  /** GPU work in the shared queue under the request time limit. */
  onGpu<T>(job: () => Promise<T>): Promise<T>;
  /** Short GPU bookkeeping that must not be refused (freeing a session's buffers). */
  always(job: () => void): void;
}

export interface VideoRoutes {
  route(req: Request, method: string, path: string, lease: BodyLease): Promise<Response | null>;
  stats(): { sessions: number; max_sessions: number };
  close(): void;
}

const SESSION_PATH =
  /^\/api\/videos\/([^/]+)(?:\/(frames|prompts|propagate|objects\/([^/]+)))?\/?$/;
const PROMPT_KEYS = new Set(["frame_idx", "obj_id", "points", "labels", "box"]);
const PROPAGATE_KEYS = new Set(["start_frame_idx", "reverse", "max_frames"]);
/** Object ids as the official int32 object ids (and JSON-safe). */
const MAX_OBJ_ID = 2 ** 31 - 1;

export function videoRoutes(deps: VideoRouteDeps): VideoRoutes {
  const { limits } = deps;
  const sessions = new VideoSessions(limits, (tracker) =>
    deps.always(() => {
      try {
        tracker.dispose();
      } catch (e) {
        deps.log(`ERROR disposing a video tracker: ${(e as Error)?.stack ?? e}`);
      }
    }));

  function requireVideo(): VideoTrackerFactory {
    if (deps.family !== "sam2") {
      throw new HttpError(
        400,
        `video tracking needs a SAM 2.1 model; this server runs ${deps.model} (family ` +
          `${deps.family}). Start it with --model sam2.1_hiera_tiny (or another SAM 2.1 model)`,
      );
    }
    if (!deps.factory) {
      throw new HttpError(404, "video tracking is not enabled on this server");
    }
    return deps.factory;
  }

  async function create(req: Request, lease: BodyLease): Promise<Response> {
    const factory = requireVideo();
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
    const { history_frames, ...extra } = body;
    const unknown = Object.keys(extra);
    if (unknown.length > 0) throw new HttpError(400, `unknown field "${unknown[0].slice(0, 60)}"`);
    let historyFrames: number | undefined;
    if (history_frames !== undefined && history_frames !== null) {
      historyFrames = frameIndex(history_frames, "history_frames", Infinity, false);
    }
    sessions.checkRoom(); // before any GPU work
    let tracker: VideoTracker;
    try {
      tracker = await deps.onGpu(() => factory.create({ historyFrames }));
    } catch (e) {
      if (e instanceof NotSam2Error) throw new HttpError(400, e.message);
      throw e;
    }
    let session: VideoSession;
    try {
      session = sessions.add(tracker);
      session.historyFrames = historyFrames;
    } catch (e) {
      deps.always(() => tracker.dispose()); // another request took the last slot meanwhile
      throw e;
    }
    return jsonResponse({ id: session.id, ...describe(session) }, 201);
  }

  function describe(s: VideoSession) {
    return {
      model: deps.model,
      width: s.frames ? s.width : null,
      height: s.frames ? s.height : null,
      frames: s.frames,
      obj_ids: s.objIds,
      busy: s.busy,
      history_frames: s.historyFrames ?? null,
      limits: {
        max_frames: limits.maxVideoFrames,
        max_bytes: limits.maxVideoBytes,
        idle_timeout_s: limits.videoIdleMs / 1000,
      },
    };
  }

  async function addFrame(req: Request, s: VideoSession, lease: BodyLease): Promise<Response> {
    const url = new URL(req.url);
    const w = url.searchParams.get("width"), h = url.searchParams.get("height");
    let image: RgbImage;
    if (w !== null || h !== null) {
      image = await readRawRgba(req, w, h, lease);
    } else {
      const bytes = await readImageUpload(req, limits.maxUploadBytes, lease);
      image = await deps.decodeFrame(bytes);
    }
    if (s.closed) throw new HttpError(404, "this video session was deleted");
    const frameIdx = sessions.addFrame(s, image);
    return jsonResponse({
      frame_idx: frameIdx,
      width: s.width,
      height: s.height,
      frames: s.frames,
    });
  }

  /** A raw RGBA frame (a page's canvas getImageData), width * height * 4 bytes. */
  async function readRawRgba(
    req: Request,
    w: string | null,
    h: string | null,
    lease: BodyLease,
  ): Promise<RgbImage> {
    const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/octet-stream") {
      throw new HttpError(
        415,
        `raw frames (?width=&height=) must be sent as application/octet-stream, got "${
          type.slice(0, 80)
        }"`,
      );
    }
    const width = dimension(w, "width"), height = dimension(h, "height");
    if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
      throw new HttpError(
        413,
        `frame of ${width}x${height} pixels is over the limit (${limits.maxPixels} pixels, ` +
          `${limits.maxSide} a side)`,
      );
    }
    const expected = width * height * 4;
    const bytes = await readBodyLimited(
      req,
      Math.min(expected, limits.maxUploadBytes * 4),
      60_000,
      lease,
    );
    if (bytes.length !== expected) {
      throw new HttpError(
        400,
        `a raw ${width}x${height} RGBA frame is ${expected} bytes; the body has ${bytes.length}`,
      );
    }
    return { width, height, channels: 4, data: bytes };
  }

  async function prompt(req: Request, s: VideoSession, lease: BodyLease): Promise<Response> {
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    for (const key of Object.keys(rest)) {
      if (!PROMPT_KEYS.has(key)) throw new HttpError(400, `unknown field "${key.slice(0, 60)}"`);
    }
    if (s.frames === 0) throw new HttpError(400, "this video has no frames yet: post one first");
    const frameIdx = frameIndex(rest.frame_idx, "frame_idx", s.frames, true);
    const objId = rest.obj_id;
    if (typeof objId !== "number" || !Number.isInteger(objId) || objId < 0 || objId > MAX_OBJ_ID) {
      throw new HttpError(400, `obj_id must be an integer in [0, ${MAX_OBJ_ID}]`);
    }
    const points = rest.points === undefined ? undefined : pointList(rest.points);
    if (points && points.length > limits.maxPoints) {
      throw new HttpError(400, `at most ${limits.maxPoints} points, got ${points.length}`);
    }
    let labels: number[] | undefined;
    if ((rest.points === undefined) !== (rest.labels === undefined)) {
      throw new HttpError(400, "points and labels go together");
    }
    if (points) {
      if (!Array.isArray(rest.labels) || rest.labels.length !== points.length) {
        throw new HttpError(400, `labels must be an array of ${points.length} labels (0 or 1)`);
      }
      if (!rest.labels.every((l) => l === 0 || l === 1)) {
        throw new HttpError(400, "labels must be 0 (background) or 1 (foreground)");
      }
      labels = rest.labels as number[];
    }
    let box: [number, number, number, number] | undefined;
    if (rest.box !== undefined) {
      if (
        !Array.isArray(rest.box) || rest.box.length !== 4 ||
        !rest.box.every((v) => typeof v === "number" && Number.isFinite(v))
      ) {
        throw new HttpError(400, "box must be [x0, y0, x1, y1], four finite numbers");
      }
      box = rest.box as [number, number, number, number];
      if (box[2] < box[0] || box[3] < box[1]) {
        throw new HttpError(400, "box must have x1 >= x0 and y1 >= y0");
      }
    }
    if (!points?.length && !box) throw new HttpError(400, "give points (with labels) or a box");
    const corners = [...(points ?? []), ...(box ? [[box[0], box[1]], [box[2], box[3]]] : [])];
    checkPromptInImage(corners, s.width, s.height, limits, "point");
    const result = await sessions.exclusive(
      s,
      "prompt",
      () =>
        deps.onGpu(() =>
          s.tracker.addNewPointsOrBox({ frameIdx, objId, points, labels, box }).catch((e) => {
            throw refusal(e);
          })
        ),
    );
    if (!s.objIds.includes(objId)) s.objIds.push(objId);
    return jsonResponse(frameJson(result, s.width, s.height, output));
  }

  async function propagate(req: Request, s: VideoSession, lease: BodyLease): Promise<Response> {
    const body = await readJsonObject(req, limits.maxJsonBytes, lease);
    const { output, rest } = parseOutputFormat(body, ["rle", "polygon"], "rle");
    for (const key of Object.keys(rest)) {
      if (!PROPAGATE_KEYS.has(key)) throw new HttpError(400, `unknown field "${key.slice(0, 60)}"`);
    }
    if (s.frames === 0) throw new HttpError(400, "this video has no frames yet: post one first");
    if (s.objIds.length === 0) {
      throw new HttpError(400, "nothing to track: prompt an object first (POST .../prompts)");
    }
    const opts: PropagateOptions = {};
    if (rest.start_frame_idx !== undefined) {
      opts.startFrameIdx = frameIndex(rest.start_frame_idx, "start_frame_idx", s.frames, true);
    }
    if (rest.reverse !== undefined) {
      if (typeof rest.reverse !== "boolean") throw new HttpError(400, "reverse must be a boolean");
      opts.reverse = rest.reverse;
    }
    if (rest.max_frames !== undefined) {
      opts.maxFrames = frameIndex(rest.max_frames, "max_frames", Infinity, false);
    }
    sessions.claim(s, "propagate");
    let iterator: AsyncIterator<VideoFrameResult>;
    let first: IteratorResult<VideoFrameResult>;
    try {
      iterator = s.tracker.propagateInVideo(opts)[Symbol.asyncIterator]();
      // The first frame before answering: a full queue or a refused start is the status code.
      first = await deps.onGpu(() => iterator.next()).catch((e) => {
        throw refusal(e);
      });
    } catch (e) {
      sessions.release(s);
      throw refusal(e);
    }
    const encoder = new TextEncoder();
    const lineOf = (r: VideoFrameResult) =>
      JSON.stringify(frameJson(r, s.width, s.height, output)) + "\n";
    let sent = 0;
    let stopped = false;
    const finish = async () => {
      if (stopped) return;
      stopped = true;
      try {
        await deps.onGpu(async () => {
          await iterator.return?.();
        }).catch(() => {});
      } finally {
        sessions.release(s);
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        if (first.done) return;
        controller.enqueue(encoder.encode(lineOf(first.value)));
        sent++;
      },
      async pull(controller) {
        if (stopped) return;
        if (first.done || s.closed) {
          controller.enqueue(encoder.encode(JSON.stringify({ done: true, frames: sent }) + "\n"));
          await finish();
          controller.close();
          return;
        }
        try {
          const next = await nextFrame(iterator);
          if (next.done) {
            first = next;
            controller.enqueue(encoder.encode(JSON.stringify({ done: true, frames: sent }) + "\n"));
            await finish();
            controller.close();
            return;
          }
          controller.enqueue(encoder.encode(lineOf(next.value)));
          sent++;
        } catch (e) {
          const status = e instanceof HttpError ? e.status : 500;
          if (status === 500) deps.log(`ERROR video propagate: ${(e as Error)?.stack ?? e}`);
          controller.enqueue(encoder.encode(
            JSON.stringify({ error: (e as Error)?.message ?? String(e), status, frames: sent }) +
              "\n",
          ));
          await finish();
          controller.close();
        }
      },
      async cancel() {
        await finish(); // the client closed the response: the propagation stops here
      },
    }, { highWaterMark: 0 });
    return new Response(stream, {
      headers: {
        "content-type": "application/x-ndjson; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }

  /**
   * The next frame in the GPU queue. A frame found the queue full is retried (the stream was
   * admitted; other requests only delay it) until the request time limit passes.
   */
  async function nextFrame(
    iterator: AsyncIterator<VideoFrameResult>,
  ): Promise<IteratorResult<VideoFrameResult>> {
    const t0 = Date.now();
    for (;;) {
      try {
        return await deps.onGpu(() => iterator.next());
      } catch (e) {
        if (
          e instanceof HttpError && e.status === 503 && Date.now() - t0 < limits.requestTimeoutMs
        ) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        throw refusal(e);
      }
    }
  }

  async function removeObject(s: VideoSession, raw: string): Promise<Response> {
    const objId = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(objId)) {
      throw new HttpError(
        400,
        `object id must be a non-negative integer, got "${raw.slice(0, 40)}"`,
      );
    }
    if (!s.objIds.includes(objId)) {
      throw new HttpError(
        404,
        `no object ${objId} in this video (objects: ${s.objIds.join(", ")})`,
      );
    }
    await sessions.exclusive(s, "remove", () =>
      deps.onGpu(async () => {
        try {
          await s.tracker.removeObject(objId);
        } catch (e) {
          throw refusal(e);
        }
      }));
    s.objIds = s.objIds.filter((o) => o !== objId);
    return jsonResponse({ removed: objId, obj_ids: s.objIds });
  }

  function methodNotAllowed(allow: string[]): never {
    throw new HttpError(405, `method not allowed; use ${allow.join(" or ")}`, {
      allow: allow.join(", "),
    });
  }

  return {
    async route(req, method, path, lease) {
      if (path === "/api/videos" || path === "/api/videos/") {
        if (method !== "POST") methodNotAllowed(["POST"]);
        return await create(req, lease);
      }
      const m = SESSION_PATH.exec(path);
      if (!m) return path.startsWith("/api/videos/") ? notFound(path) : null;
      requireVideo();
      const s = sessions.get(m[1]);
      switch (m[2]) {
        case undefined:
          if (method === "GET") return jsonResponse({ id: s.id, ...describe(s) });
          if (method === "DELETE") {
            sessions.delete(s);
            return jsonResponse({ deleted: s.id });
          }
          return methodNotAllowed(["GET", "DELETE"]);
        case "frames":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await addFrame(req, s, lease);
        case "prompts":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await prompt(req, s, lease);
        case "propagate":
          if (method !== "POST") methodNotAllowed(["POST"]);
          return await propagate(req, s, lease);
        default:
          if (method !== "DELETE") methodNotAllowed(["DELETE"]);
          return await removeObject(s, m[3]);
      }
    },
    stats: () => ({ sessions: sessions.size, max_sessions: limits.maxVideoSessions }),
    close: () => sessions.close(),
  };
}

function notFound(path: string): never {
  throw new HttpError(404, `no route ${path.slice(0, 200)}`);
}

/** The model's refusal of a call the checks here let through, as a 400 (or 501). */
function refusal(e: unknown): unknown {
  if (e instanceof HttpError) return e;
  // The predictor's own argument checks (frame index, prompts) throw plain Errors / RangeErrors.
  if (e instanceof RangeError) return new HttpError(400, e.message);
  if (
    e instanceof Error &&
    /^(addFrame|addNewPointsOrBox|propagateInVideo|removeObject)[ :]/.test(e.message)
  ) {
    return new HttpError(400, e.message);
  }
  // A prompt on a frame whose pixels a history_frames session no longer holds.
  if (e instanceof Error && /^frame \d+ was dropped/.test(e.message)) {
    return new HttpError(410, e.message);
  }
  return e;
}

/** Every object's mask on one frame, as the API's JSON. */
export function frameJson(r: VideoFrameResult, width: number, height: number, out: OutputFormat) {
  return {
    frame_idx: r.frameIdx,
    width,
    height,
    format: out.format,
    objects: r.objIds.map((objId, k) => {
      const mask = maskOf(r.maskLogits[k]);
      let area = 0;
      for (let i = 0; i < mask.length; i++) area += mask[i];
      const score = r.objScores[k];
      return {
        obj_id: objId,
        // null: the object has no output on this frame (not prompted or tracked there yet).
        object_score: Number.isFinite(score) ? score : null,
        area,
        ...(out.format === "polygon"
          ? maskPolygonFields(mask, width, height, out.polygonTolerance)
          : { rle: cocoEncodeRle(maskToRle(mask, height, width)) }),
      };
    }),
  };
}

function dimension(raw: string | null, name: string): number {
  const n = Number(raw);
  if (raw === null || !/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < 1) {
    throw new HttpError(400, `${name} must be a positive integer (raw RGBA frames need both)`);
  }
  return n;
}

function frameIndex(value: unknown, name: string, frames: number, isIndex: boolean): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new HttpError(400, `${name} must be a non-negative integer`);
  }
  if (isIndex && value >= frames) {
    throw new HttpError(400, `${name} ${value} is not a frame of this video (0..${frames - 1})`);
  }
  return value;
}

function pointList(value: unknown): [number, number][] {
  if (!Array.isArray(value)) throw new HttpError(400, "points must be an array of [x, y]");
  return value.map((p, i) => {
    if (
      !Array.isArray(p) || p.length !== 2 ||
      !p.every((v) => typeof v === "number" && Number.isFinite(v))
    ) {
      throw new HttpError(400, `points[${i}] must be [x, y], two finite numbers`);
    }
    return [p[0], p[1]] as [number, number];
  });
}
