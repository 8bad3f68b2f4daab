/**
 * `deno task segment`: prompt SAM on one photo from the command line.
 *
 *   deno task segment <image> --point x,y[,label]... [--box x0,y0,x1,y1]... [--multimask]
 *     [--model sam-tiny|vit_b|<path>] [--overwrite] --out <dir>
 *
 * Points and one box make one prompt; several boxes (and no points) make one prompt per box,
 * decoded in one batch. Writes mask_<prompt>_<k>.png per mask (0/255), overlay.png (the photo
 * with the masks tinted and the prompts drawn) and result.json (scores, sizes, files); with
 * --format polygon also each mask's polygons in result.json and <image>.txt (each prompt's best
 * mask as a YOLO-seg line). Argument
 * mistakes exit with status 2 before any model is loaded where they can be known; runtime
 * failures exit 1 with a one-line message.
 */
import "../gpu/gpu_flag.ts"; // --gpu auto|deno|dawn, taken out of Deno.args first
import { getPreprocessShape } from "../encoder/preprocess.ts";
import { encodeMaskPng, encodeOverlayPng, ImageDecodeError, readImageFile } from "../image.ts";
import { SamModel, SamPredictor } from "../predictor.ts";
import type { Prompt } from "../types.ts";
import { GPU_FLAGS, parseFlags, requireInputFile, runCli, UsageError, wantsHelp } from "./args.ts";
import { chooseModel, MODEL_HELP, warnIfMeaningless } from "./model.ts";
import { checkOutputDir, checkOutputFiles, writeOutput } from "./output.ts";
import { drawPrompts } from "./prompt_marks.ts";
import { maskPolygonFields, parseFormatFlags, yoloSegText } from "../util/polygon_export.ts";

export { UsageError };

export const USAGE = `Usage: deno task segment <image> [prompts] --out <dir> [options]

Prompts SAM on one photo (PNG or JPEG). Writes mask_<prompt>_<k>.png per mask (0/255),
overlay.png (the photo with each prompt's best mask tinted and the prompts drawn: foreground
points green, background points red, boxes yellow) and result.json (scores, sizes, files).

Prompts (in pixels of the original image):
  --point x,y[,label]   a click; label 1 = foreground (default), 0 = background; repeatable.
                        A negative coordinate needs '=': --point=-5,10
  --box x0,y0,x1,y1     a box; repeatable (several boxes without points: one mask each)
  --multimask           three candidate masks per prompt instead of one

Options:
  --out DIR             where the files go; created if missing (required)
  --model NAME|PATH     ${MODEL_HELP}
  --overwrite           replace files of an earlier run in DIR (default: refuse)
  --format polygon      also each mask's polygons in result.json, and <image>.txt (YOLO-seg)
  --polygon-tolerance F Douglas-Peucker tolerance of the polygons, pixels (0.5; 0: exact)
  --precision f32|f16   storage of weights and GEMM activations (f32; or
                        $WGSAM_PRECISION); f16 needs the adapter's shader-f16
  -h, --help            this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, missing image,
prompt outside the photo, output that exists, model that does not load).
`;

export interface SegmentArgs {
  image: string;
  out: string;
  /** Undefined: the installed model, else sam-tiny (chooseModel). */
  model?: string;
  multimask: boolean;
  overwrite: boolean;
  points: [number, number][];
  labels: number[];
  boxes: [number, number, number, number][];
  /** --format polygon: polygons in result.json and a YOLO-seg <image>.txt. */
  polygon: boolean;
  polygonTolerance: number;
}

function numbers(flag: string, text: string, count: number[]): number[] {
  const parts = text.split(",");
  if (!count.includes(parts.length)) {
    throw new UsageError(`${flag} ${text}: expected ${count.join(" or ")} comma-separated numbers`);
  }
  return parts.map((p) => {
    const v = Number(p.trim());
    if (p.trim() === "" || !Number.isFinite(v)) {
      throw new UsageError(`${flag} ${text}: '${p}' is not a finite number`);
    }
    return v;
  });
}

/** Parses the command line; throws UsageError with a message naming the flag. */
export function parseSegmentArgs(argv: readonly string[]): SegmentArgs {
  const { values, positionals } = parseFlags(argv, {
    point: { type: "string", multiple: true },
    box: { type: "string", multiple: true },
    multimask: { type: "boolean" },
    model: { type: "string" },
    out: { type: "string" },
    overwrite: { type: "boolean" },
    format: { type: "string" },
    "polygon-tolerance": { type: "string" },
    ...GPU_FLAGS,
  });
  let format;
  try {
    format = parseFormatFlags(values.format, values["polygon-tolerance"], ["png", "polygon"]);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const args: SegmentArgs = {
    image: "",
    out: values.out ?? "",
    model: values.model,
    multimask: values.multimask ?? false,
    overwrite: values.overwrite ?? false,
    points: [],
    labels: [],
    boxes: [],
    polygon: format.format === "polygon",
    polygonTolerance: format.polygonTolerance,
  };
  for (const text of values.point ?? []) {
    const [x, y, label = 1] = numbers("--point", text, [2, 3]);
    if (label !== 0 && label !== 1) {
      throw new UsageError(`--point label must be 1 (foreground) or 0 (background)`);
    }
    args.points.push([x, y]);
    args.labels.push(label);
  }
  for (const text of values.box ?? []) {
    const [x0, y0, x1, y1] = numbers("--box", text, [4]);
    if (x1 < x0 || y1 < y0) throw new UsageError(`--box needs x0 <= x1 and y0 <= y1`);
    args.boxes.push([x0, y0, x1, y1]);
  }
  if (positionals.length > 1) {
    throw new UsageError(`one image only (got ${positionals.map((p) => `'${p}'`).join(", ")})`);
  }
  args.image = positionals[0] ?? "";
  if (!args.image) throw new UsageError("no image given");
  if (!args.out) throw new UsageError("--out <dir> is required");
  if (args.model === "") throw new UsageError("--model needs a value");
  if (args.points.length === 0 && args.boxes.length === 0) {
    throw new UsageError("give at least one --point or --box");
  }
  if (args.points.length > 0 && args.boxes.length > 1) {
    throw new UsageError("points combine with one box only; several boxes make one prompt each");
  }
  return args;
}

/** The prompts the arguments describe. */
export function promptsOf(args: SegmentArgs): Prompt[] {
  if (args.points.length === 0) {
    return args.boxes.map((box) => ({ box, multimask: args.multimask }));
  }
  return [{
    points: args.points,
    labels: args.labels,
    box: args.boxes[0],
    multimask: args.multimask,
  }];
}

/**
 * Refuses points and box corners more than a quarter of the photo's longer side outside it
 * (the server's rule): such a click is a typo (pixels of another photo, x and y swapped), and
 * the model would silently answer it with a meaningless mask.
 */
export function checkPromptsInImage(args: SegmentArgs, width: number, height: number): void {
  const margin = 0.25 * Math.max(width, height);
  const check = (what: string, x: number, y: number) => {
    if (x < -margin || x > width + margin || y < -margin || y > height + margin) {
      throw new UsageError(
        `${what} (${x}, ${y}) is outside the ${width}x${height} image ` +
          `(at most ${margin} pixels beyond its edges)`,
      );
    }
  };
  args.points.forEach(([x, y]) => check("--point", x, y));
  args.boxes.forEach(([x0, y0, x1, y1]) => {
    check("--box corner", x0, y0);
    check("--box corner", x1, y1);
  });
}

/** The files runSegment writes into --out, known before any work. */
export function outputFiles(args: SegmentArgs): string[] {
  const perPrompt = args.multimask ? 3 : 1;
  const files = ["overlay.png", "result.json"];
  if (args.polygon) files.push(yoloFileName(args.image));
  promptsOf(args).forEach((_, p) => {
    for (let k = 0; k < perPrompt; k++) files.push(`mask_${p}_${k}.png`);
  });
  return files;
}

/** The YOLO-seg label file of an image: its base name with .txt. */
function yoloFileName(image: string): string {
  return image.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "") + ".txt";
}

export async function runSegment(
  args: SegmentArgs,
  log: (line: string) => void = console.error,
): Promise<void> {
  // Everything the arguments alone decide is checked first (exit 2, nothing written).
  await requireInputFile(args.image, "image");
  const out = (name: string) => `${args.out.replace(/\/+$/, "")}/${name}`;
  await checkOutputDir(args.out, "--out");
  await checkOutputFiles(outputFiles(args).map(out), args.overwrite);
  let image;
  try {
    image = await readImageFile(args.image);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new UsageError(`${args.image}: ${e.message}`);
    throw e;
  }
  checkPromptsInImage(args, image.width, image.height);
  let model: SamModel;
  const modelName = chooseModel(args.model, log);
  try {
    model = await SamModel.load(modelName);
  } catch (e) {
    // What serve does with a --model it cannot load: an argument mistake, in one line.
    throw new UsageError(`--model ${modelName}: ${(e as Error).message}`);
  }
  warnIfMeaningless(model.name, log);
  try {
    // An image too thin for the model's input (its short side would be 0 px) is refused here,
    // with the model's input size, before the output folder or any GPU work.
    getPreprocessShape(image.height, image.width, model.imgSize);
  } catch (e) {
    model.dispose();
    if (e instanceof RangeError) throw new UsageError(`${args.image}: ${e.message}`);
    throw e;
  }
  // Only once the model loads, so that a missing model leaves no empty output folder behind.
  await Deno.mkdir(args.out, { recursive: true });
  if (args.overwrite) {
    // An earlier run's masks go (e.g. three candidates where this run makes one), so the
    // folder matches the new result.json; links were refused above, and removing one removes
    // the link, not its target.
    for (const e of [...Deno.readDirSync(args.out)]) {
      if (/^mask_\d+_\d+\.png$/.test(e.name)) await Deno.remove(out(e.name));
    }
  }
  const predictor = new SamPredictor(model);
  try {
    const info = await predictor.setImage(image, { waitForGpu: true }); // encode_ms: wall
    const predictions = await predictor.predictBatch(promptsOf(args));
    const files: { prompt: number; mask: number; file: string; score: number }[] = [];
    const polygons: ReturnType<typeof maskPolygonFields>[] = [];
    const allMasks: Uint8Array[] = [];
    for (const [p, prediction] of predictions.entries()) {
      for (const [k, mask] of prediction.masks.entries()) {
        const file = `mask_${p}_${k}.png`;
        await writeOutput(
          out(file),
          await encodeMaskPng(mask, info.width, info.height),
          args.overwrite,
        );
        files.push({ prompt: p, mask: k, file, score: prediction.scores[k] });
        if (args.polygon) {
          polygons.push(maskPolygonFields(mask, info.width, info.height, args.polygonTolerance));
        }
        allMasks.push(mask);
      }
    }
    // The overlay shows each prompt's best mask, so candidates don't hide one another, and the
    // prompts themselves on top.
    const best = predictions.map((p) => p.masks[p.scores.indexOf(Math.max(...p.scores))]);
    const overlay = await encodeOverlayPng(
      image,
      best,
      (rgba, width, height) => drawPrompts(rgba, width, height, args),
    );
    await writeOutput(out("overlay.png"), overlay, args.overwrite);
    const result = {
      image: args.image,
      model: model.name,
      adapter: model.adapter,
      width: info.width,
      height: info.height,
      encode_ms: Math.round(info.encodeMs),
      prompts: promptsOf(args),
      masks: args.polygon ? files.map((f, i) => ({ ...f, ...polygons[i] })) : files,
      // SAM 2.1: each prompt's object-score logit (> 0: an object is there).
      ...(model.family === "sam2"
        ? { object_scores: predictions.map((p) => p.objectScore ?? null) }
        : {}),
    };
    if (args.polygon) {
      const objects = best.map((mask) => ({ mask, classIndex: 0 }));
      await writeOutput(
        out(yoloFileName(args.image)),
        yoloSegText(objects, info.width, info.height, args.polygonTolerance),
        args.overwrite,
      );
    }
    await writeOutput(out("result.json"), JSON.stringify(result, null, 2) + "\n", args.overwrite);
    console.log(`wrote ${allMasks.length} mask(s), overlay.png and result.json to ${args.out}`);
  } finally {
    predictor.dispose();
    model.dispose();
  }
}

if (import.meta.main) {
  await runCli("segment", async () => {
    if (wantsHelp(Deno.args)) return console.log(USAGE);
    await runSegment(parseSegmentArgs(Deno.args));
  });
}
