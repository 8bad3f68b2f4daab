/**
 * deno task detect-segment <image> --detector <model.onnx> [--classes dog,car] [--score 0.35]
 *   [--iou 0.5] [--max-det 300] [--max-mask-pixels N] [--model sam-tiny|vit_b|path]
 *   [--provider auto|webgpu|wasm] [--overwrite] --out <dir>
 *
 * Detects objects with a YOLO-NAS / YOLOv8 ONNX model, segments each box with SAM (one
 * batched pass) and writes <dir>/overlay.png (masks tinted, boxes, labels) and
 * <dir>/annotations.json (a COCO instances file: images, annotations with compressed-RLE
 * segmentations, categories); with --format polygon the segmentations are COCO polygons and
 * <dir>/<image>.txt holds the objects as YOLO-seg lines.
 */
import "../gpu/gpu_flag.ts"; // --gpu auto|deno|dawn, taken out of Deno.args first
import { basename, join } from "node:path";
import { ImageDecodeError, readImageFile } from "../image.ts";
import { SamModel, SamPredictor } from "../predictor.ts";
import {
  type BoxPredictor,
  cocoJson,
  detectAndSegment,
  type DetectSegmentResult,
} from "../detect/detect_segment.ts";
import { UnknownClassError } from "../detect/mod.ts";
import { Detector, type ExecutionProviderChoice } from "../detect/detector.ts";
import { overlayItems, renderOverlayPng } from "../detect/overlay.ts";
import { DEFAULT_LIMITS } from "../server/limits.ts";
import {
  GPU_FLAGS,
  numberFlag,
  parseFlags,
  requireInputFile,
  runCli,
  UsageError,
  wantsHelp,
} from "./args.ts";
import { chooseModel, MODEL_HELP, warnIfMeaningless } from "./model.ts";
import { checkOutputDir, checkOutputFiles, writeOutput } from "./output.ts";
import { parseFormatFlags, withPolygonSegmentation, yoloSegText } from "../util/polygon_export.ts";

/** The most detections one run segments (each is a full-size mask). */
export const MAX_DETECTIONS = 1000;

export const USAGE =
  `Usage: deno task detect-segment <image> --detector <model.onnx> --out <dir> [options]

Detects objects with a YOLO ONNX model, segments each box with SAM (one batched pass) and writes
<dir>/overlay.png (masks tinted, boxes, labels) and <dir>/annotations.json (COCO instances with
compressed-RLE segmentations).

  --detector FILE         YOLO-NAS (no NMS head) or YOLOv8/YOLO11 detector exported to ONNX
                          (required)
  --out DIR               where the two files go; created if missing (required)
  --classes a,b           COCO class names to keep (default: all), e.g. dog,car,"traffic light"
  --score T               score threshold, default 0.35
  --iou T                 NMS IoU threshold (per class), default 0.5
  --max-det N             at most N detections (1 to ${MAX_DETECTIONS}), default 300
  --max-mask-pixels N     at most N full-size mask pixels in memory (detections x width x
                          height), default ${DEFAULT_LIMITS.maxMaskPixels} as the server's: on a
                          large photo fewer than --max-det detections are segmented (the best
                          scores), and the log says so
  --model NAME|PATH       SAM model: ${MODEL_HELP}
  --provider P            detector execution provider: auto (default), webgpu or wasm
  --format F              rle (default) or polygon: COCO polygons, and <image>.txt in YOLO-seg
                          (classes: the detector's 0-based indices)
  --polygon-tolerance T   Douglas-Peucker tolerance of the polygons, pixels (0.5; 0: exact)
  --overwrite             replace the files of an earlier run in DIR (default: refuse)
  --precision f32|f16     storage of weights and GEMM activations (f32; or
                          $WGSAM_PRECISION); f16 needs the adapter's shader-f16
  -h, --help              this text

Exit status: 0 done, 1 a runtime failure, 2 a bad argument (unknown flag, missing image,
unknown class, output that exists, SAM model that does not load).`;

export interface DetectSegmentArgs {
  image: string;
  detector: string;
  out: string;
  classes?: string[];
  score: number;
  iou: number;
  maxDetections: number;
  maxMaskPixels: number;
  /** Undefined: the installed model, else sam-tiny (chooseModel). */
  model?: string;
  provider: ExecutionProviderChoice;
  overwrite: boolean;
  format: "rle" | "polygon";
  polygonTolerance: number;
}

/** Parses the command line; throws a UsageError whose message says what is wrong. */
export function parseDetectSegmentArgs(argv: readonly string[]): DetectSegmentArgs {
  const { values, positionals } = parseFlags(argv, {
    detector: { type: "string" },
    out: { type: "string" },
    classes: { type: "string" },
    score: { type: "string", default: "0.35" },
    iou: { type: "string", default: "0.5" },
    "max-det": { type: "string", default: "300" },
    "max-mask-pixels": { type: "string", default: String(DEFAULT_LIMITS.maxMaskPixels) },
    model: { type: "string" },
    provider: { type: "string", default: "auto" },
    overwrite: { type: "boolean" },
    format: { type: "string" },
    "polygon-tolerance": { type: "string" },
    ...GPU_FLAGS,
  });
  let format;
  try {
    format = parseFormatFlags(values.format, values["polygon-tolerance"], ["rle", "polygon"]);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length ? `one image expected, got ${positionals.join(" ")}` : "no image given",
    );
  }
  if (!values.detector) throw new UsageError("--detector <model.onnx> is required");
  if (!values.out) throw new UsageError("--out <dir> is required");
  if (values.model === "") throw new UsageError("--model needs a value");
  const provider = values.provider as ExecutionProviderChoice;
  if (!["auto", "webgpu", "wasm"].includes(provider)) {
    throw new UsageError(`--provider must be auto, webgpu or wasm, got ${provider}`);
  }
  const classes = values.classes?.split(",").map((s) => s.trim()).filter((s) => s.length);
  return {
    image: positionals[0],
    detector: values.detector,
    out: values.out,
    classes: classes?.length ? classes : undefined,
    score: numberFlag("score", values.score, { min: 0, max: 1 }),
    iou: numberFlag("iou", values.iou, { min: 0, max: 1 }),
    maxDetections: numberFlag("max-det", values["max-det"], {
      min: 1,
      max: MAX_DETECTIONS,
      integer: true,
    }),
    maxMaskPixels: numberFlag("max-mask-pixels", values["max-mask-pixels"], {
      min: 1,
      integer: true,
    }),
    model: values.model,
    provider,
    overwrite: values.overwrite ?? false,
    format: format.format as "rle" | "polygon",
    polygonTolerance: format.polygonTolerance,
  };
}

/**
 * The detections to segment on a width x height photo: --max-det, lowered so that their masks
 * (one full-size byte mask each) stay within --max-mask-pixels.
 */
export function detectionsThatFit(args: DetectSegmentArgs, width: number, height: number) {
  return Math.max(
    1,
    Math.min(args.maxDetections, Math.floor(args.maxMaskPixels / (width * height))),
  );
}

/** A SAM predictor and how to release it. */
export interface LoadedPredictor extends BoxPredictor {
  dispose(): void;
}

/** SamModel.load (registry name or checkpoint path) + a SamPredictor on it. */
export async function loadSamPredictor(model: string): Promise<LoadedPredictor> {
  let sam: SamModel;
  try {
    sam = await SamModel.load(model);
  } catch (e) {
    // What serve does with a --model it cannot load: an argument mistake, in one line.
    throw new UsageError(`--model ${model}: ${(e as Error).message}`);
  }
  const predictor = new SamPredictor(sam);
  console.log(`SAM ${sam.name} on ${sam.adapter}`);
  warnIfMeaningless(sam.name, (line) => console.error(line));
  return {
    // Waits for the encoder so that the printed "SAM encode" time is the encoder's, not ~0 with
    // the encoding counted in the decode time (as deno task segment does).
    setImage: (image) => predictor.setImage(image, { waitForGpu: true }),
    predictBatch: (prompts) => predictor.predictBatch(prompts),
    dispose: () => {
      predictor.dispose();
      sam.dispose();
    },
  };
}

/**
 * The whole command: detect, segment, write overlay.png and annotations.json. SAM is loaded
 * lazily, at detectAndSegment's first setImage, so a photo without detections never loads it.
 */
export async function runDetectSegment(
  args: DetectSegmentArgs,
  loadPredictor: (model: string) => Promise<LoadedPredictor> = loadSamPredictor,
  log: (line: string) => void = console.log,
): Promise<DetectSegmentResult> {
  // What the arguments alone decide first (exit 2, nothing loaded or written).
  await requireInputFile(args.image, "image");
  await requireInputFile(args.detector, "--detector");
  const outPath = (name: string) => join(args.out, name);
  await checkOutputDir(args.out, "--out");
  const yoloFile = outPath(basename(args.image).replace(/\.[^.]*$/, "") + ".txt");
  const written = [outPath("overlay.png"), outPath("annotations.json")];
  if (args.format === "polygon") written.push(yoloFile);
  await checkOutputFiles(written, args.overwrite);
  let image;
  try {
    image = await readImageFile(args.image);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new UsageError(`${args.image}: ${e.message}`);
    throw e;
  }
  const maxDetections = detectionsThatFit(args, image.width, image.height);
  if (maxDetections < args.maxDetections) {
    log(
      `at most ${maxDetections} detections on this ${image.width}x${image.height} photo ` +
        `(--max-det ${args.maxDetections}): their masks must fit in --max-mask-pixels ` +
        `${args.maxMaskPixels}`,
    );
  }
  const detector = await Detector.load(args.detector, { executionProvider: args.provider });
  const modelName = chooseModel(args.model, (line) => console.error(line));
  let loaded: LoadedPredictor | null = null;
  const lazy: BoxPredictor = {
    async setImage(img) {
      loaded ??= await loadPredictor(modelName);
      return await loaded.setImage(img);
    },
    predictBatch: (prompts) => loaded!.predictBatch(prompts),
  };
  try {
    log(
      `detector ${basename(args.detector)}: ${detector.layout.kind}, input ` +
        `${detector.inputWidth}x${detector.inputHeight}, ${detector.executionProvider}`,
    );
    const result = await detectAndSegment(image, detector, lazy, {
      classes: args.classes,
      scoreThreshold: args.score,
      iouThreshold: args.iou,
      maxDetections,
    });
    await Deno.mkdir(args.out, { recursive: true });
    const json = cocoJson(result, detector.classNames, basename(args.image));
    if (args.format === "polygon") {
      const tol = args.polygonTolerance;
      const annotations = json.annotations.map((a, i) =>
        withPolygonSegmentation(a, tol, result.masks[i])
      );
      const text = JSON.stringify({ ...json, annotations }) + "\n";
      await writeOutput(outPath("annotations.json"), text, args.overwrite);
      const objects = result.annotations.map((a, i) => ({
        mask: result.masks[i],
        classIndex: a.class_index,
      }));
      const yolo = yoloSegText(objects, image.width, image.height, tol);
      await writeOutput(yoloFile, yolo, args.overwrite);
    } else {
      await writeOutput(outPath("annotations.json"), JSON.stringify(json) + "\n", args.overwrite);
    }
    const png = await renderOverlayPng(image, overlayItems(result.detections, result.masks));
    await writeOutput(outPath("overlay.png"), png, args.overwrite);
    const t = result.timings;
    log(
      `${result.annotations.length} objects in ${image.width}x${image.height}` +
        (result.annotations.length
          ? `: ${
            result.annotations.map((a) => `${a.category_name} ${a.score.toFixed(2)}`).join(", ")
          }`
          : "") +
        ` (detect ${t.detectMs.toFixed(0)} ms, SAM encode ${t.encodeMs.toFixed(0)} ms, ` +
        `decode ${t.decodeMs.toFixed(0)} ms)`,
    );
    log(`wrote ${written.join(", ")}`);
    return result;
  } finally {
    await detector.dispose();
    (loaded as LoadedPredictor | null)?.dispose();
  }
}

if (import.meta.main) {
  await runCli("detect-segment", async () => {
    if (wantsHelp(Deno.args)) return console.log(USAGE);
    try {
      await runDetectSegment(parseDetectSegmentArgs(Deno.args));
    } catch (e) {
      // A --classes name the detector does not know is an argument mistake, found once it loads.
      if (e instanceof UnknownClassError) throw new UsageError(e.message);
      throw e;
    }
  });
}
