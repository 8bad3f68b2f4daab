/**
 * A Label Studio ML backend under the path prefix /ls, answering as label-studio-ml-backend's
 * server does (label_studio_ml/api.py) for its Segment Anything example
 * (label_studio_ml/examples/segment_anything_model/model.py): Label Studio's ML backend URL is
 * http://<wgsam host>:<port>/ls.
 *
 *   GET  /ls, /ls/health   {"status": "UP", "model_class": ...}
 *   POST /ls/setup         {"model_version": ...}
 *   POST /ls/predict       {"results": [{result: [...], model_version, score}]}
 *   POST /ls/webhook       training events: nothing to train, acknowledged
 *   GET  /ls/metrics       {}
 *
 * Predict: the interaction context (smart KeyPointLabels clicks, RectangleLabels boxes, in
 * percent of the image) becomes one SAM prompt with one mask, answered as `brushlabels` in
 * Label Studio's brush RLE (src/util/brush_rle.ts) when the config has BrushLabels, and as
 * `polygonlabels` (points in percent) when it has PolygonLabels. Without a context (a
 * pre-annotation request) the answer is empty, as in the example.
 */
import type { Prompt } from "../types.ts";
import { maskToBrushRle } from "../util/brush_rle.ts";
import { readJsonObject } from "./body.ts";
import { HttpError, jsonResponse } from "./errors.ts";
import {
  type AllowedHost,
  FETCH_TIMEOUT_MS,
  fetchTaskImage,
  type LabelStudioConnection,
  labelStudioFromEnv,
  type Resolver,
} from "./ls_image.ts";
import { largestPolygon } from "../util/polygon_export.ts";
import {
  base64JsonLimit,
  checkPromptInImage,
  type ExtraRoutes,
  requireJson,
  type RouteContext,
} from "./route_context.ts";

export const LS_PREFIX = "/ls";
/**
 * Task images fetched at once: each may hold --max-upload-mb and up to a minute outside the
 * GPU queue, so past this many /ls/predict answers 503 with Retry-After.
 */
export const LS_MAX_FETCHES = 4;
const MODEL_CLASS = "WgsamSamBackend";

/** One tag of a label config: its name (lower case) and attributes. */
interface ConfigTag {
  tag: string;
  attrs: Record<string, string>;
}

/** The opening tags of a label config (XML), in order; enough to find names and links. */
export function configTags(config: string): ConfigTag[] {
  const tags: ConfigTag[] = [];
  const text = config.replace(/<!--[\s\S]*?-->/g, "");
  for (
    const m of text.matchAll(
      /<([A-Za-z][\w-]*)((?:\s+[^\s=>/]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*\/?>/g,
    )
  ) {
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([^\s=>/]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
      attrs[a[1]] = a[2] ?? a[3];
    }
    tags.push({ tag: m[1].toLowerCase(), attrs });
  }
  return tags;
}

interface OutputTags {
  /** The Image tag: its name and the task data field of its value ("$image" -> "image"). */
  image: { name: string; field: string };
  brush: string | null;
  polygon: string | null;
}

function outputTags(config: string): OutputTags {
  const tags = configTags(config);
  const imageTag = tags.find((t) => t.tag === "image" && t.attrs.name && t.attrs.value);
  if (!imageTag) {
    throw new HttpError(400, 'label config has no <Image name="..." value="$..."> tag');
  }
  const name = imageTag.attrs.name;
  const field = imageTag.attrs.value.replace(/^\$/, "");
  const control = (kind: string) =>
    tags.find((t) =>
      t.tag === kind && t.attrs.name &&
      (t.attrs.toName ?? t.attrs.toname ?? "").split(",").map((s) => s.trim()).includes(name)
    )?.attrs.name ?? null;
  const brush = control("brushlabels");
  const polygon = control("polygonlabels");
  if (!brush && !polygon) {
    throw new HttpError(
      400,
      `label config has no BrushLabels or PolygonLabels for the image "${name}": ` +
        "wgsam answers with brush masks or polygons",
    );
  }
  return { image: { name, field }, brush, polygon };
}

interface ContextPrompt {
  prompt: Prompt;
  label: string | null;
}

function num(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new HttpError(400, `context: ${what} must be a finite number`);
  }
  return value;
}

/**
 * The SAM prompt of the interaction context, as the example reads it: every keypoint a point
 * (foreground when `is_positive`), the last rectangle the box, coordinates from percent of the
 * image's size; the label is the last one named.
 */
export function contextPrompt(
  results: unknown[],
  width: number,
  height: number,
  maxPoints: number,
): ContextPrompt {
  const points: [number, number][] = [];
  const labels: number[] = [];
  let box: [number, number, number, number] | undefined;
  let label: string | null = null;
  for (const [i, r] of results.entries()) {
    if (typeof r !== "object" || r === null) {
      throw new HttpError(400, `context.result[${i}] is not an object`);
    }
    const item = r as Record<string, unknown>;
    const type = String(item.type ?? "").toLowerCase();
    const value = item.value as Record<string, unknown> | undefined;
    if (typeof value !== "object" || value === null) {
      throw new HttpError(400, `context.result[${i}] has no value`);
    }
    const named = value[type];
    if (Array.isArray(named) && typeof named[0] === "string") label = named[0];
    if (type === "keypointlabels") {
      points.push([
        num(value.x, `result[${i}].value.x`) * width / 100,
        num(value.y, `result[${i}].value.y`) * height / 100,
      ]);
      labels.push(item.is_positive ? 1 : 0);
    } else if (type === "rectanglelabels") {
      const x = num(value.x, `result[${i}].value.x`) * width / 100;
      const y = num(value.y, `result[${i}].value.y`) * height / 100;
      const w = num(value.width, `result[${i}].value.width`) * width / 100;
      const h = num(value.height, `result[${i}].value.height`) * height / 100;
      box = [Math.min(x, x + w), Math.min(y, y + h), Math.max(x, x + w), Math.max(y, y + h)];
    }
  }
  if (points.length > maxPoints) {
    throw new HttpError(400, `context: ${points.length} keypoints; at most ${maxPoints}`);
  }
  if (!points.length && !box) {
    throw new HttpError(400, "context: no keypointlabels or rectanglelabels result to prompt with");
  }
  return {
    prompt: {
      multimask: false,
      ...(points.length ? { points, labels } : {}),
      ...(box ? { box } : {}),
    },
    label,
  };
}

function shortId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 10);
}

export interface LabelStudioOptions {
  /** LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY (default: read from the environment). */
  connection?: LabelStudioConnection;
  /** Hosts trusted like LABEL_STUDIO_URL's even at private addresses (--ls-allow-host). */
  allowHosts?: readonly AllowedHost[];
  /** Name resolution for the address checks (tests); Deno.resolveDns by default. */
  resolve?: Resolver;
  /** Which addresses count as public (tests widen it); isPublicAddress by default. */
  isPublic?: (address: string) => boolean;
}

export function labelStudioRoutes(ctx: RouteContext, opts: LabelStudioOptions = {}): ExtraRoutes {
  const { engine, limits } = ctx;
  const connection = opts.connection ?? labelStudioFromEnv();
  const policy = {
    allowHosts: opts.allowHosts ?? [],
    resolve: opts.resolve,
    isPublic: opts.isPublic,
  };
  const modelVersion = `wgsam-${engine.info.model}`;
  // The URL and the key are one pair: the environment's when either variable is set, else
  // what Label Studio's setup call said for the project ({hostname, access_token}: its own
  // address and the project creator's token). Never a mix: the operator's key must not go to
  // an address that an unauthenticated setup call named.
  const fromEnv = !!(connection.url || connection.apiKey);
  const learned = new Map<string, LabelStudioConnection>();
  const projectId = (project: unknown) => String(project ?? "").split(".", 1)[0];
  function connectionFor(project: unknown): LabelStudioConnection {
    if (fromEnv) return { ...connection, source: "env" };
    return learned.get(projectId(project)) ?? { url: "", apiKey: "", source: "setup" };
  }
  let fetching = 0;

  async function predict(req: Request): Promise<Response> {
    // A task may carry its image inline as a data: URL.
    const body = await readJsonObject(req, base64JsonLimit(limits));
    const tasks = body.tasks;
    if (!Array.isArray(tasks) || tasks.length === 0) {
      throw new HttpError(400, "tasks must be a non-empty array of Label Studio tasks");
    }
    const params = (body.params ?? {}) as Record<string, unknown>;
    const context = params.context as { result?: unknown } | undefined | null;
    if (!context || !Array.isArray(context.result) || context.result.length === 0) {
      // No interaction yet (pre-annotation of a whole project): nothing to segment.
      return jsonResponse({ results: [] });
    }
    if (typeof body.label_config !== "string") {
      throw new HttpError(400, "label_config must be the project's labeling config (XML)");
    }
    const tags = outputTags(body.label_config);
    const task = tasks[0] as Record<string, unknown>;
    const data = (task?.data ?? {}) as Record<string, unknown>;
    if (typeof data !== "object" || Array.isArray(data)) {
      throw new HttpError(400, "the task's data must be an object");
    }
    if (!Object.hasOwn(data, tags.image.field)) {
      throw new HttpError(
        400,
        `the task has no data field "${tags.image.field}" (the Image tag's value)`,
      );
    }
    const value = data[tags.image.field];
    // data: URLs are decoded in place; only fetches hold a slot.
    const fetches = !(typeof value === "string" && /^data:/i.test(value));
    if (fetches && fetching >= LS_MAX_FETCHES) {
      throw new HttpError(
        503,
        `${LS_MAX_FETCHES} task images are being fetched already; retry shortly`,
        { "retry-after": "5" },
      );
    }
    if (fetches) fetching++;
    let bytes: Uint8Array;
    try {
      bytes = await fetchTaskImage(value, connectionFor(body.project), {
        maxBytes: limits.maxUploadBytes,
        taskId: task.id,
        timeoutMs: Math.min(FETCH_TIMEOUT_MS, limits.requestTimeoutMs),
        policy,
      });
    } finally {
      if (fetches) fetching--;
    }
    const stored = await ctx.ingestImage(bytes);
    const { width, height } = stored.image;
    const { prompt, label } = contextPrompt(context.result, width, height, limits.maxPoints);
    const corners = prompt.box ? [prompt.box.slice(0, 2), prompt.box.slice(2)] : [];
    checkPromptInImage([...(prompt.points ?? []), ...corners], width, height, limits, "context");
    const pred = await ctx.onImage(stored, () =>
      engine.predict(prompt).catch((e) => {
        if (e instanceof RangeError) throw new HttpError(400, e.message);
        throw e;
      }));
    const mask = pred.masks[0];
    const score = pred.scores[0];
    const common = {
      to_name: tags.image.name,
      original_width: width,
      original_height: height,
      image_rotation: 0,
      score,
      readonly: false,
    };
    const labelList = label ? [label] : [];
    const result: Record<string, unknown>[] = [];
    if (tags.brush) {
      result.push({
        id: shortId(),
        from_name: tags.brush,
        ...common,
        type: "brushlabels",
        value: { format: "rle", rle: maskToBrushRle(mask, width, height), brushlabels: labelList },
      });
    }
    if (tags.polygon) {
      const ring = largestPolygon(mask, width, height);
      const points: [number, number][] = [];
      for (let i = 0; i < ring.length; i += 2) {
        points.push([ring[i] * 100 / width, ring[i + 1] * 100 / height]);
      }
      if (points.length >= 3) {
        result.push({
          id: shortId(),
          from_name: tags.polygon,
          ...common,
          type: "polygonlabels",
          value: { points, closed: true, polygonlabels: labelList },
        });
      }
    }
    return jsonResponse({ results: [{ result, model_version: modelVersion, score }] });
  }

  return async (req, method, path) => {
    if (path !== LS_PREFIX && !path.startsWith(LS_PREFIX + "/")) return null;
    const sub = path.slice(LS_PREFIX.length).replace(/\/+$/, "") || "/";
    const only = (m: string) => {
      if (method !== m) throw new HttpError(405, `method not allowed; use ${m}`, { allow: m });
    };
    switch (sub) {
      case "/":
      case "/health":
        only("GET");
        return jsonResponse({ status: "UP", model_class: MODEL_CLASS, model: engine.info.model });
      case "/setup": {
        only("POST");
        requireJson(req);
        const body = await readJsonObject(req, limits.maxJsonBytes);
        if (typeof body.schema === "string" && body.schema.trim()) outputTags(body.schema);
        // Unauthenticated: learned only when the operator configured no connection at all.
        if (
          !fromEnv && typeof body.hostname === "string" && typeof body.access_token === "string"
        ) {
          if (learned.size >= 1000) learned.delete(learned.keys().next().value!);
          learned.set(projectId(body.project), {
            url: body.hostname.trim(),
            apiKey: body.access_token.trim(),
            source: "setup",
          });
        }
        return jsonResponse({ model_version: modelVersion });
      }
      case "/predict":
        only("POST");
        requireJson(req);
        return await predict(req);
      case "/webhook":
        only("POST");
        requireJson(req);
        await readJsonObject(req, limits.maxJsonBytes);
        return jsonResponse({ status: "Unknown event" });
      case "/metrics":
        only("GET");
        return jsonResponse({});
    }
    throw new HttpError(404, `no Label Studio ML backend route ${path.slice(0, 200)}`);
  };
}
