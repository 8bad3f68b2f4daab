/**
 * Prompt geometry as SAM's ResizeLongestSide (segment_anything/utils/transforms.py): the
 * resized image size, and original-image coordinates mapped into the resized input frame.
 * Also the validation of a prompt before anything reaches the GPU.
 */
import type { FramePrompt } from "./prompt_encoder.ts";

/** A prompt in ORIGINAL image pixels (x right, y down), as the public `Prompt`. */
export interface DecoderPrompt {
  /** Clicks, [x, y] each. */
  points?: ReadonlyArray<readonly [number, number]>;
  /** One per point: 1 foreground, 0 background (-1: a padding point, ignored as SAM does). */
  labels?: readonly number[];
  /** [x0, y0, x1, y1]. */
  box?: readonly [number, number, number, number];
  /** Low-res logits of an earlier prediction: 4s x 4s values (256 x 256 for the real models). */
  maskInput?: Float32Array;
  /** Three masks (tokens 1..3) or one (token 0); default: see `defaultMultimask`. */
  multimask?: boolean;
}

/**
 * ResizeLongestSide.get_preprocess_shape: [newH, newW] with the long side = `longSide`,
 * rounded as int(x + 0.5) in float64 like Python.
 */
export function preprocessShape(h: number, w: number, longSide: number): [number, number] {
  const scale = longSide * 1.0 / Math.max(h, w);
  return [Math.trunc(h * scale + 0.5), Math.trunc(w * scale + 0.5)];
}

/** SAM's guidance: several masks for an ambiguous prompt (no box and at most one point). */
export function defaultMultimask(p: DecoderPrompt): boolean {
  return !p.box && (p.points?.length ?? 0) <= 1;
}

function finite(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** How far outside the image a point or box corner may lie, as a fraction of the long side. */
export const COORD_MARGIN = 0.25;

/**
 * Checks a prompt and maps it to the resized input frame (apply_coords / apply_boxes:
 * new = old * (new_side / old_side) in float64, then float32 as torch.as_tensor does).
 * Throws a RangeError naming the problem (prompt `index` in a batch).
 */
export function toFramePrompt(
  p: DecoderPrompt,
  originalSize: readonly [number, number],
  imgSize: number,
  maskSide: number,
  index = 0,
): FramePrompt {
  const where = `prompt ${index}`;
  const [h, w] = originalSize;
  if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
    throw new RangeError(`decoder: original size must be two positive integers, got [${h}, ${w}]`);
  }
  const [newH, newW] = preprocessShape(h, w, imgSize);
  const sx = newW / w, sy = newH / h;
  const out: FramePrompt = {};
  const points = p.points ?? [];
  // Labels default to foreground, one per point.
  const labels = p.labels ?? points.map(() => 1);
  // SAM itself takes any coordinate; one far outside the photo is a caller's mistake.
  const margin = COORD_MARGIN * Math.max(h, w);
  const inRange = (x: number, y: number) =>
    x >= -margin && x <= w + margin && y >= -margin && y <= h + margin;
  if (points.length !== labels.length) {
    throw new RangeError(
      `decoder: ${where} has ${points.length} points and ${labels.length} labels; need one label per point`,
    );
  }
  if (points.length > 0) {
    const coords = new Float32Array(2 * points.length);
    points.forEach((pt, i) => {
      if (!Array.isArray(pt) && !(pt && typeof pt === "object" && "length" in pt)) {
        throw new RangeError(`decoder: ${where} point ${i} is not an [x, y] pair`);
      }
      if (pt.length !== 2 || !finite(pt[0]) || !finite(pt[1])) {
        throw new RangeError(
          `decoder: ${where} point ${i} must be two finite numbers, got [${pt.join(", ")}]`,
        );
      }
      if (!inRange(pt[0], pt[1])) {
        throw new RangeError(
          `decoder: ${where} point ${i} [${pt.join(", ")}] lies outside the ${w}x${h} image ` +
            `(more than ${COORD_MARGIN} of its long side beyond an edge)`,
        );
      }
      coords[2 * i] = pt[0] * sx;
      coords[2 * i + 1] = pt[1] * sy;
    });
    labels.forEach((l, i) => {
      if (l !== 0 && l !== 1 && l !== -1) {
        throw new RangeError(
          `decoder: ${where} label ${i} is ${l}; labels are 1 (foreground), 0 (background) or -1 (padding)`,
        );
      }
    });
    out.coords = coords;
    out.labels = Int32Array.from(labels);
  }
  if (p.box !== undefined) {
    const b = p.box;
    if (!b || b.length !== 4 || !b.every(finite)) {
      throw new RangeError(
        `decoder: ${where} box must be four finite numbers [x0, y0, x1, y1], got ${
          JSON.stringify(b)
        }`,
      );
    }
    if (b[2] < b[0] || b[3] < b[1]) {
      throw new RangeError(
        `decoder: ${where} box needs x0 <= x1 and y0 <= y1, got [${b.join(", ")}]`,
      );
    }
    if (!inRange(b[0], b[1]) || !inRange(b[2], b[3])) {
      throw new RangeError(
        `decoder: ${where} box [${b.join(", ")}] lies outside the ${w}x${h} image ` +
          `(more than ${COORD_MARGIN} of its long side beyond an edge)`,
      );
    }
    out.box = Float32Array.from([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy]);
  }
  if (p.maskInput !== undefined) {
    const m = p.maskInput;
    if (!(m instanceof Float32Array) || m.length !== maskSide * maskSide) {
      throw new RangeError(
        `decoder: ${where} maskInput must be a Float32Array of ${maskSide}x${maskSide} low-res logits, got ${
          m instanceof Float32Array ? `${m.length} values` : typeof m
        }`,
      );
    }
    for (let i = 0; i < m.length; i++) {
      if (!Number.isFinite(m[i])) {
        throw new RangeError(`decoder: ${where} maskInput[${i}] is ${m[i]}, not finite`);
      }
    }
  }
  return out;
}
