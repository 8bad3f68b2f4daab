/**
 * `deno task amg`: automatic mask generation ("segment everything") on an image or a folder
 * of images, as the official scripts/amg.py.
 *
 *   deno task amg --input <image or folder> --output <dir> [--model sam-tiny|vit_b|<path>]
 *     [--convert-to-rle] [AMG settings with the official flag names]
 *
 * Output per image (base name without extension): a folder of one PNG per mask (0/255) and
 * metadata.csv (the official's file name and columns), or with --convert-to-rle one
 * <base>.json holding the records with COCO compressed RLE segmentations, or with
 * --format polygon <base>.json with COCO polygon segmentations and <base>.txt (YOLO-seg).
 *
 * Arguments, the input and the output paths are all checked before the model is loaded;
 * mistakes exit with status 2 and a message naming the flag.
 */
import "../gpu/gpu_flag.ts"; // --gpu auto|deno|dawn, taken out of Deno.args first
import {
  AutomaticMaskGenerator,
  describeFilterCounts,
  type MaskRecord,
} from "../amg/automatic_mask_generator.ts";
import type { AmgProgress } from "../amg/automatic_mask_generator.ts";
import { ModelMaskSource } from "../amg/model_source.ts";
import { SamModelBackend } from "../amg/sam_backend.ts";
import { SamModel } from "../predictor.ts";
import { encodeMaskPng, readImageFile } from "../image.ts";
import { GPU_FLAGS, numberFlag, parseFlags, runCli, UsageError, wantsHelp } from "./args.ts";
import { chooseModel, MODEL_HELP, warnIfMeaningless } from "./model.ts";
import { checkOutputFiles, writeOutput } from "./output.ts";
import {
  parseFormatFlags,
  segmentationMask,
  withPolygonSegmentation,
  yoloSegText,
} from "../util/polygon_export.ts";

export { UsageError };

const USAGE = `Usage: deno task amg --input <image or folder> --output <dir> [options]

Runs automatic mask generation on an input image or folder of images and writes the masks as
a folder of PNGs per image (with metadata.csv), or with --convert-to-rle as one COCO-style
JSON per image.

  --input PATH          an image (PNG or JPEG) or a folder of images (required)
  --output DIR          where the results go; created if missing (required)
  --model NAME|PATH     ${MODEL_HELP}
  --checkpoint PATH     the same as --model PATH (the official script's flag)
  --model-type TYPE     accepted for compatibility (default, vit_h, vit_l, vit_b); the
                        architecture is read from the checkpoint
  --convert-to-rle      write COCO RLEs in a single JSON per image instead of PNGs
  --format polygon      write COCO polygons in a single JSON per image, and a YOLO-seg .txt
  --polygon-tolerance F Douglas-Peucker tolerance of the polygons, pixels (0.5; 0: exact)
  --overwrite           replace results of an earlier run (default: refuse)
  --quiet               no progress display
  --precision f32|f16   storage of weights and GEMM activations (f32; or
                        $WGSAM_PRECISION); f16 needs the adapter's shader-f16
  -h, --help            this text

AMG settings (official defaults when omitted):
  --points-per-side N               points sampled along one side of the image (32)
  --points-per-batch N              points through the decoder at once (64)
  --pred-iou-thresh F               drop masks with predicted IoU not above this (0.88)
  --stability-score-thresh F        drop masks with stability score below this (0.95)
  --stability-score-offset F        logit offset of the stability score (1.0)
  --box-nms-thresh F                IoU above which duplicate masks are dropped (0.7)
  --crop-n-layers N                 crop layers to also run on (0)
  --crop-nms-thresh F               duplicate threshold across crops (0.7)
  --crop-overlap-ratio F            overlap of neighbouring crops (512/1500)
  --crop-n-points-downscale-factor N  points per side shrink by this per layer (1)
  --min-mask-region-area N          remove holes and islands smaller than this (0)

After each image it prints how many candidate masks each threshold dropped, so that an empty
result says which threshold to lower.

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, missing input,
output that exists, model that does not load).
`;

type Kind = "int" | "float";
/**
 * Official flag -> [official keyword argument, type, smallest allowed value, largest]. The
 * largest bounds are wgsam's: beyond them the point grid or one batch's logits no longer fit
 * in memory (the official has none and fails deep inside torch).
 */
const AMG_FLAGS: Record<string, [string, Kind, number, number?]> = {
  "points-per-side": ["points_per_side", "int", 1, 1024],
  "points-per-batch": ["points_per_batch", "int", 1, 1024],
  "pred-iou-thresh": ["pred_iou_thresh", "float", -Infinity],
  "stability-score-thresh": ["stability_score_thresh", "float", -Infinity],
  "stability-score-offset": ["stability_score_offset", "float", -Infinity],
  "box-nms-thresh": ["box_nms_thresh", "float", -Infinity],
  "crop-n-layers": ["crop_n_layers", "int", 0],
  "crop-nms-thresh": ["crop_nms_thresh", "float", -Infinity],
  // The official declares this one type=int, which makes its default 512/1500 unreachable
  // from the command line; a fraction is what it means.
  "crop-overlap-ratio": ["crop_overlap_ratio", "float", 0, 0.99],
  "crop-n-points-downscale-factor": ["crop_n_points_downscale_factor", "int", 1],
  "min-mask-region-area": ["min_mask_region_area", "int", 0],
};
const MODEL_TYPES = ["default", "vit_h", "vit_l", "vit_b"];

export interface AmgCliArgs {
  input: string;
  output: string;
  /** Undefined: the installed model, else sam-tiny (chooseModel). */
  model?: string;
  convertToRle: boolean;
  /** --format polygon: COCO polygons in <base>.json and a YOLO-seg <base>.txt. */
  polygon: boolean;
  polygonTolerance: number;
  quiet: boolean;
  overwrite: boolean;
  help: boolean;
  /** Official keyword arguments given on the command line (snake_case). */
  amg: Record<string, number>;
}

/** Parses the command line (`--flag value` or `--flag=value`); throws UsageError. */
export function parseAmgArgs(argv: readonly string[]): AmgCliArgs {
  const amgOptions = Object.fromEntries(
    Object.keys(AMG_FLAGS).map((flag) => [flag, { type: "string" as const }]),
  );
  const { values: flags, positionals } = parseFlags(argv, {
    input: { type: "string" },
    output: { type: "string" },
    model: { type: "string" },
    checkpoint: { type: "string" },
    "model-type": { type: "string" },
    "convert-to-rle": { type: "boolean" },
    format: { type: "string" },
    "polygon-tolerance": { type: "string" },
    quiet: { type: "boolean" },
    overwrite: { type: "boolean" },
    help: { type: "boolean", short: "h" },
    ...amgOptions,
    ...GPU_FLAGS,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const values = new Map(
    Object.entries(flags).filter(([, v]) => typeof v === "string") as [string, string][],
  );
  const help = flags.help === true;
  const out: AmgCliArgs = {
    input: values.get("input") ?? "",
    output: values.get("output") ?? "",
    model: values.get("model") ?? values.get("checkpoint"),
    convertToRle: flags["convert-to-rle"] === true,
    polygon: false,
    polygonTolerance: 0,
    quiet: flags.quiet === true,
    overwrite: flags.overwrite === true,
    help,
    amg: {},
  };
  if (help) return out;
  try {
    const f = parseFormatFlags(values.get("format"), values.get("polygon-tolerance"), [
      "png",
      "polygon",
    ]);
    out.polygon = f.format === "polygon";
    out.polygonTolerance = f.polygonTolerance;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (out.polygon && out.convertToRle) {
    throw new UsageError("give --convert-to-rle or --format polygon, not both");
  }
  if (!out.input) throw new UsageError("--input is required (an image or a folder of images)");
  if (!out.output) throw new UsageError("--output is required (a folder for the results)");
  if (out.model === "") throw new UsageError("--model needs a value");
  if (values.has("model") && values.has("checkpoint")) {
    throw new UsageError("give either --model or --checkpoint, not both");
  }
  const modelType = values.get("model-type");
  if (modelType !== undefined && !MODEL_TYPES.includes(modelType)) {
    throw new UsageError(
      `--model-type must be one of ${MODEL_TYPES.join(", ")}, got '${modelType}'`,
    );
  }
  for (const [flag, [kwarg, kind, min, max]] of Object.entries(AMG_FLAGS)) {
    const text = values.get(flag);
    if (text === undefined) continue;
    const v = numberFlag(flag, text, { min, max, integer: kind === "int" });
    out.amg[kwarg] = v;
  }
  return out;
}

/** Python's str() of a float, for metadata.csv as the official writes it. */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) {
    return x.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  }
  if (Number.isInteger(x)) return `${x}.0`;
  return String(x);
}

const CSV_HEADER = "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y," +
  "predicted_iou,stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h";

/** metadata.csv of the official write_masks_to_folder. */
export function metadataCsv(records: readonly MaskRecord[]): string {
  const rows = [CSV_HEADER];
  records.forEach((r, i) => {
    rows.push([
      String(i),
      String(r.area),
      ...r.bbox.map(String),
      ...r.point_coords[0].map(pyFloat),
      pyFloat(r.predicted_iou),
      pyFloat(r.stability_score),
      ...r.crop_box.map(String),
    ].join(","));
  });
  return rows.join("\n");
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function baseName(path: string): string {
  const file = path.replace(/\/+$/, "").split("/").pop() ?? path;
  const dot = file.lastIndexOf(".");
  return dot > 0 ? file.slice(0, dot) : file;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** The files to process: the input file, or the files (not folders) of the input folder. */
async function listTargets(input: string): Promise<string[]> {
  const info = await statOrNull(input);
  if (!info) throw new UsageError(`--input: no such file or folder: ${input}`);
  if (!info.isDirectory) return [input];
  const names: string[] = [];
  for await (const entry of Deno.readDir(input)) {
    if (!entry.isDirectory) names.push(entry.name);
  }
  if (names.length === 0) throw new UsageError(`--input: the folder ${input} holds no files`);
  return names.sort().map((n) => join(input, n));
}

interface ProgressDisplay {
  update(p: AmgProgress): void;
  done(): void;
}

function progressDisplay(label: string, quiet: boolean): ProgressDisplay {
  const enc = new TextEncoder();
  const tty = Deno.stderr.isTerminal();
  let lastCrop = -1;
  const write = (s: string) => Deno.stderr.writeSync(enc.encode(s));
  return {
    update(p) {
      if (quiet) return;
      const text = `${label}: crop ${
        p.crop + 1
      }/${p.crops}, batch ${p.batchesDone}/${p.batchesTotal}`;
      if (tty) write(`\r${text}\x1b[K`);
      else if (p.crop !== lastCrop || p.batchesDone === p.batchesTotal) write(`${text}\n`);
      lastCrop = p.crop;
    },
    done() {
      if (!quiet && tty) write("\n");
    },
  };
}

/**
 * Where one input's results go: a folder of PNGs, or with --convert-to-rle or --format polygon
 * one JSON file (and with polygons the .txt beside it).
 */
function destination(args: AmgCliArgs, target: string): string {
  return join(args.output, baseName(target) + (args.convertToRle || args.polygon ? ".json" : ""));
}

/** The YOLO-seg file beside a --format polygon JSON. */
function yoloDestination(args: AmgCliArgs, target: string): string {
  return join(args.output, baseName(target) + ".txt");
}

/**
 * Checks every image's destination before any work. The official refuses an existing mask
 * folder (os.makedirs(exist_ok=False)); here an existing result of either kind needs
 * --overwrite, and a symbolic link is never written through.
 */
async function checkDestinations(args: AmgCliArgs, targets: readonly string[]): Promise<void> {
  const seen = new Set<string>();
  for (const t of targets) {
    const dest = destination(args, t);
    if (seen.has(dest)) throw new UsageError(`two inputs would both write ${dest}`);
    seen.add(dest);
    if (args.convertToRle || args.polygon) {
      const files = args.polygon ? [dest, yoloDestination(args, t)] : [dest];
      await checkOutputFiles(files, args.overwrite);
      continue;
    }
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.lstat(dest);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!info) continue;
    if (info.isSymlink) {
      throw new UsageError(
        `--output: ${dest} is a symbolic link; wgsam does not write through links`,
      );
    }
    if (!info.isDirectory) throw new UsageError(`--output: ${dest} exists and is not a folder`);
    if (!args.overwrite) {
      throw new UsageError(
        `--output: ${dest} already exists; pass --overwrite to replace its files, or choose ` +
          `another --output`,
      );
    }
    const files = [...Deno.readDirSync(dest)].filter((e) =>
      e.name === "metadata.csv" || /^\d+\.png$/.test(e.name)
    );
    await checkOutputFiles(files.map((e) => join(dest, e.name)), true);
  }
}

/** The command; returns its exit status (UsageError: thrown, exit 2 by runCli). */
export async function main(argv: readonly string[]): Promise<number> {
  const args = parseAmgArgs(argv);
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  let generator: AutomaticMaskGenerator;
  try {
    generator = AutomaticMaskGenerator.fromOfficialParams({
      ...args.amg,
      output_mode: args.convertToRle || args.polygon ? "coco_rle" : "binary_mask",
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const targets = await listTargets(args.input);
  const out = await statOrNull(args.output);
  if (out && !out.isDirectory) {
    throw new UsageError(`--output: ${args.output} exists and is not a folder`);
  }
  await checkDestinations(args, targets);

  const log = (line: string) => args.quiet || console.log(line);
  const modelName = chooseModel(args.model, (line) => console.error(line));
  log(`Loading model ${modelName}...`);
  let model: SamModel;
  try {
    model = await SamModel.load(modelName, { quiet: args.quiet });
  } catch (e) {
    // What serve does with a --model it cannot load: an argument mistake, in one line.
    throw new UsageError(`could not load the model ${modelName}: ${(e as Error).message}`);
  }
  warnIfMeaningless(model.name, (line) => console.error(line));
  log(`Model ${model.name} on ${model.adapter}`);
  const backend = SamModelBackend.fromFamily(model.ctx, model.encoder, model.decoder, model.name);
  await Deno.mkdir(args.output, { recursive: true });
  const source = new ModelMaskSource(backend);
  try {
    for (const [k, t] of targets.entries()) {
      log(`Processing '${t}'...`);
      let image;
      try {
        image = await readImageFile(t);
      } catch {
        console.log(`Could not load '${t}' as an image, skipping...`);
        continue;
      }
      const rgb = image.channels === 3
        ? image.data
        : dropAlpha(image.data, image.width * image.height);
      const progress = progressDisplay(`[${k + 1}/${targets.length}] ${baseName(t)}`, args.quiet);
      const { records, counts } = await generator.generateWithCounts(
        { width: image.width, height: image.height, data: rgb },
        source,
        (p) => progress.update(p),
      );
      progress.done();
      const dest = destination(args, t);
      if (args.convertToRle) {
        await writeOutput(dest, JSON.stringify(records), args.overwrite);
      } else if (args.polygon) {
        const tol = args.polygonTolerance;
        const polys = records.map((r) => withPolygonSegmentation(r, tol));
        await writeOutput(dest, JSON.stringify(polys), args.overwrite);
        const objects = records.map((r) => ({
          mask: segmentationMask(r.segmentation),
          classIndex: 0,
        }));
        const txt = yoloSegText(objects, image.width, image.height, tol);
        await writeOutput(yoloDestination(args, t), txt, args.overwrite);
      } else {
        await Deno.mkdir(dest, { recursive: args.overwrite });
        if (args.overwrite) {
          // An earlier run's masks go, so the folder matches its new metadata.csv (links were
          // refused up front; removing one removes the link, not its target).
          for (const e of [...Deno.readDirSync(dest)]) {
            if (e.name === "metadata.csv" || /^\d+\.png$/.test(e.name)) {
              await Deno.remove(join(dest, e.name));
            }
          }
        }
        for (const [i, r] of records.entries()) {
          const png = await encodeMaskPng(r.segmentation as Uint8Array, image.width, image.height);
          await writeOutput(join(dest, `${i}.png`), png, args.overwrite);
        }
        await writeOutput(join(dest, "metadata.csv"), metadataCsv(records), args.overwrite);
      }
      const to = args.polygon ? ` and ${yoloDestination(args, t)}` : args.convertToRle ? "" : "/";
      log(`${records.length} masks -> ${dest}${to}`);
      // Why there are this many: an empty result names the threshold that emptied it.
      log(`  ${describeFilterCounts(counts)}`);
    }
  } finally {
    backend.dispose();
    model.dispose();
  }
  console.log("Done!");
  return 0;
}

function dropAlpha(rgba: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) rgb.set(rgba.subarray(4 * i, 4 * i + 3), 3 * i);
  return rgb;
}

if (import.meta.main) {
  await runCli("amg", () => main(wantsHelp(Deno.args) ? ["--help"] : Deno.args));
}
