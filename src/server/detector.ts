/**
 * The optional object detector of POST /api/images/:id/detect (`--detector PATH`): an ONNX
 * detector loaded once at start, with the description GET /api/info shows.
 */
import { Detector, type DetectorLike } from "../detect/mod.ts";

export interface DetectorInfo {
  /** The .onnx file as configured. */
  path: string;
  /** Output layout: "yolo-nas" (boxes + scores) or "yolov8" (one output). */
  layout: string;
  /** The detector's input, [width, height] pixels. */
  input_size: [number, number];
  /** Where the detector runs: "webgpu" or "wasm". */
  execution_provider: string;
  /** Class names in the detector's order (category ids are their indices). */
  classes: readonly string[];
}

export interface ServerDetector {
  readonly detector: DetectorLike;
  /** Read at each GET /api/info (the execution provider may fall back to wasm after a run). */
  info(): DetectorInfo;
  dispose(): Promise<void>;
}

/** Loads the detector at `path`; throws an Error that names the file when it is unusable. */
export async function loadServerDetector(path: string): Promise<ServerDetector> {
  const detector = await Detector.load(path, { executionProvider: "auto" });
  return {
    detector,
    info: () => ({
      path,
      layout: detector.layout.kind,
      input_size: [detector.inputWidth, detector.inputHeight],
      execution_provider: detector.executionProvider,
      classes: detector.classNames,
    }),
    dispose: () => detector.dispose(),
  };
}
