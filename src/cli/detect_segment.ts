/**
 * deno task detect-segment <image> --detector <model.onnx> [--classes dog,car] [--score 0.35]
 *   [--iou 0.5] [--max-det 300] [--model sam-tiny|vit_b|path] [--provider auto|webgpu|wasm]
 *   --out <dir>
 *
 * Detects objects with a YOLO-NAS / YOLOv8 ONNX model, segments each box with SAM (one
 * batched pass) and writes <dir>/overlay.png (masks tinted, boxes, labels) and
 * <dir>/annotations.json (a COCO instances file: images, annotations with compressed-RLE
 * segmentations, categories).
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { readImageFile } from "../image.ts";
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

export const USAGE =
  `usage: deno task detect-segment <image> --detector <model.onnx> --out <dir> [options]
  --detector <file>     YOLO-NAS (no NMS head) or YOLOv8/YOLO11 detector exported to ONNX
  --out <dir>           writes overlay.png and annotations.json there (created if missing)
  --classes a,b         COCO class names to keep (default: all), e.g. dog,car,"traffic light"
  --score <t>           score threshold, default 0.35
  --iou <t>             NMS IoU threshold (per class), default 0.5
  --max-det <n>         at most n detections, default 300
  --model <name|path>   SAM model: sam-tiny, vit_b, vit_l, vit_h or a .pth/.safetensors file (default vit_b)
  --provider <p>        detector execution provider: auto (default), webgpu or wasm`;

export interface DetectSegmentArgs {
  image: string;
  detector: string;
  out: string;
  classes?: string[];
  score: number;
  iou: number;
  maxDetections: number;
  model: string;
  provider: ExecutionProviderChoice;
}

/** Parses the command line; throws an Error whose message says what is wrong (then USAGE). */
export function parseDetectSegmentArgs(argv: readonly string[]): DetectSegmentArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      detector: { type: "string" },
      out: { type: "string" },
      classes: { type: "string" },
      score: { type: "string", default: "0.35" },
      iou: { type: "string", default: "0.5" },
      "max-det": { type: "string", default: "300" },
      model: { type: "string", default: "vit_b" },
      provider: { type: "string", default: "auto" },
    },
  });
  if (positionals.length !== 1) {
    throw new Error(
      positionals.length ? `one image expected, got ${positionals.join(" ")}` : "no image given",
    );
  }
  if (!values.detector) throw new Error("--detector <model.onnx> is required");
  if (!values.out) throw new Error("--out <dir> is required");
  const num = (name: string, v: string, lo: number, hi: number) => {
    const x = Number(v);
    if (v.trim() === "" || !(x >= lo && x <= hi)) {
      throw new Error(`--${name} must be a number in [${lo}, ${hi}], got ${v}`);
    }
    return x;
  };
  const maxDetections = num("max-det", values["max-det"], 1, 1e6);
  if (!Number.isInteger(maxDetections)) throw new Error(`--max-det must be an integer`);
  const provider = values.provider as ExecutionProviderChoice;
  if (!["auto", "webgpu", "wasm"].includes(provider)) {
    throw new Error(`--provider must be auto, webgpu or wasm, got ${provider}`);
  }
  const classes = values.classes?.split(",").map((s) => s.trim()).filter((s) => s.length);
  return {
    image: positionals[0],
    detector: values.detector,
    out: values.out,
    classes: classes?.length ? classes : undefined,
    score: num("score", values.score, 0, 1),
    iou: num("iou", values.iou, 0, 1),
    maxDetections,
    model: values.model,
    provider,
  };
}

/** A SAM predictor and how to release it. */
export interface LoadedPredictor extends BoxPredictor {
  dispose(): void;
}

/** SamModel.load (registry name or checkpoint path) + a SamPredictor on it. */
export async function loadSamPredictor(model: string): Promise<LoadedPredictor> {
  const sam = await SamModel.load(model);
  const predictor = new SamPredictor(sam);
  console.log(
    `SAM ${sam.name} on ${sam.adapter}` +
      (sam.name === "sam-tiny" ? " (random-weight test model: its masks mean nothing)" : ""),
  );
  return {
    setImage: (image) => predictor.setImage(image),
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
  const image = await readImageFile(args.image);
  const detector = await Detector.load(args.detector, { executionProvider: args.provider });
  let loaded: LoadedPredictor | null = null;
  const lazy: BoxPredictor = {
    async setImage(img) {
      loaded ??= await loadPredictor(args.model);
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
      maxDetections: args.maxDetections,
    });
    await Deno.mkdir(args.out, { recursive: true });
    const json = cocoJson(result, detector.classNames, basename(args.image));
    await Deno.writeTextFile(join(args.out, "annotations.json"), JSON.stringify(json) + "\n");
    const png = await renderOverlayPng(image, overlayItems(result.detections, result.masks));
    await Deno.writeFile(join(args.out, "overlay.png"), png);
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
    log(`wrote ${join(args.out, "overlay.png")} and ${join(args.out, "annotations.json")}`);
    return result;
  } finally {
    await detector.dispose();
    (loaded as LoadedPredictor | null)?.dispose();
  }
}

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  let args: DetectSegmentArgs;
  try {
    args = parseDetectSegmentArgs(Deno.args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  try {
    await runDetectSegment(args);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    // A --classes name the detector does not know is an argument mistake, found once it loads.
    Deno.exit(e instanceof UnknownClassError ? 2 : 1);
  }
}
