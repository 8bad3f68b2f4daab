/**
 * CVAT's serverless functions, served the way CVAT's lambda manager reaches them
 * (cvat/apps/lambda_manager/views.py, LambdaGateway): as a nuclio dashboard, so CVAT's
 * NUCLIO host and port can point at wgsam.
 *
 *   GET  /api/functions                  every function, an object keyed by name (nuclio's form)
 *   GET  /api/functions/:name            one function
 *   POST /api/function_invocations       invoke the function named by x-nuclio-function-name
 *   POST /                               invoke directly, as the function's own HTTP port is
 *                                        invoked (CVAT's INVOKE_METHOD "direct")
 *
 * Functions:
 * - The SAM interactor. CVAT's SAM plugin (cvat-ui/plugins/sam) intercepts the function named
 *   `pth-facebookresearch-sam-vit-h` and decodes masks in the browser with the ViT-H decoder
 *   ONNX; the function only returns the image embedding: `{blob}`, base64 of float32
 *   [1, 256, 64, 64] in C order (serverless/pytorch/facebookresearch/sam/nuclio/main.py).
 *   wgsam uses that name only when its model is ViT-H: another model's embedding fed to the
 *   ViT-H decoder gives garbage masks (cvat #8158). With another model the interactor is named
 *   `wgsam-sam-<model>` and answers like CVAT's other interactors (HRNet) and what the plugin
 *   hands the UI: `{points: [[x, y], ...], mask: rows of 0/255, bounds}`, decoded here.
 * - `wgsam-segment-everything`: a detector ("run on a whole task", cvat #6217) that segments
 *   everything, and `wgsam-detect-segment` when the server has a detector (its boxes, then
 *   SAM). Both answer CVAT's detector shape: `[{label, type: "mask", points, mask, confidence}]`
 *   with `mask` the mask cropped to its box, row by row, then [xtl, ytl, xbr, ybr] (inclusive),
 *   and `points` the polygon of its largest part (CVAT's "convert masks to polygons").
 */
import type { Prompt } from "../types.ts";
import { AutomaticMaskGenerator } from "../amg/mod.ts";
import { largestPolygon, segmentationMask } from "../util/polygon_export.ts";
import {
  COCO_91_IDS,
  detectAndSegment,
  isCocoClassList,
  UnknownClassError,
} from "../detect/mod.ts";
import { readJsonObject } from "./body.ts";
import type { EngineInfo } from "./engine.ts";
import { HttpError, jsonResponse } from "./errors.ts";
import {
  base64JsonLimit,
  checkPromptInImage,
  type ExtraRoutes,
  requireJson,
  type RouteContext,
} from "./route_context.ts";
import { parseEverythingRequest } from "./validate.ts";

/** The one function name CVAT's SAM plugin decodes (cvat-ui/plugins/sam/src/ts/index.tsx). */
export const CVAT_SAM_FUNCTION = "pth-facebookresearch-sam-vit-h";
export const CVAT_EVERYTHING_FUNCTION = "wgsam-segment-everything";
export const CVAT_DETECT_FUNCTION = "wgsam-detect-segment";

/** True for SAM ViT-H (width 1280, 32 blocks, 1024 px): the embedding CVAT's plugin decodes. */
export function isVitH(info: EngineInfo): boolean {
  const arch = info.arch as Record<string, unknown> | null;
  return arch?.encoder_width === 1280 && arch?.encoder_depth === 32 && arch?.img_size === 1024;
}

/** A name nuclio accepts: lower case letters, digits and "-". */
function functionName(model: string): string {
  const slug = model.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return `wgsam-sam-${slug || "model"}`;
}

/** The inclusive bounding box [xtl, ytl, xbr, ybr] of a mask's set pixels; null when empty. */
function maskBounds(
  mask: Uint8Array,
  width: number,
  height: number,
): [number, number, number, number] | null {
  let xtl = width, ytl = height, xbr = -1, ybr = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      if (x < xtl) xtl = x;
      if (x > xbr) xbr = x;
      if (y < ytl) ytl = y;
      if (y > ybr) ybr = y;
    }
  }
  return xbr < 0 ? null : [xtl, ytl, xbr, ybr];
}

/**
 * A mask in CVAT's detector form: the rows of its bounding box (inclusive) flattened, 0/1,
 * then [xtl, ytl, xbr, ybr]; null for an empty mask.
 */
export function cvatMask(mask: Uint8Array, width: number, height: number): number[] | null {
  const box = maskBounds(mask, width, height);
  if (!box) return null;
  const [xtl, ytl, xbr, ybr] = box;
  const out: number[] = [];
  for (let y = ytl; y <= ybr; y++) {
    for (let x = xtl; x <= xbr; x++) out.push(mask[y * width + x] ? 1 : 0);
  }
  out.push(xtl, ytl, xbr, ybr);
  return out;
}

/** An answer already serialized as JSON (sent as it is). */
class JsonText {
  constructor(readonly text: string) {}
}

/**
 * The interactor's answer `{points, mask, bounds}` as JSON text. CVAT's UI takes `mask` as
 * the full frame, rows of 0/255 (what HRNet's function and CVAT's SAM plugin hand it), so it
 * cannot be cropped; it is written straight to text instead of as `height` arrays of `width`
 * JS numbers: rows outside the bounds share one string, and no per-pixel number is boxed.
 * About 2 bytes per background pixel and 4 per mask pixel (24 MB for a 12 MP frame).
 */
export function interactorAnswerJson(
  polygon: readonly (readonly [number, number])[],
  mask: Uint8Array,
  width: number,
  height: number,
): string {
  const bounds = maskBounds(mask, width, height);
  const zeros = (n: number) => "0,".repeat(n);
  const emptyRow = `[${zeros(width).slice(0, -1)}]`;
  const rows: string[] = [];
  for (let y = 0; y < height; y++) {
    if (!bounds || y < bounds[1] || y > bounds[3]) {
      rows.push(emptyRow);
      continue;
    }
    let row = "[" + zeros(bounds[0]);
    for (let x = bounds[0]; x <= bounds[2]; x++) row += mask[y * width + x] ? "255," : "0,";
    row += zeros(width - 1 - bounds[2]);
    rows.push(row.slice(0, -1) + "]"); // the last element's comma
  }
  return `{"points":${JSON.stringify(polygon)},"mask":[${rows.join(",")}],"bounds":${
    JSON.stringify(bounds ?? [0, 0, 0, 0])
  }}`;
}

/**
 * Detector answers in CVAT's "mask" shape, one per non-empty mask: the cropped mask and the
 * polygon of its largest part, with the label and the confidence as a string.
 */
async function cvatShapes(
  masks: readonly Uint8Array[],
  labels: readonly string[],
  scores: readonly number[],
  width: number,
  height: number,
) {
  const shapes = [];
  for (let i = 0; i < masks.length; i++) {
    // Contours of a large mask take a while: other requests get the event loop in between.
    if (i > 0) await new Promise((r) => setTimeout(r, 0));
    const cropped = cvatMask(masks[i], width, height);
    if (!cropped) continue;
    shapes.push({
      confidence: String(scores[i]),
      label: labels[i],
      points: largestPolygon(masks[i], width, height),
      mask: cropped,
      type: "mask",
    });
  }
  return shapes;
}

interface CvatFunction {
  name: string;
  kind: "interactor" | "detector";
  /** The display name (annotations.name). */
  title: string;
  description: string;
  /** Detector labels: CVAT reads annotations.spec, a JSON string. */
  labels?: { id: number; name: string; type: "mask" }[];
  invoke(body: Record<string, unknown>): Promise<unknown>;
}

function bad(message: string): HttpError {
  return new HttpError(400, message);
}

function decodeBase64Image(value: unknown): Uint8Array {
  if (typeof value !== "string" || value.length === 0) {
    throw bad('"image" must be the frame as a base64 string');
  }
  try {
    return Uint8Array.fromBase64(value.replace(/\s+/g, ""));
  } catch {
    throw bad('"image" is not valid base64');
  }
}

function parsePoints(value: unknown, what: string, maxPoints: number): [number, number][] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad(`${what} must be an array of [x, y]`);
  if (value.length > maxPoints) throw bad(`${what}: ${value.length} points; at most ${maxPoints}`);
  return value.map((p, i) => {
    if (
      !Array.isArray(p) || p.length !== 2 || typeof p[0] !== "number" ||
      typeof p[1] !== "number" || !Number.isFinite(p[0]) || !Number.isFinite(p[1])
    ) {
      throw bad(`${what}[${i}] must be [x, y] with finite numbers`);
    }
    return [p[0], p[1]];
  });
}

function parseThreshold(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const v = typeof value === "string" ? Number(value) : value;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw bad("threshold must be in [0, 1]");
  return v;
}

export function cvatRoutes(ctx: RouteContext): ExtraRoutes {
  const { engine, detector, limits, log } = ctx;
  const vitH = isVitH(engine.info);
  const interactorName = vitH ? CVAT_SAM_FUNCTION : functionName(engine.info.model);
  const whyNotPlugin = vitH
    ? ""
    : `CVAT's SAM plugin decodes masks in the browser with the ViT-H ` +
      `decoder and only for the function named ${CVAT_SAM_FUNCTION}; this server runs ` +
      `${engine.info.model}, whose embedding that decoder would turn into garbage (cvat #8158), ` +
      `so this function is ${interactorName} and decodes masks on the server instead ` +
      `(start wgsam with --model vit_h for the plugin's in-browser decoding).`;
  if (!vitH) log(`CVAT: ${whyNotPlugin}`);

  const interactor: CvatFunction = {
    name: interactorName,
    kind: "interactor",
    title: vitH ? "Segment Anything (wgsam)" : `Segment Anything ${engine.info.model} (wgsam)`,
    description: vitH
      ? "Interactive object segmentation with Segment Anything ViT-H on WebGPU (wgsam): " +
        "returns the image embedding for CVAT's SAM plugin"
      : `Interactive object segmentation with Segment Anything on WebGPU (wgsam). ${whyNotPlugin}`,
    async invoke(body) {
      const bytes = decodeBase64Image(body.image);
      const pos = parsePoints(body.pos_points, "pos_points", limits.maxPoints);
      const neg = parsePoints(body.neg_points, "neg_points", limits.maxPoints);
      const bbox = parsePoints(body.obj_bbox, "obj_bbox", 2);
      if (bbox.length === 1) throw bad("obj_bbox must be two corners [[x1, y1], [x2, y2]]");
      parseThreshold(body.threshold);
      const stored = await ctx.ingestImage(bytes);
      if (vitH) {
        const emb = await ctx.onImage(stored, () => engine.getImageEmbedding());
        // Little-endian float32, as numpy's tobytes() on the x86 and ARM hosts CVAT runs on.
        const bytesOut = new Uint8Array(emb.data.buffer, emb.data.byteOffset, emb.data.byteLength);
        return { blob: bytesOut.toBase64() };
      }
      if (pos.length + neg.length === 0 && bbox.length === 0) {
        throw bad("give at least one point in pos_points or an obj_bbox");
      }
      const points = [...pos, ...neg];
      const { width, height } = stored.image;
      checkPromptInImage([...points, ...bbox], width, height, limits, "point");
      const prompt: Prompt = {
        multimask: bbox.length === 0 && points.length === 1,
        ...(points.length ? { points, labels: [...pos.map(() => 1), ...neg.map(() => 0)] } : {}),
        ...(bbox.length === 2
          ? {
            box: [
              Math.min(bbox[0][0], bbox[1][0]),
              Math.min(bbox[0][1], bbox[1][1]),
              Math.max(bbox[0][0], bbox[1][0]),
              Math.max(bbox[0][1], bbox[1][1]),
            ],
          }
          : {}),
      };
      const pred = await ctx.onImage(stored, () =>
        engine.predict(prompt).catch((e) => {
          if (e instanceof RangeError) throw bad(e.message);
          throw e;
        }));
      let best = 0;
      pred.scores.forEach((s, i) => {
        if (s > pred.scores[best]) best = i;
      });
      const mask = pred.masks[best];
      const ring = largestPolygon(mask, pred.width, pred.height);
      const polygon: [number, number][] = [];
      for (let i = 0; i < ring.length; i += 2) polygon.push([ring[i], ring[i + 1]]);
      // As CVAT's SAM plugin hands its decoded mask to the UI: the full-size mask and its
      // bounds [xtl, ytl, xbr, ybr] (inclusive), here with the polygon HRNet also returns.
      return new JsonText(interactorAnswerJson(polygon, mask, pred.width, pred.height));
    },
  };

  const everything: CvatFunction = {
    name: CVAT_EVERYTHING_FUNCTION,
    kind: "detector",
    title: "Segment everything (wgsam SAM)",
    description: `Every object's mask, Segment Anything's automatic mask generator with ` +
      `${engine.info.model} on WebGPU (wgsam); threshold = pred_iou_thresh`,
    labels: [{ id: 0, name: "object", type: "mask" }],
    async invoke(body) {
      const bytes = decodeBase64Image(body.image);
      const threshold = parseThreshold(body.threshold);
      const stored = await ctx.ingestImage(bytes);
      const { width, height } = stored.image;
      const params = parseEverythingRequest(
        threshold === undefined ? {} : { pred_iou_thresh: threshold },
        width,
        height,
        limits,
      );
      const generator = new AutomaticMaskGenerator(params);
      const records = await ctx.onGpu((signal) =>
        generator.generate({ width, height, data: stored.image.data }, ctx.maskSource(signal))
      );
      return await cvatShapes(
        records.map((r) => segmentationMask(r.segmentation)),
        records.map(() => "object"),
        records.map((r) => r.predicted_iou),
        width,
        height,
      );
    },
  };

  const functions: CvatFunction[] = [interactor, everything];
  if (detector) {
    const classNames = detector.detector.classNames;
    const coco = isCocoClassList(classNames);
    functions.push({
      name: CVAT_DETECT_FUNCTION,
      kind: "detector",
      title: "Detect, then segment (wgsam)",
      description: `Boxes of ${detector.info().path} segmented by Segment Anything ` +
        `${engine.info.model} on WebGPU (wgsam); threshold = the detector's score threshold`,
      labels: classNames.map((name, i) => ({
        id: coco ? COCO_91_IDS[i] : i,
        name,
        type: "mask" as const,
      })),
      async invoke(body) {
        const bytes = decodeBase64Image(body.image);
        const threshold = parseThreshold(body.threshold);
        const stored = await ctx.ingestImage(bytes);
        const result = await ctx.onGpu(() =>
          detectAndSegment(stored.image, detector.detector, engine, {
            ...(threshold === undefined ? {} : { scoreThreshold: threshold }),
            maxDetections: limits.maxBoxes,
          }).catch((e) => {
            if (e instanceof UnknownClassError || e instanceof RangeError) throw bad(e.message);
            throw e;
          })
        );
        return await cvatShapes(
          result.masks.slice(0, result.detections.length),
          result.detections.map((d) => d.className),
          result.detections.map((d) => d.score),
          result.width,
          result.height,
        );
      },
    });
  }
  const byName = new Map(functions.map((f) => [f.name, f]));

  /** The function as nuclio's dashboard describes it (the fields CVAT's LambdaFunction reads). */
  function describe(f: CvatFunction, port: number) {
    const annotations: Record<string, string> = {
      name: f.title,
      type: f.kind,
      framework: "wgsam",
      version: "2",
      spec: f.labels ? JSON.stringify(f.labels) : "",
    };
    if (f.kind === "interactor") {
      // CVAT reads these with int() and bool(): bool("false") is True, so false ones are absent.
      annotations.min_pos_points = "0";
      annotations.min_neg_points = "0";
      annotations.startswith_box_optional = "true";
      annotations.help_message = "Click a positive point (or draw a box first) on the object, " +
        "then negative points to remove what does not belong to it";
      annotations.animated_gif = "";
    }
    return {
      metadata: { name: f.name, namespace: "cvat", annotations },
      spec: { description: f.description, runtime: "wgsam", handler: "wgsam", eventTimeout: "30s" },
      status: { state: "ready", httpPort: port },
    };
  }

  /** The port CVAT reached us at (the Host header: the URL may be a local socket's). */
  function portOf(req: Request): number {
    const url = new URL(req.url);
    const host = req.headers.get("host");
    const port = host ? /:(\d+)$/.exec(host)?.[1] : url.port;
    return Number(port) || (url.protocol === "https:" ? 443 : 80);
  }

  function answer(out: unknown): Response {
    if (!(out instanceof JsonText)) return jsonResponse(out);
    return new Response(out.text, {
      headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
    });
  }

  async function invoke(req: Request, f: CvatFunction): Promise<Response> {
    const body = await readJsonObject(req, base64JsonLimit(limits));
    return answer(await f.invoke(body));
  }

  return async (req, method, path) => {
    if (path === "/api/functions" || path === "/api/functions/") {
      if (method !== "GET") {
        throw new HttpError(405, "method not allowed; use GET", { allow: "GET" });
      }
      const port = portOf(req);
      return jsonResponse(Object.fromEntries(functions.map((f) => [f.name, describe(f, port)])));
    }
    const one = /^\/api\/functions\/([^/]+)\/?$/.exec(path);
    if (one) {
      if (method !== "GET") {
        throw new HttpError(405, "method not allowed; use GET", { allow: "GET" });
      }
      let name: string;
      try {
        name = decodeURIComponent(one[1]);
      } catch {
        throw new HttpError(404, "malformed function name (a bad %-escape)");
      }
      const f = byName.get(name);
      if (!f) {
        throw new HttpError(
          404,
          `no function "${one[1].slice(0, 80)}"; wgsam serves ${[...byName.keys()].join(", ")}`,
        );
      }
      return jsonResponse(describe(f, portOf(req)));
    }
    if (path === "/api/function_invocations" || path === "/api/function_invocations/") {
      if (method !== "POST") {
        throw new HttpError(405, "method not allowed; use POST", { allow: "POST" });
      }
      requireJson(req);
      const name = req.headers.get("x-nuclio-function-name");
      if (!name) throw bad("name the function in the x-nuclio-function-name header");
      const f = byName.get(name);
      if (!f) {
        throw new HttpError(
          404,
          `no function "${name.slice(0, 80)}"; wgsam serves ${[...byName.keys()].join(", ")}`,
        );
      }
      return await invoke(req, f);
    }
    const json = (req.headers.get("content-type") ?? "").toLowerCase().includes("application/json");
    if (path === "/" && method === "POST" && json) {
      // CVAT's "direct" invocation posts its JSON payload to the function's port, path "/":
      // every function here shares one port, so the payload says which: an interactor's has
      // points. Anything else posted to / is the page's 405.
      const body = await readJsonObject(req, base64JsonLimit(limits));
      const f = ["pos_points", "neg_points", "obj_bbox"].some((k) => Object.hasOwn(body, k))
        ? interactor
        : byName.get(CVAT_DETECT_FUNCTION) ?? everything;
      return answer(await f.invoke(body));
    }
    return null;
  };
}
