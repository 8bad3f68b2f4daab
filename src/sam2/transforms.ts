/**
 * SAM 2's image preprocessing (`utils/transforms.py` SAM2Transforms), on the CPU:
 *
 * 1. ToTensor: uint8 / 255 in float32, CHW.
 * 2. Resize((S, S)) on that float tensor: torchvision's tensor resize, which since 0.17 is
 *    F.interpolate(mode="bilinear", align_corners=False, antialias=True). The aspect ratio is
 *    not kept and nothing is padded.
 * 3. Normalize with the ImageNet mean / std: (x - mean) / std in float32.
 *
 * The antialiased bilinear is torch's separable CPU kernel (_upsample_bilinear2d_aa): per
 * axis, a triangle filter widened by the downscale factor (support = max(scale, 1)),
 * normalised per output pixel; the width pass first, then the height pass, each accumulated
 * in float32 in tap order with fused multiply-adds (torch's compiled loop: the float32
 * product is exact in float64, so f(t + a * b) is one FMA rounding). This reproduces the
 * fixtures' input tensors bit for bit, enlarging and shrinking. Enlarging, it equals plain bilinear. Input-independent taps are
 * built once per axis; the work is O(S^2 * taps), a few ms at 1024.
 */
import { toRgb8 } from "../encoder/preprocess.ts";
import type { RgbImage } from "../types.ts";

/** ImageNet statistics on 0-1 pixels (SAM2Transforms.mean / std). */
export const SAM2_MEAN = [0.485, 0.456, 0.406] as const;
export const SAM2_STD = [0.229, 0.224, 0.225] as const;

const f = Math.fround;

/** Per output index along one axis: first input index, tap count, float32 weights. */
interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  weights: Float32Array;
  maxTaps: number;
}

/** torch's compute_indices_weights_aa for the bilinear (triangle) filter, in its float32. */
export function antialiasTaps(inSize: number, outSize: number): AxisTaps {
  const scale = f(inSize / outSize);
  const support = scale >= 1 ? scale : 1; // interp_size / 2 * scale, interp_size 2
  const invScale = scale >= 1 ? f(1 / scale) : 1;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const center = f(scale * (i + 0.5));
    const lo = Math.max(Math.trunc(f(center - support) + 0.5), 0);
    const hi = Math.min(Math.trunc(f(center + support) + 0.5), inSize);
    const n = hi - lo;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const x = f((f(j + lo - center) + 0.5) * invScale);
      const w = Math.abs(x) < 1 ? f(1 - Math.abs(x)) : 0;
      weights[i * maxTaps + j] = w;
      total = f(total + w);
    }
    if (total !== 0) {
      for (let j = 0; j < n; j++) weights[i * maxTaps + j] = f(weights[i * maxTaps + j] / total);
    }
    first[i] = lo;
    count[i] = n;
  }
  return { first, count, weights, maxTaps };
}

/** Taps that copy (a pass whose size does not change is skipped, as torch skips it). */
function identityTaps(n: number): AxisTaps {
  return {
    first: Int32Array.from({ length: n }, (_, i) => i),
    count: new Int32Array(n).fill(1),
    weights: new Float32Array(n).fill(1),
    maxTaps: 1,
  };
}

function tapsFor(inSize: number, outSize: number): AxisTaps {
  return inSize === outSize ? identityTaps(inSize) : antialiasTaps(inSize, outSize);
}

/**
 * The height pass over `planes` planes of inH x w (row-major) to outH x w. Rows are
 * accumulated tap by tap into a Float32Array, so every step is one float32 rounding of
 * t + a * b (the product of two float32 is exact in float64): the FMA of torch's loop.
 */
function heightPass(
  src: Float32Array,
  planes: number,
  inH: number,
  w: number,
  outH: number,
): Float32Array {
  if (inH === outH) return src;
  const { first, count, weights, maxTaps } = antialiasTaps(inH, outH);
  const out = new Float32Array(planes * outH * w);
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < outH; y++) {
      const dst = out.subarray((p * outH + y) * w, (p * outH + y + 1) * w);
      const k = y * maxTaps;
      for (let j = 0; j < count[y]; j++) {
        const row = src.subarray((p * inH + first[y] + j) * w, (p * inH + first[y] + j + 1) * w);
        const wt = weights[k + j];
        if (j === 0) { for (let x = 0; x < w; x++) dst[x] = row[x] * wt; }
        else for (let x = 0; x < w; x++) dst[x] = dst[x] + row[x] * wt;
      }
    }
  }
  return out;
}

/**
 * Antialiased bilinear resize of `planes` float32 planes (planes x inH x inW, row-major) to
 * outH x outW, as torch's CPU kernel: width pass, then height pass.
 */
export function resizeBilinearAntialias(
  src: Float32Array,
  planes: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array {
  if (src.length !== planes * inH * inW) {
    throw new Error(`resizeBilinearAntialias: ${src.length} values for ${planes}x${inH}x${inW}`);
  }
  for (const v of [outH, outW]) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`resizeBilinearAntialias: bad size ${v}`);
  }
  let cur = src;
  if (outW !== inW) {
    const { first, count, weights, maxTaps } = antialiasTaps(inW, outW);
    cur = new Float32Array(planes * inH * outW);
    for (let r = 0; r < planes * inH; r++) {
      const row = r * inW;
      for (let x = 0; x < outW; x++) {
        const k = x * maxTaps, base = row + first[x];
        let t = f(src[base] * weights[k]);
        for (let j = 1; j < count[x]; j++) t = f(t + src[base + j] * weights[k + j]);
        cur[r * outW + x] = t;
      }
    }
  }
  const out = heightPass(cur, planes, inH, outW, outH);
  return out === src ? src.slice() : out;
}

/** x / 255 in float32 for every byte (ToTensor's division). */
const DIV255 = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * SAM2Transforms on an RGB(A) image (alpha ignored): the (3, S, S) float32 CHW tensor the
 * image encoder takes. The width pass reads the interleaved bytes directly (ToTensor's
 * x / 255 by table), so no full-size float copy of the photo is made.
 */
export function sam2Transform(image: RgbImage, size: number): Float32Array {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`sam2Transform: bad size ${size}`);
  const rgb = toRgb8(image);
  const { width: W, height: H, data } = rgb;
  // Width pass: HWC uint8 -> CHW float32 planes of H x size.
  const { first, count, weights, maxTaps } = tapsFor(W, size);
  const wide = new Float32Array(3 * H * size);
  const planar = [new Float32Array(W), new Float32Array(W), new Float32Array(W)];
  for (let y = 0; y < H; y++) {
    const rowIn = y * W * 3;
    for (let x = 0; x < W; x++) {
      planar[0][x] = DIV255[data[rowIn + 3 * x]];
      planar[1][x] = DIV255[data[rowIn + 3 * x + 1]];
      planar[2][x] = DIV255[data[rowIn + 3 * x + 2]];
    }
    for (let c = 0; c < 3; c++) {
      const src = planar[c], o = (c * H + y) * size;
      for (let x = 0; x < size; x++) {
        const k = x * maxTaps, base = first[x], n = count[x];
        let t = f(src[base] * weights[k]);
        for (let j = 1; j < n; j++) t = f(t + src[base + j] * weights[k + j]);
        wide[o + x] = t;
      }
    }
  }
  const out = heightPass(wide, 3, H, size, size);
  const n = size * size;
  for (let c = 0; c < 3; c++) {
    const mean = f(SAM2_MEAN[c]), std = f(SAM2_STD[c]);
    for (let i = c * n; i < (c + 1) * n; i++) out[i] = f(f(out[i] - mean) / std);
  }
  return out;
}
