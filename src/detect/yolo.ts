/**
 * Decoding the raw outputs of YOLO-family detectors exported to ONNX, in two layouts:
 *
 * - "yolo-nas": YOLO-NAS exported without its NMS head. Two outputs, boxes (1, N, 4) as
 *   x0, y0, x1, y1 in input pixels and scores (1, N, C) class probabilities. Told apart by
 *   shape; when both are (1, N, 4) (C = 4) the names decide ("box" / "score").
 * - "yolov8": Ultralytics YOLOv8 / YOLO11. One output (1, 4 + C, N): rows cx, cy, w, h (input
 *   pixels) then C class probabilities, anchors along the last axis (4 + C < N).
 *
 * Anything else is refused with an error that lists the outputs and the layouts understood
 * (a YOLO-NAS export *with* its NMS head, or YOLOv5's (1, N, 5 + C) with objectness, among
 * them).
 *
 * Candidate selection follows Ultralytics' `non_max_suppression` (multi_label off): each
 * anchor's class is its highest score (the first on ties), an anchor is a candidate when
 * that score is > the threshold (strictly, both in float32 as torch compares them), and a class filter is applied after the argmax
 * (an anchor whose best class is not wanted is dropped, not re-labelled).
 */
import { batchedNms, stableArgsortDescending } from "../amg/nms.ts";

export type YoloLayoutKind = "yolo-nas" | "yolov8";

/** What the decoder needs to know about an output; unknown dims are -1 (or a string). */
export interface OutputSpec {
  name: string;
  dims: readonly (number | string)[] | undefined;
}

export interface YoloLayout {
  kind: YoloLayoutKind;
  /** yolo-nas: the boxes output; yolov8: the single output. */
  boxesName: string;
  /** yolo-nas: the scores output; yolov8: same as boxesName. */
  scoresName: string;
  /** Number of classes C, or -1 when the shapes do not say yet. */
  numClasses: number;
}

/** A raw output tensor as ONNX Runtime returns it. */
export interface RawTensor {
  dims: readonly number[];
  data: Float32Array;
}

/** Candidates in input pixels, before NMS. */
export interface Candidates {
  /** n x 4, x0, y0, x1, y1. */
  boxes: Float32Array;
  scores: Float32Array;
  classIds: Int32Array;
}

const EXPECTED_LAYOUTS = "expected YOLO-NAS exported without its NMS head (two outputs: boxes " +
  "(1,N,4) as x0,y0,x1,y1 and scores (1,N,C)) or YOLOv8/YOLO11 (one output (1,4+C,N): " +
  "cx,cy,w,h then C class scores)";

export class UnknownLayoutError extends Error {
  constructor(outputs: readonly OutputSpec[], hint = "") {
    const list = outputs.map((o) =>
      `${o.name} ${o.dims ? `(${o.dims.join(",")})` : "(shape unknown)"}`
    )
      .join(", ");
    super(
      `unknown detector output layout: outputs ${list || "(none)"}; ${EXPECTED_LAYOUTS}${hint}`,
    );
    this.name = "UnknownLayoutError";
  }
}

/** A dim that is a known number, else -1. */
function dimOf(d: number | string | undefined): number {
  return typeof d === "number" && Number.isInteger(d) && d >= 0 ? d : -1;
}

/** a and b agree, treating -1 as "not known yet". */
function agree(a: number, b: number): boolean {
  return a === -1 || b === -1 || a === b;
}

/**
 * Recognises the layout from output names and shapes (metadata at load, where dims may be
 * symbolic, or the actual tensors after a run). Throws UnknownLayoutError.
 */
export function detectLayout(outputs: readonly OutputSpec[]): YoloLayout {
  const rank3 = outputs.filter((o) => o.dims?.length === 3 && agree(dimOf(o.dims[0]), 1));
  if (outputs.length === 2 && rank3.length === 2) {
    const [a, b] = rank3.map((o) => ({ o, d: o.dims!.map(dimOf) }));
    const n = agree(a.d[1], b.d[1]);
    const isBoxes = (x: typeof a) => agree(x.d[2], 4);
    let boxes: typeof a | undefined, scores: typeof a | undefined;
    if (n && isBoxes(a) && !isBoxes(b)) [boxes, scores] = [a, b];
    else if (n && isBoxes(b) && !isBoxes(a)) [boxes, scores] = [b, a];
    else if (n && isBoxes(a) && isBoxes(b)) {
      // Shapes cannot tell: names must.
      const named = (x: typeof a, word: string) => x.o.name.toLowerCase().includes(word);
      if (named(a, "box") && named(b, "score")) [boxes, scores] = [a, b];
      else if (named(b, "box") && named(a, "score")) [boxes, scores] = [b, a];
    }
    if (boxes && scores) {
      return {
        kind: "yolo-nas",
        boxesName: boxes.o.name,
        scoresName: scores.o.name,
        numClasses: scores.d[2],
      };
    }
  }
  if (outputs.length === 1 && rank3.length === 1) {
    const d = rank3[0].dims!.map(dimOf);
    // (1, 4 + C, N): fewer channels than anchors (YOLOv5's (1, N, 85) has it the other way).
    if ((d[1] === -1 || d[1] > 4) && (d[1] === -1 || d[2] === -1 || d[1] < d[2])) {
      const name = rank3[0].name;
      return {
        kind: "yolov8",
        boxesName: name,
        scoresName: name,
        numClasses: d[1] === -1 ? -1 : d[1] - 4,
      };
    }
  }
  const names = outputs.map((o) => o.name.toLowerCase());
  const hint = names.some((n) => n.includes("num_predictions") || n.includes("num_dets"))
    ? " (this looks like an export with an NMS head: export the detector without it)"
    : "";
  throw new UnknownLayoutError(outputs, hint);
}

/**
 * The candidates of one image (batch 1): best class per anchor, kept when its score is >
 * scoreThreshold and (when given) its class is in keepClasses. Boxes in input pixels,
 * x0, y0, x1, y1 (YOLOv8's cx, cy, w, h converted in float32 as Ultralytics' xywh2xyxy).
 */
export function decodeCandidates(
  layout: YoloLayout,
  outputs: Readonly<Record<string, RawTensor>>,
  scoreThreshold: number,
  keepClasses: ReadonlySet<number> | null = null,
): Candidates {
  const specs = Object.entries(outputs).map(([name, t]) => ({ name, dims: t.dims }));
  const actual = detectLayout(specs); // the run's real shapes must fit the layout too
  if (actual.kind !== layout.kind || !agree(actual.numClasses, layout.numClasses)) {
    throw new UnknownLayoutError(specs, ` (the model's metadata said ${layout.kind})`);
  }
  const boxesOut: number[] = [], scoresOut: number[] = [], classOut: number[] = [];
  const f32 = Math.fround;
  // torch compares a float32 tensor with a Python float in float32: 0.3 is not > 0.3.
  const threshold = f32(scoreThreshold);
  if (actual.kind === "yolo-nas") {
    const boxes = outputs[actual.boxesName], scores = outputs[actual.scoresName];
    const n = boxes.dims[1], c = scores.dims[2];
    if (boxes.data.length !== n * 4 || scores.data.length !== n * c) {
      throw new Error(`detector outputs: data lengths do not match their shapes`);
    }
    const s = scores.data, b = boxes.data;
    for (let i = 0; i < n; i++) {
      let best = -Infinity, cls = -1;
      for (let k = 0, o = i * c; k < c; k++, o++) {
        if (s[o] > best) {
          best = s[o];
          cls = k;
        }
      }
      if (!(best > threshold) || (keepClasses && !keepClasses.has(cls))) continue;
      boxesOut.push(b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]);
      scoresOut.push(best);
      classOut.push(cls);
    }
  } else {
    const out = outputs[actual.boxesName];
    const rows = out.dims[1], n = out.dims[2], c = rows - 4;
    if (out.data.length !== rows * n) {
      throw new Error(`detector outputs: data length does not match its shape`);
    }
    const d = out.data; // (4 + C, N): channel-major
    for (let i = 0; i < n; i++) {
      let best = -Infinity, cls = -1;
      for (let k = 0; k < c; k++) {
        const v = d[(4 + k) * n + i];
        if (v > best) {
          best = v;
          cls = k;
        }
      }
      if (!(best > threshold) || (keepClasses && !keepClasses.has(cls))) continue;
      const cx = d[i], cy = d[n + i], hw = f32(d[2 * n + i] / 2), hh = f32(d[3 * n + i] / 2);
      boxesOut.push(f32(cx - hw), f32(cy - hh), f32(cx + hw), f32(cy + hh));
      scoresOut.push(best);
      classOut.push(cls);
    }
  }
  return {
    boxes: Float32Array.from(boxesOut),
    scores: Float32Array.from(scoresOut),
    classIds: Int32Array.from(classOut),
  };
}

/**
 * Class-aware NMS (torchvision `batched_nms` semantics: a box is suppressed by a kept,
 * higher-scoring box of the same class whose IoU with it is > iouThreshold), then at most
 * maxDetections, best first. Returns indices into the candidates.
 */
export function nmsCandidates(
  candidates: Candidates,
  iouThreshold: number,
  maxDetections = 300,
): number[] {
  // Ultralytics caps the boxes given to NMS at 30000 by score; a no-op for N = 8400.
  const MAX_NMS = 30000;
  let { boxes, scores, classIds } = candidates;
  let index: number[] | null = null;
  if (scores.length > MAX_NMS) {
    index = stableArgsortDescending(scores).slice(0, MAX_NMS);
    boxes = Float32Array.from(index.flatMap((i) => Array.from(boxes.subarray(4 * i, 4 * i + 4))));
    scores = Float32Array.from(index.map((i) => candidates.scores[i]));
    classIds = Int32Array.from(index.map((i) => candidates.classIds[i]));
  }
  const keep = batchedNms(boxes, scores, iouThreshold, classIds).slice(0, maxDetections);
  return index ? keep.map((k) => index![k]) : keep;
}
