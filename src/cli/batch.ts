/**
 * `deno task batch submit|status`: batch jobs on Redis, run by `deno task worker`.
 *
 *   deno task batch submit --redis URL --input DIR|list.txt --output DIR [--model M]
 *       [AMG flags as deno task amg]  |  [--detector YOLO.onnx --classes a,b ...]
 *   deno task batch status --redis URL [--batch ID]
 *
 * submit checks everything before enqueuing one job per image (flags as `deno task amg` checks
 * them, the input files exist, no two images share a stem) and prints the batch id. Paths are
 * stored absolute: the workers must see the same paths (a shared folder).
 */
import { resolve } from "node:path";
import { parseAmgArgs } from "./amg.ts";
import { numberFlag, parseFlags, runCli, UsageError, wantsHelp } from "./args.ts";
import { chooseModel, MODEL_HELP } from "./model.ts";
import { AutomaticMaskGenerator } from "../amg/automatic_mask_generator.ts";
import { batchIds, type BatchStatus, batchStatus, submitBatch } from "../batch/jobs.ts";
import type { BatchSpec } from "../batch/runner.ts";
import { COCO_CLASSES, resolveClassIds, UnknownClassError } from "../detect/mod.ts";
import { checkRedisUrl, openRedis, redactUrl, type Redis } from "../server/redis.ts";

export const USAGE = `usage:
  deno task batch submit --redis URL --input DIR|list.txt --output DIR [options]
  deno task batch status --redis URL [--batch ID]

submit: one job per image of DIR (its files) or of list.txt (one path a line; # comments).
  --model NAME|PATH    SAM model for every image, as the workers name it: ${MODEL_HELP}
  "Segment everything" (default), with the AMG flags of deno task amg:
    --points-per-side N --points-per-batch N --pred-iou-thresh F --stability-score-thresh F
    --stability-score-offset F --box-nms-thresh F --crop-n-layers N --crop-nms-thresh F
    --crop-overlap-ratio F --crop-n-points-downscale-factor N --min-mask-region-area N
  or detect then segment:
    --detector YOLO.onnx [--classes a,b] [--score 0.35] [--iou 0.5] [--max-det 300]
    [--provider auto|webgpu|wasm]
  Workers write OUTPUT/<image stem>.json, and OUTPUT/annotations.json (COCO) after the last.
status: done, failed and pending images per batch, rate and ETA; the last line reads
  "pending N" (0 when nothing is left). --redis may also come from WGSAM_REDIS.`;

const AMG_FLAGS = [
  "points-per-side",
  "points-per-batch",
  "pred-iou-thresh",
  "stability-score-thresh",
  "stability-score-offset",
  "box-nms-thresh",
  "crop-n-layers",
  "crop-nms-thresh",
  "crop-overlap-ratio",
  "crop-n-points-downscale-factor",
  "min-mask-region-area",
];
const DETECT_FLAGS = ["classes", "score", "iou", "max-det", "provider"];
const IMAGE_EXT = /\.(png|jpe?g)$/i;

type Values = Record<string, string | boolean | undefined>;

function parse(argv: readonly string[]): { command: string; values: Values } {
  const [command, ...rest] = argv;
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    // Under `batch status` the submit flags are refused below with a message of their own.
    redis: { type: "string" },
    input: { type: "string" },
    output: { type: "string" },
    model: { type: "string" },
    detector: { type: "string" },
    batch: { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const f of [...AMG_FLAGS, ...DETECT_FLAGS]) options[f] = { type: "string" };
  if (command === undefined || wantsHelp(argv)) return { command: "help", values: {} };
  const { values, positionals } = parseFlags(rest, options);
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  return { command, values: values as Values };
}

function number(values: Values, flag: string, fallback: number, lo: number, hi: number): number {
  const text = values[flag] as string | undefined;
  if (text === undefined) return fallback;
  return numberFlag(flag, text, { min: lo, max: hi });
}

/** The batch's settings from the flags; throws UsageError. */
export function batchSpec(
  values: Values,
  log: (line: string) => void = (line) => console.error(line),
): BatchSpec {
  // The same default as every other command (the first installed model, else sam-tiny): the
  // workers load it by that name from their own weights folder.
  const model = chooseModel(values.model as string | undefined, log);
  if (values.detector !== undefined) {
    const amg = AMG_FLAGS.filter((f) => values[f] !== undefined);
    if (amg.length) {
      throw new UsageError(`--${amg[0]} is an AMG flag; it does not go with --detector`);
    }
    const provider = (values.provider as string | undefined) ?? "auto";
    if (!["auto", "webgpu", "wasm"].includes(provider)) {
      throw new UsageError(`--provider must be auto, webgpu or wasm, got '${provider}'`);
    }
    const classes = ((values.classes as string | undefined) ?? "").split(",")
      .map((c) => c.trim()).filter(Boolean);
    // The detector's class list is COCO's (as deno task detect-segment): checked here, not on
    // every image by the workers.
    try {
      resolveClassIds(classes, COCO_CLASSES);
    } catch (e) {
      if (e instanceof UnknownClassError) throw new UsageError(e.message);
      throw e;
    }
    const maxDetections = number(values, "max-det", 300, 1, 1e6);
    if (!Number.isInteger(maxDetections)) throw new UsageError("--max-det must be an integer");
    return {
      model,
      mode: "detect",
      detector: resolve(values.detector as string),
      classes,
      score: number(values, "score", 0.35, 0, 1),
      iou: number(values, "iou", 0.5, 0, 1),
      maxDetections,
      provider: provider as "auto" | "webgpu" | "wasm",
    };
  }
  const det = DETECT_FLAGS.filter((f) => values[f] !== undefined);
  if (det.length) throw new UsageError(`--${det[0]} needs --detector`);
  // The same checks and messages as deno task amg.
  const argv = ["--input", "-", "--output", "-"];
  for (const f of AMG_FLAGS) {
    if (values[f] !== undefined) argv.push(`--${f}`, values[f] as string);
  }
  let amg: Record<string, number>;
  try {
    amg = parseAmgArgs(argv).amg;
    AutomaticMaskGenerator.fromOfficialParams({ ...amg, output_mode: "coco_rle" });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { model, mode: "amg", amg };
}

function stemOf(path: string): string {
  const file = path.split("/").pop() ?? path;
  const dot = file.lastIndexOf(".");
  return dot > 0 ? file.slice(0, dot) : file;
}

/** The images of --input (a folder's image files, or a list file's lines), absolute. */
export async function listImages(input: string): Promise<{ stem: string; file: string }[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(input);
  } catch {
    throw new UsageError(`--input: no such file or folder: ${input}`);
  }
  let files: string[] = [];
  if (info.isDirectory) {
    for await (const e of Deno.readDir(input)) {
      if (e.isFile && IMAGE_EXT.test(e.name)) files.push(resolve(input, e.name));
    }
    if (!files.length) throw new UsageError(`--input: no .png/.jpg files in ${input}`);
  } else {
    const base = resolve(input, "..");
    files = (await Deno.readTextFile(input)).split("\n").map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#")).map((l) => resolve(base, l));
    if (!files.length) throw new UsageError(`--input: ${input} lists no image`);
    for (const f of files) {
      try {
        if (!(await Deno.stat(f)).isFile) throw new Error();
      } catch {
        throw new UsageError(`--input: ${input} lists ${f}, which is not a file`);
      }
    }
  }
  files.sort();
  const seen = new Map<string, string>();
  for (const file of files) {
    const stem = stemOf(file);
    const other = seen.get(stem);
    if (other) {
      throw new UsageError(`${other} and ${file} would both write ${stem}.json; rename one`);
    }
    seen.set(stem, file);
  }
  return [...seen].map(([stem, file]) => ({ stem, file }));
}

function duration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}min`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** The status lines of one batch. */
export function describeBatch(s: BatchStatus, now = Date.now()): string[] {
  const finished = s.done + s.failed;
  const elapsed = s.startedMs ? (now - s.startedMs) / 1000 : 0;
  const rate = elapsed > 0 ? finished / elapsed : 0;
  const eta = s.pending === 0 ? 0 : rate > 0 ? s.pending / rate : Infinity;
  const what = s.spec.mode === "amg" ? "segment everything" : `detect (${s.spec.detector})`;
  const lines = [
    `batch ${s.id}: ${what} with ${s.spec.model} -> ${s.output}`,
    `  total ${s.total}  done ${s.done}  failed ${s.failed}  pending ${s.pending}  ` +
    `rate ${rate.toFixed(2)}/s  eta ${duration(eta)}` +
    (s.mergedMs ? `  merged ${s.output}/annotations.json` : ""),
  ];
  for (const f of s.failures) lines.push(`  failed ${f.stem}: ${f.error}`);
  return lines;
}

async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const { redis, ready } = openRedis(url, { log: () => {}, commandTimeoutMs: 10_000 });
  try {
    if (!await ready) throw new Error(`cannot reach ${redactUrl(url)}`);
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

export async function main(
  argv: readonly string[],
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Promise<number> {
  const { command, values } = parse(argv);
  if (command === "help" || values.help) {
    console.log(USAGE);
    return 0;
  }
  if (command !== "submit" && command !== "status") {
    throw new UsageError(`unknown command '${command}' (submit or status)`);
  }
  const redisUrl = (values.redis as string | undefined) ?? env("WGSAM_REDIS") ?? "";
  if (!redisUrl) throw new UsageError("--redis URL is required (or WGSAM_REDIS)");
  try {
    checkRedisUrl(redisUrl);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (command === "submit") {
    if (!values.input) throw new UsageError("--input DIR|list.txt is required");
    if (!values.output) throw new UsageError("--output DIR is required");
    if (values.batch !== undefined) throw new UsageError("--batch is a status flag");
    const spec = batchSpec(values);
    if (spec.mode === "detect") {
      try {
        await Deno.stat(spec.detector);
      } catch {
        throw new UsageError(`--detector: no such file: ${spec.detector}`);
      }
    }
    const images = await listImages(values.input as string);
    const output = resolve(values.output as string);
    await Deno.mkdir(output, { recursive: true });
    const id = await withRedis(redisUrl, (redis) => submitBatch(redis, spec, output, images));
    console.log(`batch ${id}: ${images.length} images queued; results in ${output}`);
    console.log(
      `watch it with: deno task batch status --redis ${redactUrl(redisUrl)} --batch ${id}`,
    );
    return 0;
  }
  const extra = Object.keys(values).filter((k) => k !== "redis" && k !== "batch");
  if (extra.length) throw new UsageError(`--${extra[0]} is a submit flag`);
  const lines = await withRedis(redisUrl, async (redis) => {
    const wanted = values.batch as string | undefined;
    const ids = wanted ? [wanted] : await batchIds(redis);
    const out: string[] = [];
    let pending = 0;
    for (const id of ids) {
      const s = await batchStatus(redis, id);
      if (!s) {
        if (wanted) throw new Error(`no batch ${wanted}`);
        continue;
      }
      out.push(...describeBatch(s));
      pending += s.pending;
    }
    if (!ids.length) out.push("no batches");
    out.push(`pending ${pending}`);
    return out;
  });
  console.log(lines.join("\n"));
  return 0;
}

if (import.meta.main) await runCli("batch", () => main(Deno.args));
