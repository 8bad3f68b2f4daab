/**
 * `deno task track`: follow clicked objects through a video with SAM 2.1 (SamVideoPredictor).
 *
 *   deno task track (--frames DIR | --video FILE) --prompts prompts.json --out DIR
 *     [--format png|rle] [--max-frames N] [--model NAME|PATH] [--overwrite]
 *
 * Frames come from a folder (PNG/JPEG, in natural file-name order) or from a video file,
 * decoded by Debian's `ffmpeg` run as a subprocess. All prompts are added first (each on its
 * frame), then the objects are tracked forward from the earliest prompted frame, and backward
 * from it when that is not the first frame, so every frame gets every object's mask.
 */
import "../gpu/gpu_flag.ts"; // --gpu auto|deno|dawn, taken out of Deno.args first
import { cocoEncodeRle, maskToRle } from "../amg/rle.ts";
import { encodeMaskPng, ImageDecodeError, readImageFile } from "../image.ts";
import { checkpointFamily } from "../sam2/load.ts";
import { maskPolygonFields } from "../util/polygon_export.ts";
import {
  maskOf,
  NotSam2Error,
  type VideoFrameResult,
  type VideoPrompt,
  type VideoTracker,
  videoTrackerFactory,
} from "../video/tracker.ts";
import { weightsDirFrom } from "../weights/registry.ts";
import {
  GPU_FLAGS,
  numberFlag,
  parseFlags,
  requireInputFile,
  runCli,
  UsageError,
  wantsHelp,
} from "./args.ts";
import { warnIfMeaningless } from "./model.ts";
import { checkOutputDir, checkOutputFiles, writeOutput } from "./output.ts";

export const USAGE =
  `Usage: deno task track (--frames DIR | --video FILE) --prompts FILE --out DIR [options]

Tracks objects through a video with a SAM 2.1 model: the prompts (clicks or boxes on any
frames) are added first, then every object is followed forward from the earliest prompted
frame, and backward from it when that is not the first frame. Writes track.json (per frame,
per object: object score, area, and the mask as COCO RLE or a PNG file name) and, with
--format png, frame_<f>_obj_<id>.png per frame and object (0/255, the frame's size).

Input (one of):
  --frames DIR          a folder of frames (.png, .jpg, .jpeg), in natural file-name order
  --video FILE          a video file, decoded to frames by ffmpeg (a subprocess; Debian:
                        apt-get install ffmpeg)

Options:
  --prompts FILE        the prompts, JSON (required):
                          {"prompts": [
                            {"frame_idx": 0, "obj_id": 1, "points": [[x, y]], "labels": [1]},
                            {"frame_idx": 3, "obj_id": 2, "box": [x0, y0, x1, y1]}]}
                        points in the frame's pixels, labels 1 foreground / 0 background;
                        points and a box may go together; a bare array is taken too
  --out DIR             where the files go; created if missing (required)
  --format png|rle      png: a mask PNG per frame and object (default); rle: COCO RLE in
                        track.json; polygon: polygons in track.json
  --polygon-tolerance F Douglas-Peucker tolerance of --format polygon, pixels (0.5)
  --max-frames N        read at most the first N frames
  --model NAME|PATH     a SAM 2.1 model: sam2.1_hiera_tiny (_small, _base_plus, _large), a
                        .pt / .safetensors path, or sam2-tiny (bundled, random weights);
                        default: the first SAM 2.1 model in the weights folder, else sam2-tiny
  --overwrite           replace files of an earlier run in DIR (default: refuse)
  --gpu auto|deno|dawn  the WebGPU provider
  -h, --help            this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, missing input,
bad prompts, not a SAM 2.1 model, output that exists). ffmpeg missing or failing is a
runtime failure.
`;

export type TrackFormat = "png" | "rle" | "polygon";

export interface TrackArgs {
  frames?: string;
  video?: string;
  prompts: string;
  out: string;
  format: TrackFormat;
  polygonTolerance: number;
  maxFrames?: number;
  model?: string;
  overwrite: boolean;
}

export function parseTrackArgs(argv: readonly string[]): TrackArgs {
  const { values, positionals } = parseFlags(argv, {
    frames: { type: "string" },
    video: { type: "string" },
    prompts: { type: "string" },
    out: { type: "string" },
    format: { type: "string" },
    "polygon-tolerance": { type: "string" },
    "max-frames": { type: "string" },
    model: { type: "string" },
    overwrite: { type: "boolean" },
    ...GPU_FLAGS,
  });
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument '${positionals[0]}' (inputs go with --frames or --video)`,
    );
  }
  if ((values.frames === undefined) === (values.video === undefined)) {
    throw new UsageError("give one input: --frames DIR or --video FILE");
  }
  const format = values.format ?? "png";
  if (format !== "png" && format !== "rle" && format !== "polygon") {
    throw new UsageError(`--format must be png, rle or polygon, got '${format}'`);
  }
  if (values["polygon-tolerance"] !== undefined && format !== "polygon") {
    throw new UsageError("--polygon-tolerance goes with --format polygon");
  }
  if (!values.prompts) throw new UsageError("--prompts FILE is required");
  if (!values.out) throw new UsageError("--out DIR is required");
  if (values.model === "") throw new UsageError("--model needs a value");
  return {
    frames: values.frames,
    video: values.video,
    prompts: values.prompts,
    out: values.out,
    format,
    polygonTolerance: values["polygon-tolerance"] === undefined
      ? 0.5
      : numberFlag("polygon-tolerance", values["polygon-tolerance"], { min: 0, max: 100 }),
    maxFrames: values["max-frames"] === undefined
      ? undefined
      : numberFlag("max-frames", values["max-frames"], { min: 1, integer: true }),
    model: values.model,
    overwrite: values.overwrite ?? false,
  };
}

/**
 * The prompts of a prompts.json text, checked (an argument mistake names the prompt). Frame
 * indices and coordinates are checked against the video once its frames are known.
 */
export function parsePrompts(text: string, file: string): VideoPrompt[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--prompts ${file}: not JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(value) ? value : (value && typeof value === "object" &&
      Array.isArray((value as { prompts?: unknown }).prompts))
    ? (value as { prompts: unknown[] }).prompts
    : null;
  if (!list) {
    throw new UsageError(`--prompts ${file}: expected {"prompts": [...]} or an array of prompts`);
  }
  if (list.length === 0) throw new UsageError(`--prompts ${file}: no prompts`);
  const known = new Set(["frame_idx", "obj_id", "points", "labels", "box"]);
  return list.map((p, i) => {
    const where = `--prompts ${file}: prompt ${i}`;
    if (!p || typeof p !== "object" || Array.isArray(p)) {
      throw new UsageError(`${where}: not an object`);
    }
    const o = p as Record<string, unknown>;
    const extra = Object.keys(o).find((k) => !known.has(k));
    if (extra) throw new UsageError(`${where}: unknown field "${extra}"`);
    const int = (v: unknown, name: string) => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
        throw new UsageError(`${where}: ${name} must be a non-negative integer`);
      }
      return v;
    };
    const frameIdx = int(o.frame_idx, "frame_idx");
    const objId = int(o.obj_id, "obj_id");
    const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
    let points: [number, number][] | undefined;
    let labels: number[] | undefined;
    if ((o.points === undefined) !== (o.labels === undefined)) {
      throw new UsageError(`${where}: points and labels go together`);
    }
    if (o.points !== undefined) {
      if (
        !Array.isArray(o.points) ||
        !o.points.every((q) => Array.isArray(q) && q.length === 2 && q.every(finite))
      ) {
        throw new UsageError(`${where}: points must be [[x, y], ...]`);
      }
      if (
        !Array.isArray(o.labels) || o.labels.length !== o.points.length ||
        !o.labels.every((l) => l === 0 || l === 1)
      ) {
        throw new UsageError(`${where}: labels must be one 0 or 1 per point`);
      }
      points = o.points as [number, number][];
      labels = o.labels as number[];
    }
    let box: [number, number, number, number] | undefined;
    if (o.box !== undefined) {
      if (!Array.isArray(o.box) || o.box.length !== 4 || !o.box.every(finite)) {
        throw new UsageError(`${where}: box must be [x0, y0, x1, y1]`);
      }
      box = o.box as [number, number, number, number];
      if (box[2] < box[0] || box[3] < box[1]) {
        throw new UsageError(`${where}: box needs x0 <= x1 and y0 <= y1`);
      }
    }
    if (!points?.length && !box) {
      throw new UsageError(`${where}: give points (with labels) or a box`);
    }
    return { frameIdx, objId, points, labels, box };
  });
}

const FRAME_FILE = /\.(png|jpe?g)$/i;

/** The frame files of a folder, in natural name order (frame_2 before frame_10). */
export async function frameFiles(dir: string): Promise<string[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UsageError(`--frames: no such folder: ${dir}`);
    throw e;
  }
  if (!info.isDirectory) throw new UsageError(`--frames: ${dir} is not a folder`);
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && FRAME_FILE.test(e.name)) names.push(e.name);
  }
  if (names.length === 0) throw new UsageError(`--frames: no .png or .jpg files in ${dir}`);
  names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return names.map((n) => `${dir.replace(/\/+$/, "")}/${n}`);
}

/**
 * Decodes a video file into PNG frames in `tmp` with ffmpeg (a subprocess); returns them in
 * order. A missing ffmpeg or a file it cannot read is a runtime failure with its message.
 */
export async function videoToFrames(
  video: string,
  tmp: string,
  maxFrames?: number,
): Promise<string[]> {
  const args = ["-hide_banner", "-loglevel", "error", "-nostdin", "-i", video];
  if (maxFrames !== undefined) args.push("-frames:v", String(maxFrames));
  // Every frame as decoded (no frame-rate conversion), lossless PNG.
  args.push("-fps_mode", "passthrough", "-f", "image2", `${tmp}/%06d.png`);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("ffmpeg", { args, stdout: "null", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        "--video needs ffmpeg, which is not installed (Debian: apt-get install ffmpeg); " +
          "or extract the frames yourself and pass --frames DIR",
      );
    }
    throw e;
  }
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join("; ");
    throw new Error(`ffmpeg could not read ${video}: ${why || `exit ${out.code}`}`);
  }
  const files = await frameFiles(tmp).catch(() => []);
  if (files.length === 0) throw new Error(`ffmpeg found no video frames in ${video}`);
  return files;
}

/** The model to load: the given one, else the first SAM 2.1 checkpoint installed, else sam2-tiny. */
async function chooseVideoModel(
  given: string | undefined,
  log: (line: string) => void,
): Promise<string> {
  if (given) return given;
  const dir = weightsDirFrom();
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch {
    // no weights folder
  }
  for (const name of names.filter((n) => /\.(safetensors|pt)$/.test(n))) {
    const path = `${dir.replace(/\/$/, "")}/${name}`;
    if (await checkpointFamily(path).catch(() => null) === "sam2") {
      log(`model: ${path} (found in ${dir}/)`);
      return path;
    }
  }
  log(
    `No --model given and no SAM 2.1 model in ${dir}/. Get one with: deno task weights ` +
      "sam2.1_hiera_tiny\nFalling back to the bundled sam2-tiny test model.",
  );
  return "sam2-tiny";
}

function pngName(frame: number, objId: number): string {
  return `frame_${String(frame).padStart(5, "0")}_obj_${objId}.png`;
}

interface FrameRecord {
  frame_idx: number;
  file: string;
  objects: Record<string, unknown>[];
}

export async function runTrack(
  args: TrackArgs,
  log: (line: string) => void = console.error,
): Promise<void> {
  // What the arguments alone decide first (exit 2, nothing written).
  if (args.video !== undefined) await requireInputFile(args.video, "--video");
  const sourceFrames = args.frames !== undefined ? await frameFiles(args.frames) : null;
  await requireInputFile(args.prompts, "--prompts");
  const prompts = parsePrompts(await Deno.readTextFile(args.prompts), args.prompts);
  await checkOutputDir(args.out, "--out");
  const out = (name: string) => `${args.out.replace(/\/+$/, "")}/${name}`;
  await checkOutputFiles([out("track.json")], args.overwrite);

  const modelName = await chooseVideoModel(args.model, log);
  const factory = videoTrackerFactory(modelName);
  let tracker: VideoTracker;
  try {
    tracker = await factory.create();
  } catch (e) {
    // As segment does with a --model it cannot load: an argument mistake, in one line.
    const why = e instanceof NotSam2Error ? e.message : (e as Error).message;
    throw new UsageError(`--model ${modelName}: ${why}`);
  }
  warnIfMeaningless(factory.model, log);
  const tmp = args.video !== undefined ? await Deno.makeTempDir({ prefix: "wgsam-track-" }) : null;
  try {
    let files = sourceFrames ?? await videoToFrames(args.video!, tmp!, args.maxFrames);
    if (args.maxFrames !== undefined) files = files.slice(0, args.maxFrames);
    let size: [number, number] | null = null;
    for (const file of files) {
      let image;
      try {
        image = await readImageFile(file);
      } catch (e) {
        if (e instanceof ImageDecodeError) throw new UsageError(`${file}: ${e.message}`);
        throw e;
      }
      if (size && (image.width !== size[1] || image.height !== size[0])) {
        throw new UsageError(
          `${file} is ${image.width}x${image.height}; the first frame is ${size[1]}x${size[0]}`,
        );
      }
      size ??= [image.height, image.width];
      tracker.addFrame(image);
    }
    const [H, W] = size!;
    const margin = 0.25 * Math.max(W, H);
    prompts.forEach((p, i) => {
      if (p.frameIdx >= files.length) {
        throw new UsageError(
          `--prompts: prompt ${i} is on frame ${p.frameIdx}, the video has ${files.length} frames`,
        );
      }
      const corners = [
        ...(p.points ?? []),
        ...(p.box ? [[p.box[0], p.box[1]], [p.box[2], p.box[3]]] : []),
      ];
      for (const [x, y] of corners) {
        if (x < -margin || x > W + margin || y < -margin || y > H + margin) {
          throw new UsageError(
            `--prompts: prompt ${i}: (${x}, ${y}) is outside the ${W}x${H} frames`,
          );
        }
      }
    });
    const objIds = [...new Set(prompts.map((p) => p.objId))];
    if (args.format === "png") {
      const planned = files.flatMap((_, f) => objIds.map((id) => out(pngName(f, id))));
      await checkOutputFiles(planned, args.overwrite);
    }
    // Only now: a bad input leaves no empty output folder behind.
    await Deno.mkdir(args.out, { recursive: true });
    log(`track: ${files.length} frames of ${W}x${H}, ${prompts.length} prompt(s)`);
    for (const p of prompts) await tracker.addNewPointsOrBox(p);

    const results = new Map<number, VideoFrameResult>();
    const start = Math.min(...prompts.map((p) => p.frameIdx));
    const t0 = performance.now();
    for await (const r of tracker.propagateInVideo({ startFrameIdx: start })) {
      results.set(r.frameIdx, r);
    }
    if (start > 0) {
      for await (const r of tracker.propagateInVideo({ startFrameIdx: start, reverse: true })) {
        results.set(r.frameIdx, r);
      }
    }
    const ms = performance.now() - t0;
    const frames: FrameRecord[] = [];
    const pngs: string[] = [];
    for (let f = 0; f < files.length; f++) {
      const r = results.get(f);
      const record: FrameRecord = {
        frame_idx: f,
        file: files[f].replace(/^.*\//, ""),
        objects: [],
      };
      if (r) {
        for (let k = 0; k < r.objIds.length; k++) {
          const mask = maskOf(r.maskLogits[k]);
          let area = 0;
          for (let i = 0; i < mask.length; i++) area += mask[i];
          const score = r.objScores[k];
          const obj: Record<string, unknown> = {
            obj_id: r.objIds[k],
            object_score: Number.isFinite(score) ? score : null,
            area,
          };
          if (args.format === "png") {
            const name = pngName(f, r.objIds[k]);
            await writeOutput(out(name), await encodeMaskPng(mask, W, H), args.overwrite);
            pngs.push(name);
            obj.png = name;
          } else if (args.format === "rle") {
            obj.rle = cocoEncodeRle(maskToRle(mask, H, W));
          } else {
            Object.assign(obj, maskPolygonFields(mask, W, H, args.polygonTolerance));
          }
          record.objects.push(obj);
        }
      }
      frames.push(record);
    }
    const result = {
      source: args.video ?? args.frames,
      model: factory.model,
      width: W,
      height: H,
      format: args.format === "rle" ? "coco_rle" : args.format,
      track_ms_per_frame: Math.round(ms / Math.max(1, results.size)),
      prompts: prompts.map((p) => ({
        frame_idx: p.frameIdx,
        obj_id: p.objId,
        ...(p.points ? { points: p.points, labels: p.labels } : {}),
        ...(p.box ? { box: p.box } : {}),
      })),
      frames,
    };
    await writeOutput(out("track.json"), JSON.stringify(result) + "\n", args.overwrite);
    console.log(
      `wrote track.json${pngs.length ? ` and ${pngs.length} mask PNGs` : ""} for ${files.length} ` +
        `frames to ${args.out}`,
    );
  } finally {
    tracker.dispose();
    factory.close();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await runCli("track", async () => {
    if (wantsHelp(Deno.args)) return console.log(USAGE);
    await runTrack(parseTrackArgs(Deno.args));
  });
}
