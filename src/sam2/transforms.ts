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

/**
 * Antialiased bilinear resize of `planes` float32 planes (planes x inH x inW, row-major) to
 * outH x outW, as torch's CPU kernel: width pass, then height pass (a pass whose size does
 * not change is skipped, as torch does).
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
  let cur = src, w = inW;
  if (outW !== inW) {
    const { first, count, weights, maxTaps } = antialiasTaps(inW, outW);
    const out = new Float32Array(planes * inH * outW);
    for (let r = 0; r < planes * inH; r++) {
      const row = r * inW;
      for (let x = 0; x < outW; x++) {
        const k = x * maxTaps, base = row + first[x];
        let t = f(cur[base] * weights[k]);
        for (let j = 1; j < count[x]; j++) t = f(t + cur[base + j] * weights[k + j]);
        out[r * outW + x] = t;
      }
    }
    cur = out;
    w = outW;
  }
  if (outH !== inH) {
    const { first, count, weights, maxTaps } = antialiasTaps(inH, outH);
    const out = new Float32Array(planes * outH * w);
    for (let p = 0; p < planes; p++) {
      const plane = p * inH * w;
      for (let y = 0; y < outH; y++) {
        const k = y * maxTaps, o = (p * outH + y) * w;
        for (let x = 0; x < w; x++) {
          const base = plane + first[y] * w + x;
          let t = f(cur[base] * weights[k]);
          for (let j = 1; j < count[y]; j++) t = f(t + cur[base + j * w] * weights[k + j]);
          out[o + x] = t;
        }
      }
    }
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}

/**
 * SAM2Transforms on an RGB(A) image (alpha ignored): the (3, S, S) float32 CHW tensor the
 * image encoder takes.
 */
export function sam2Transform(image: RgbImage, size: number): Float32Array {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`sam2Transform: bad size ${size}`);
  const rgb = toRgb8(image);
  const { width: W, height: H, data } = rgb;
  // ToTensor: HWC uint8 -> CHW float32 / 255.
  const chw = new Float32Array(3 * H * W);
  for (let i = 0, n = H * W; i < n; i++) {
    chw[i] = f(data[3 * i] / 255);
    chw[n + i] = f(data[3 * i + 1] / 255);
    chw[2 * n + i] = f(data[3 * i + 2] / 255);
  }
  const out = resizeBilinearAntialias(chw, 3, H, W, size, size);
  const n = size * size;
  for (let c = 0; c < 3; c++) {
    const mean = f(SAM2_MEAN[c]), std = f(SAM2_STD[c]);
    for (let i = c * n; i < (c + 1) * n; i++) out[i] = f(f(out[i] - mean) / std);
  }
  return out;
}
