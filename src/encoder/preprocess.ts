/**
 * SAM's image preprocessing, equal to the official `SamPredictor.set_image`:
 *
 * 1. `ResizeLongestSide(imgSize).apply_image`: torchvision's `resize` of a PIL image, which is
 *    PIL's `Image.resize((newW, newH), BILINEAR)`. PIL resamples in two separable passes
 *    (horizontal, then vertical), each with a triangle filter whose support widens by the
 *    downscale factor (antialiasing), normalised per output pixel and rounded to 22-bit fixed
 *    point; each pass rounds and clamps to uint8. We implement that arithmetic exactly, so the
 *    resized pixels are bit-identical to PIL's.
 * 2. `Sam.preprocess`: (x - pixel_mean) / pixel_std in float32, then zero padding on the right
 *    and bottom to imgSize x imgSize, as a (3, imgSize, imgSize) CHW tensor.
 */
import type { RgbImage } from "../types.ts";

/** The official pixel statistics (Sam.pixel_mean / pixel_std), RGB. */
export const PIXEL_MEAN = [123.675, 116.28, 103.53] as const;
export const PIXEL_STD = [58.395, 57.12, 57.375] as const;

/** A tightly packed RGB image: height x width x 3 uint8, row-major. */
export interface Rgb8 {
  width: number;
  height: number;
  data: Uint8Array;
}

/**
 * ResizeLongestSide.get_preprocess_shape: the (height, width) whose longer side is
 * `longSide`, each rounded half up (Python's int(x + 0.5)).
 *
 * Throws a RangeError for a size that is not a positive integer and for an image so thin that
 * its short side would round to 0 px (e.g. 2049x1 at 1024 px): the official code would hand
 * PIL an empty size there. Callers check an image with it before any pixel work.
 */
export function getPreprocessShape(
  oldH: number,
  oldW: number,
  longSide: number,
): [number, number] {
  if (!Number.isInteger(longSide) || longSide < 1) {
    throw new RangeError(`preprocess: bad model input size ${longSide}`);
  }
  if (!Number.isInteger(oldH) || !Number.isInteger(oldW) || oldH < 1 || oldW < 1) {
    throw new RangeError(`preprocess: bad image size ${oldW}x${oldH}`);
  }
  const scale = (longSide * 1.0) / Math.max(oldH, oldW);
  const shape: [number, number] = [Math.trunc(oldH * scale + 0.5), Math.trunc(oldW * scale + 0.5)];
  if (shape[0] < 1 || shape[1] < 1) {
    throw new RangeError(
      `image ${oldW}x${oldH} is too thin: its short side would be 0 px at the model's ` +
        `${longSide} px input (the long side may be at most ${2 * longSide} times the short one)`,
    );
  }
  return shape;
}

/** Drops alpha (RGBA input) and checks the buffer size; returns packed RGB. */
export function toRgb8(image: RgbImage): Rgb8 {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`preprocess: bad image size ${width}x${height}`);
  }
  if (channels !== 3 && channels !== 4) {
    throw new Error(`preprocess: images must have 3 (RGB) or 4 (RGBA) channels, not ${channels}`);
  }
  if (data.length !== width * height * channels) {
    throw new Error(
      `preprocess: ${width}x${height}x${channels} image needs ${
        width * height * channels
      } bytes, got ${data.length}`,
    );
  }
  if (channels === 3) return { width, height, data };
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; p < data.length; p += 4, q += 3) {
    rgb[q] = data[p];
    rgb[q + 1] = data[p + 1];
    rgb[q + 2] = data[p + 2];
  }
  return { width, height, data: rgb };
}

/** PIL's fixed-point fraction bits for 8-bit resampling (32 - 8 bits of result - 2 guard). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Per output pixel along one axis: first input index, tap count, and fixed-point weights. */
interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  /** outSize x maxTaps integer weights (unused taps are zero). */
  weights: Int32Array;
  maxTaps: number;
}

/**
 * Triangle-filter taps mapping `inSize` samples onto `outSize`, the way PIL computes them:
 * the filter is stretched by the downscale factor (never shrunk), sampled at input pixel
 * centres, normalised to sum 1 in double precision, then rounded half away from zero to
 * PRECISION_BITS.
 */
function bilinearTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale; // the triangle's half-width is 1 input pixel at scale 1
  const maxTaps = Math.ceil(support) * 2 + 1;
  const invFilterScale = 1.0 / filterScale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * maxTaps);
  const w = new Float64Array(maxTaps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    // C's (int) cast truncates toward zero; the clamp makes negative starts 0 anyway.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const n = hi - lo;
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const d = Math.abs((t + lo - center + 0.5) * invFilterScale);
      w[t] = d < 1.0 ? 1.0 - d : 0.0;
      sum += w[t];
    }
    for (let t = 0; t < n; t++) {
      const v = sum !== 0 ? w[t] / sum : w[t];
      // Round half away from zero (weights are never negative for a triangle).
      weights[o * maxTaps + t] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    first[o] = lo;
    count[o] = n;
  }
  return { first, count, weights, maxTaps };
}

/** Fixed-point accumulator to uint8: drop the fraction (the HALF bias rounds), clamp. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS; // arithmetic shift, as C's on int
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL `Image.resize((outW, outH), Image.BILINEAR)` of an RGB image, bit-exact: horizontal
 * pass over the rows the vertical pass needs, rounded to uint8, then the vertical pass.
 * A pass whose size does not change is skipped, as PIL does.
 */
export function resizeBilinearPil(src: Rgb8, outW: number, outH: number): Rgb8 {
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) {
    throw new Error(`resizeBilinearPil: bad output size ${outW}x${outH}`);
  }
  const inW = src.width, inH = src.height;
  let cur = src;
  if (outW !== inW) {
    const taps = bilinearTaps(inW, outW);
    const out = new Uint8Array(outW * inH * 3);
    const { first, count, weights, maxTaps } = taps;
    for (let y = 0; y < inH; y++) {
      const rowIn = y * inW * 3, rowOut = y * outW * 3;
      for (let x = 0; x < outW; x++) {
        let r = HALF, g = HALF, b = HALF;
        const base = (first[x] + 0) * 3 + rowIn, k0 = x * maxTaps;
        for (let t = 0; t < count[x]; t++) {
          const k = weights[k0 + t], p = base + t * 3;
          r += cur.data[p] * k;
          g += cur.data[p + 1] * k;
          b += cur.data[p + 2] * k;
        }
        const q = rowOut + x * 3;
        out[q] = clip8(r);
        out[q + 1] = clip8(g);
        out[q + 2] = clip8(b);
      }
    }
    cur = { width: outW, height: inH, data: out };
  }
  if (outH !== inH) {
    const taps = bilinearTaps(inH, outH);
    const rowLen = cur.width * 3;
    const out = new Uint8Array(outH * rowLen);
    const { first, count, weights, maxTaps } = taps;
    const acc = new Int32Array(rowLen);
    for (let y = 0; y < outH; y++) {
      acc.fill(HALF);
      const k0 = y * maxTaps;
      for (let t = 0; t < count[y]; t++) {
        const k = weights[k0 + t], rowIn = (first[y] + t) * rowLen;
        for (let i = 0; i < rowLen; i++) acc[i] += cur.data[rowIn + i] * k;
      }
      const rowOut = y * rowLen;
      for (let i = 0; i < rowLen; i++) out[rowOut + i] = clip8(acc[i]);
    }
    cur = { width: cur.width, height: outH, data: out };
  }
  if (cur === src) cur = { width: src.width, height: src.height, data: src.data.slice() };
  return cur;
}

/** ResizeLongestSide(longSide).apply_image: PIL bilinear to the preprocess shape. */
export function resizeLongestSide(image: RgbImage, longSide: number): Rgb8 {
  const rgb = toRgb8(image);
  const [h, w] = getPreprocessShape(rgb.height, rgb.width, longSide);
  return resizeBilinearPil(rgb, w, h);
}

/**
 * Sam.preprocess on a resized image: per channel (x - mean) / std in float32 (as PyTorch
 * computes it on a float32 buffer), zero padded right and bottom, CHW: (3, imgSize, imgSize).
 */
export function normalizeAndPad(resized: Rgb8, imgSize: number): Float32Array {
  const { width, height, data } = resized;
  if (width > imgSize || height > imgSize) {
    throw new Error(`normalizeAndPad: ${width}x${height} image does not fit in ${imgSize}`);
  }
  const out = new Float32Array(3 * imgSize * imgSize);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = f(PIXEL_MEAN[c]), std = f(PIXEL_STD[c]);
    const plane = c * imgSize * imgSize;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        out[plane + y * imgSize + x] = f(f(data[(y * width + x) * 3 + c] - mean) / std);
      }
    }
  }
  return out;
}

/** Everything set_image derives from the pixels before the encoder runs. */
export interface Preprocessed {
  /** (3, imgSize, imgSize) CHW float32, the encoder input. */
  tensor: Float32Array;
  imgSize: number;
  /** [height, width] of the image before resizing. */
  originalSize: [number, number];
  /** [height, width] after ResizeLongestSide (the unpadded part of `tensor`). */
  inputSize: [number, number];
}

/** SamPredictor.set_image up to the encoder: resize longest side, normalise, pad. */
export function preprocessImage(image: RgbImage, imgSize: number): Preprocessed {
  const resized = resizeLongestSide(image, imgSize);
  return {
    tensor: normalizeAndPad(resized, imgSize),
    imgSize,
    originalSize: [image.height, image.width],
    inputSize: [resized.height, resized.width],
  };
}

/**
 * Decodes PNG or JPEG bytes with imagescript into RGBA pixels (alpha is ignored later).
 * Only format detection and decoding; size limits are the caller's policy.
 */
export async function decodeImageBytes(bytes: Uint8Array): Promise<RgbImage> {
  // A versioned npm: specifier, as in src/image.ts, so that mod.ts imports without our deno.json.
  // deno-lint-ignore no-import-prefix
  const { decode, Image } = await import("npm:imagescript@1.3.1");
  const decoded = await decode(bytes);
  if (!(decoded instanceof Image)) {
    throw new Error("decodeImageBytes: animated images (GIF) are not supported");
  }
  // imagescript keeps pixels as RGBA bytes, row-major.
  const data = new Uint8Array(
    decoded.bitmap.buffer,
    decoded.bitmap.byteOffset,
    decoded.bitmap.length,
  );
  return { width: decoded.width, height: decoded.height, channels: 4, data: data.slice() };
}
