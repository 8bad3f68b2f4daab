/**
 * Letterboxing: fitting a photo into a detector's fixed input (640 x 640 for most YOLO
 * models) without distorting it, as Ultralytics' `LetterBox` (and YOLO-NAS's
 * longest-side rescale + centre padding) do, and the exact inverse for boxes.
 *
 * Forward, for a photo W x H into an input Wi x Hi:
 *
 *     r         = min(Wi / W, Hi / H)             (scales up as well as down)
 *     Wr, Hr    = round(W * r), round(H * r)      (Python's round: halves to even)
 *     padLeft   = floor((Wi - Wr) / 2)            (= Ultralytics' round(dw - 0.1))
 *     padTop    = floor((Hi - Hr) / 2)
 *
 * The photo is resized to Wr x Hr (bilinear, half-pixel centres, no antialiasing: OpenCV's
 * INTER_LINEAR, which Ultralytics uses) and placed at (padLeft, padTop); the rest is grey
 * 114. The odd pixel of an odd padding goes right / bottom.
 *
 * Inverse: a point x in input pixels (continuous coordinates: pixel edges at integers) is
 * at x' = (x - padLeft) / sx in the photo, with sx = Wr / W the scale the resize actually
 * applied along x (and sy = Hr / H along y). This is the exact inverse of the resize as
 * sampled; Ultralytics' `scale_boxes` divides by r on both axes instead, which differs by
 * less than half an input pixel when Wr / W != r. Boxes are then clipped to [0, W] x [0, H].
 */
import type { RgbImage } from "../types.ts";

/** The grey that fills the padding, as Ultralytics and YOLO-NAS use it. */
export const PAD_VALUE = 114;

export interface Letterbox {
  /** The photo's size. */
  srcWidth: number;
  srcHeight: number;
  /** The detector input's size. */
  dstWidth: number;
  dstHeight: number;
  /** r = min(dstWidth / srcWidth, dstHeight / srcHeight). */
  scale: number;
  /** The photo's size inside the input: round(src * r). */
  resizedWidth: number;
  resizedHeight: number;
  /** Where the resized photo starts inside the input. */
  padLeft: number;
  padTop: number;
}

/** Python 3's round(): nearest integer, halves to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The letterbox geometry of a srcWidth x srcHeight photo in a dstWidth x dstHeight input. */
export function letterboxGeometry(
  srcWidth: number,
  srcHeight: number,
  dstWidth: number,
  dstHeight: number,
): Letterbox {
  for (const [name, v] of Object.entries({ srcWidth, srcHeight, dstWidth, dstHeight })) {
    if (!Number.isInteger(v) || v <= 0) {
      throw new Error(`letterbox: ${name} must be a positive integer, got ${v}`);
    }
  }
  const scale = Math.min(dstWidth / srcWidth, dstHeight / srcHeight);
  // max(1, ...): a 1 x 5000 strip still keeps one row.
  const resizedWidth = Math.min(dstWidth, Math.max(1, roundHalfEven(srcWidth * scale)));
  const resizedHeight = Math.min(dstHeight, Math.max(1, roundHalfEven(srcHeight * scale)));
  return {
    srcWidth,
    srcHeight,
    dstWidth,
    dstHeight,
    scale,
    resizedWidth,
    resizedHeight,
    padLeft: Math.floor((dstWidth - resizedWidth) / 2),
    padTop: Math.floor((dstHeight - resizedHeight) / 2),
  };
}

/**
 * The letterboxed photo as the detector's input tensor (1, 3, dstHeight, dstWidth), RGB
 * planes. The resized pixels are rounded to 8 bits (as OpenCV's uint8 resize); with
 * `dtype` "float32" they are then divided by 255 (inputs in 0..1, as YOLOv8 and YOLO-NAS
 * exports expect), with "uint8" they are kept as bytes.
 */
export function letterboxImage(
  image: RgbImage,
  lb: Letterbox,
  dtype: "float32",
): Float32Array;
export function letterboxImage(image: RgbImage, lb: Letterbox, dtype: "uint8"): Uint8Array;
export function letterboxImage(
  image: RgbImage,
  lb: Letterbox,
  dtype: "float32" | "uint8",
): Float32Array | Uint8Array {
  const { width: w, height: h, channels: ch, data } = image;
  if (w !== lb.srcWidth || h !== lb.srcHeight) {
    throw new Error(
      `letterbox: image is ${w}x${h} but the geometry is for ${lb.srcWidth}x${lb.srcHeight}`,
    );
  }
  if (data.length !== w * h * ch) {
    throw new Error(`letterbox: ${w}x${h}x${ch} image has ${data.length} bytes`);
  }
  const W = lb.dstWidth, H = lb.dstHeight, plane = W * H;
  const bytes = new Uint8Array(3 * plane).fill(PAD_VALUE); // (3, H, W)
  // Bilinear taps per output column / row: source = (dst + 0.5) * src / resized - 0.5,
  // clamped to the image (OpenCV's INTER_LINEAR with border replication).
  const taps = (resized: number, src: number) => {
    const i0 = new Int32Array(resized), i1 = new Int32Array(resized);
    const t = new Float32Array(resized);
    const ratio = src / resized;
    for (let d = 0; d < resized; d++) {
      const s = Math.min(Math.max((d + 0.5) * ratio - 0.5, 0), src - 1);
      const f = Math.floor(s);
      i0[d] = f;
      i1[d] = Math.min(f + 1, src - 1);
      t[d] = s - f;
    }
    return { i0, i1, t };
  };
  const xs = taps(lb.resizedWidth, w), ys = taps(lb.resizedHeight, h);
  for (let yd = 0; yd < lb.resizedHeight; yd++) {
    const r0 = ys.i0[yd] * w, r1 = ys.i1[yd] * w, ty = ys.t[yd];
    const rowOut = (lb.padTop + yd) * W + lb.padLeft;
    for (let xd = 0; xd < lb.resizedWidth; xd++) {
      const c0 = xs.i0[xd], c1 = xs.i1[xd], tx = xs.t[xd];
      for (let c = 0; c < 3; c++) {
        const a = data[(r0 + c0) * ch + c], b = data[(r0 + c1) * ch + c];
        const p = data[(r1 + c0) * ch + c], q = data[(r1 + c1) * ch + c];
        const top = a + (b - a) * tx, bottom = p + (q - p) * tx;
        bytes[c * plane + rowOut + xd] = Math.round(top + (bottom - top) * ty);
      }
    }
  }
  if (dtype === "uint8") return bytes;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < out.length; i++) out[i] = bytes[i] / 255;
  return out;
}

/**
 * A box [x0, y0, x1, y1] in input pixels mapped back to the photo through the inverse
 * letterbox (see the module comment) and clipped to [0, W] x [0, H].
 */
export function boxToSource(
  box: ArrayLike<number>,
  lb: Letterbox,
): [number, number, number, number] {
  const sx = lb.resizedWidth / lb.srcWidth, sy = lb.resizedHeight / lb.srcHeight;
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return [
    clip((box[0] - lb.padLeft) / sx, lb.srcWidth),
    clip((box[1] - lb.padTop) / sy, lb.srcHeight),
    clip((box[2] - lb.padLeft) / sx, lb.srcWidth),
    clip((box[3] - lb.padTop) / sy, lb.srcHeight),
  ];
}

/** The forward map of a photo box into input pixels (no clipping): boxToSource's inverse. */
export function boxToInput(
  box: ArrayLike<number>,
  lb: Letterbox,
): [number, number, number, number] {
  const sx = lb.resizedWidth / lb.srcWidth, sy = lb.resizedHeight / lb.srcHeight;
  return [
    box[0] * sx + lb.padLeft,
    box[1] * sy + lb.padTop,
    box[2] * sx + lb.padLeft,
    box[3] * sy + lb.padTop,
  ];
}
