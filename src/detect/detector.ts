/**
 * An object detector exported to ONNX (YOLO-NAS without NMS head, or YOLOv8 / YOLO11), run
 * with onnxruntime-web: letterbox -> run -> decode -> score threshold -> class-aware NMS ->
 * boxes mapped back to the photo (see letterbox.ts and yolo.ts for the exact rules).
 *
 * Execution provider: onnxruntime-web's WebGPU provider or its wasm (CPU) one. WebGPU works
 * in Deno, also on the software adapter (imported from the `onnxruntime-web/webgpu` bundle
 * because the package's plain entry resolves to its Node build, which has no WebGPU), but
 * on a software adapter it is far slower than wasm: a 1-GFLOP stack of 3x3 convolutions at
 * 640 x 640 took 30 s on llvmpipe against 1 s on wasm (one thread). So "auto" uses WebGPU
 * only on a hardware adapter (`adapter.info.isFallbackAdapter` false) and falls back to wasm
 * when creating the WebGPU session or its first run fails; "webgpu" forces it.
 */
import { isSoftwareAdapter } from "../gpu/device.ts";
// Versioned npm: specifier, not a bare one: mod.ts must import from any folder without our
// deno.json (tests/api/mod_import_test.ts; versions kept equal to deno.json's imports).
// deno-lint-ignore no-import-prefix
import * as ort from "npm:onnxruntime-web@1.23.2/webgpu";
import type { RgbImage } from "../types.ts";
import { COCO_CLASSES, resolveClassIds } from "./coco_classes.ts";
import { boxToSource, type Letterbox, letterboxGeometry, letterboxImage } from "./letterbox.ts";
import {
  decodeCandidates,
  detectLayout,
  nmsCandidates,
  type OutputSpec,
  type RawTensor,
  type YoloLayout,
} from "./yolo.ts";

export type ExecutionProviderChoice = "auto" | "webgpu" | "wasm";

/** The input size used when the model's input has symbolic height / width. */
export const DEFAULT_INPUT_SIZE = 640;

export interface DetectorOptions {
  /** Default "auto": WebGPU on a hardware adapter when it works, else wasm. */
  executionProvider?: ExecutionProviderChoice;
  /** Class names in score-channel order; default COCO's 80. Must match the model's C. */
  classNames?: readonly string[];
  /** Input size for models whose input height / width are symbolic; default 640. */
  inputSize?: number;
  /** wasm threads (ort.env.wasm.numThreads) when not set already; default 1. */
  wasmThreads?: number;
}

export interface DetectOptions {
  /** Keep candidates whose best class score is > this; default 0.35. */
  scoreThreshold?: number;
  /** NMS suppresses a same-class box whose IoU with a better one is > this; default 0.5. */
  iouThreshold?: number;
  /** Class names to keep ("dog", "car"); absent or empty keeps all. */
  classes?: readonly string[];
  /** At most this many detections, best first; default 300 (Ultralytics' max_det). */
  maxDetections?: number;
}

export interface Detection {
  /** [x0, y0, x1, y1] in photo pixels, clipped to the photo. */
  box: [number, number, number, number];
  /** The same box in the detector's input pixels, as the model gave it. */
  inputBox: [number, number, number, number];
  score: number;
  /** Contiguous class id (COCO: 0..79, dog = 16). */
  classId: number;
  className: string;
}

/** Anything that detects: the Detector below, or a stand-in in tests. */
export interface DetectorLike {
  readonly classNames: readonly string[];
  detect(image: RgbImage, opts?: DetectOptions): Promise<Detection[]>;
}

function checkOptions(opts: DetectOptions): Required<Omit<DetectOptions, "classes">> {
  const scoreThreshold = opts.scoreThreshold ?? 0.35;
  const iouThreshold = opts.iouThreshold ?? 0.5;
  const maxDetections = opts.maxDetections ?? 300;
  if (!(scoreThreshold >= 0 && scoreThreshold <= 1)) {
    throw new RangeError(`score threshold must be in [0, 1], got ${scoreThreshold}`);
  }
  if (!(iouThreshold >= 0 && iouThreshold <= 1)) {
    throw new RangeError(`IoU threshold must be in [0, 1], got ${iouThreshold}`);
  }
  if (!Number.isInteger(maxDetections) || maxDetections < 1) {
    throw new RangeError(`maxDetections must be a positive integer, got ${maxDetections}`);
  }
  return { scoreThreshold, iouThreshold, maxDetections };
}

/** The WebGPU adapter in words, and whether it is a software (fallback) one; null if none. */
export async function webgpuAdapterInfo(): Promise<
  { description: string; software: boolean } | null
> {
  try {
    const adapter = globalThis.navigator?.gpu && await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info;
    const software = isSoftwareAdapter(info as GPUAdapterInfo & { isFallbackAdapter?: boolean });
    return { description: info.description || info.vendor || "unknown adapter", software };
  } catch {
    return null;
  }
}

export class Detector implements DetectorLike {
  private constructor(
    private session: ort.InferenceSession,
    private readonly modelBytes: Uint8Array,
    /** The provider the session runs on. */
    public executionProvider: "webgpu" | "wasm",
    private fallback: boolean,
    readonly inputName: string,
    readonly inputType: "float32" | "uint8",
    readonly inputWidth: number,
    readonly inputHeight: number,
    readonly layout: YoloLayout,
    readonly classNames: readonly string[],
    readonly name: string,
  ) {}

  /**
   * Loads a detector from an .onnx path or its bytes. Throws a clear Error when the bytes
   * are not an ONNX model, the input is not one (1, 3, H, W) image, or the outputs are in an
   * unknown layout.
   */
  static async load(source: string | Uint8Array, opts: DetectorOptions = {}): Promise<Detector> {
    const name = typeof source === "string" ? source : "detector model";
    let bytes: Uint8Array;
    if (typeof source === "string") {
      try {
        bytes = await Deno.readFile(source);
      } catch (e) {
        throw new Error(`detector: cannot read ${source}: ${(e as Error).message}`);
      }
    } else bytes = source;
    const choice = opts.executionProvider ?? "auto";
    if (!["auto", "webgpu", "wasm"].includes(choice)) {
      throw new Error(`detector: execution provider must be auto, webgpu or wasm, got ${choice}`);
    }
    // onnxruntime logs warnings to stderr on every load ("Unknown CPU vendor" where cpuinfo
    // cannot name the CPU, e.g. in a VM); they say nothing to a user. Errors stay visible, and a
    // level set by the caller is kept.
    if (ort.env.logLevel === undefined || ort.env.logLevel === "warning") {
      ort.env.logLevel = "error";
    }
    if (ort.env.wasm.numThreads === undefined || ort.env.wasm.numThreads === 0) {
      ort.env.wasm.numThreads = opts.wasmThreads ?? 1;
    }
    let provider: "webgpu" | "wasm" = "wasm";
    let session: ort.InferenceSession | null = null;
    const useWebgpu = choice === "webgpu" ||
      (choice === "auto" && (await webgpuAdapterInfo())?.software === false);
    if (useWebgpu) {
      try {
        session = await ort.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
        provider = "webgpu";
      } catch (e) {
        if (choice === "webgpu") throw Detector.loadError(name, e);
      }
    }
    if (!session) {
      try {
        session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
      } catch (e) {
        throw Detector.loadError(name, e);
      }
    }
    try {
      return Detector.fromSession(session, bytes, provider, choice === "auto", name, opts);
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  private static loadError(name: string, e: unknown): Error {
    const msg = (e as Error)?.message ?? String(e);
    return new Error(`detector: ${name} is not a loadable ONNX model: ${msg}`);
  }

  private static fromSession(
    session: ort.InferenceSession,
    bytes: Uint8Array,
    provider: "webgpu" | "wasm",
    fallback: boolean,
    name: string,
    opts: DetectorOptions,
  ): Detector {
    if (session.inputNames.length !== 1) {
      throw new Error(
        `detector: ${name} has inputs ${session.inputNames.join(", ")}; expected one image input`,
      );
    }
    const meta = session.inputMetadata[0];
    const shape = meta.isTensor ? meta.shape : [];
    const type = meta.isTensor ? meta.type : "unknown";
    const inputName = session.inputNames[0];
    const dim = (i: number) => (typeof shape[i] === "number" ? shape[i] as number : -1);
    if (
      shape.length !== 4 || (dim(0) !== -1 && dim(0) !== 1) || (dim(1) !== -1 && dim(1) !== 3) ||
      (type !== "float32" && type !== "uint8")
    ) {
      throw new Error(
        `detector: ${name}: input ${inputName} is ${type} (${shape.join(",")}); ` +
          `expected a float32 or uint8 image (1,3,H,W)`,
      );
    }
    const fallbackSize = opts.inputSize ?? DEFAULT_INPUT_SIZE;
    const inputHeight = dim(2) > 0 ? dim(2) : fallbackSize;
    const inputWidth = dim(3) > 0 ? dim(3) : fallbackSize;
    const outputs: OutputSpec[] = session.outputNames.map((n, i) => {
      const m = session.outputMetadata[i];
      return { name: n, dims: m?.isTensor && m.shape.length ? m.shape : undefined };
    });
    let layout: YoloLayout;
    try {
      layout = detectLayout(outputs);
    } catch (e) {
      throw new Error(`detector: ${name}: ${(e as Error).message}`);
    }
    const classNames = opts.classNames ?? COCO_CLASSES;
    if (layout.numClasses !== -1 && layout.numClasses !== classNames.length) {
      throw new Error(
        `detector: ${name} scores ${layout.numClasses} classes but ${classNames.length} ` +
          `class names are given` + (opts.classNames ? "" : " (the COCO default)"),
      );
    }
    return new Detector(
      session,
      bytes,
      provider,
      fallback && provider === "webgpu",
      inputName,
      type,
      inputWidth,
      inputHeight,
      layout,
      classNames,
      name,
    );
  }

  /** The letterbox geometry a photo of this size gets. */
  geometry(width: number, height: number): Letterbox {
    return letterboxGeometry(width, height, this.inputWidth, this.inputHeight);
  }

  /** The tail of the runs queued on this session (one at a time, as a session needs). */
  private queue: Promise<unknown> = Promise.resolve();

  /** Runs the model on an already letterboxed input; the raw outputs. Calls are serialised. */
  runRaw(input: Float32Array | Uint8Array): Promise<Record<string, RawTensor>> {
    const run = this.queue.then(() => this.runNow(input));
    this.queue = run.catch(() => {});
    return run;
  }

  private async runNow(input: Float32Array | Uint8Array): Promise<Record<string, RawTensor>> {
    const dims = [1, 3, this.inputHeight, this.inputWidth];
    const tensor = this.inputType === "uint8"
      ? new ort.Tensor("uint8", input as Uint8Array, dims)
      : new ort.Tensor("float32", input as Float32Array, dims);
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run({ [this.inputName]: tensor });
    } catch (e) {
      if (!this.fallback) {
        throw new Error(`detector: ${this.name}: run failed: ${(e as Error).message}`);
      }
      // WebGPU did not work after all (e.g. an operator the adapter lacks): wasm from now on.
      await this.session.release().catch(() => {});
      this.session = await ort.InferenceSession.create(this.modelBytes, {
        executionProviders: ["wasm"],
      });
      this.executionProvider = "wasm";
      this.fallback = false;
      out = await this.session.run({ [this.inputName]: tensor });
    }
    const result: Record<string, RawTensor> = {};
    for (const [k, v] of Object.entries(out)) {
      if (v.type !== "float32") {
        throw new Error(`detector: ${this.name}: output ${k} is ${v.type}, expected float32`);
      }
      result[k] = { dims: v.dims, data: await v.getData() as Float32Array };
    }
    return result;
  }

  /** Detects objects in a photo: boxes in photo pixels, best first. */
  async detect(image: RgbImage, opts: DetectOptions = {}): Promise<Detection[]> {
    const { scoreThreshold, iouThreshold, maxDetections } = checkOptions(opts);
    const keep = resolveClassIds(opts.classes, this.classNames); // fails before the run
    const lb = this.geometry(image.width, image.height);
    const input = this.inputType === "uint8"
      ? letterboxImage(image, lb, "uint8")
      : letterboxImage(image, lb, "float32");
    const raw = await this.runRaw(input);
    return this.postprocess(raw, lb, { scoreThreshold, iouThreshold, maxDetections }, keep);
  }

  /** decode -> threshold -> NMS (in input pixels, as Ultralytics) -> photo frame. */
  postprocess(
    raw: Readonly<Record<string, RawTensor>>,
    lb: Letterbox,
    opts: { scoreThreshold: number; iouThreshold: number; maxDetections: number },
    keep: ReadonlySet<number> | null,
  ): Detection[] {
    let candidates;
    try {
      candidates = decodeCandidates(this.layout, raw, opts.scoreThreshold, keep);
    } catch (e) {
      throw new Error(`detector: ${this.name}: ${(e as Error).message}`);
    }
    const kept = nmsCandidates(candidates, opts.iouThreshold, opts.maxDetections);
    return toDetections(
      candidates.boxes,
      candidates.scores,
      candidates.classIds,
      kept,
      lb,
      this.classNames,
    );
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Kept candidates as Detections in photo pixels. A box that lies wholly in the padding maps
 * to zero width or height once clipped; it covers nothing of the photo and is dropped.
 */
export function toDetections(
  boxes: Float32Array,
  scores: Float32Array,
  classIds: Int32Array,
  kept: readonly number[],
  lb: Letterbox,
  classNames: readonly string[],
): Detection[] {
  const out: Detection[] = [];
  for (const i of kept) {
    const inputBox = Array.from(boxes.subarray(4 * i, 4 * i + 4)) as Detection["inputBox"];
    const box = boxToSource(inputBox, lb);
    if (!(box[2] > box[0] && box[3] > box[1])) continue;
    const classId = classIds[i];
    out.push({
      box,
      inputBox,
      score: scores[i],
      classId,
      className: classNames[classId] ?? `class ${classId}`,
    });
  }
  return out;
}
