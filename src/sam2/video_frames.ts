/**
 * SAM 2's video frame preprocessing (`utils/misc.py` `_load_img_as_tensor`), which differs
 * from the image predictor's SAM2Transforms: the uint8 frame is resized to S x S by PIL's
 * `Image.resize((S, S))` (default filter bicubic, on uint8 with PIL's fixed-point
 * arithmetic), then / 255 in float64 stored as float32, minus the ImageNet mean, divided by
 * the std, in float32.
 *
 * PIL's resample (Resample.c) is separable, width pass first, each pass rounding to uint8:
 * per output index, center = (i + 0.5) * scale, the bicubic kernel (a = -0.5) widened by
 * max(scale, 1) over the input indices [trunc(center - support + 0.5), trunc(center +
 * support + 0.5)), weights normalised to sum 1 in float64, then turned into 22-bit fixed
 * point (rounded half away from zero); the sum starts at half an LSB and is clipped to
 * [0, 255] after the shift.
 */
import { toRgb8 } from "../encoder/preprocess.ts";
import type { RgbImage } from "../types.ts";
import { SAM2_MEAN, SAM2_STD } from "./transforms.ts";

const PRECISION_BITS = 32 - 8 - 2;
const f = Math.fround;

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  first: Int32Array;
  count: Int32Array;
  /** [out, ksize] fixed-point weights. */
  k: Int32Array;
  ksize: number;
}

/** PIL's precompute_coeffs + normalize_coeffs_8bpc for one axis. */
function coeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale; // bicubic support 2
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), count = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      const s = v * (1 << PRECISION_BITS);
      k[o * ksize + x] = v < 0 ? Math.trunc(-0.5 + s) : Math.trunc(0.5 + s);
    }
    first[o] = xmin;
    count[o] = xmax;
  }
  return { first, count, k, ksize };
}

function clip8(v: number): number {
  if (v >= 255 << PRECISION_BITS) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** PIL `Image.resize((outW, outH))` with BICUBIC on an RGB uint8 image; returns (H, W, 3). */
export function pilBicubicResize(image: RgbImage, outW: number, outH: number): Uint8Array {
  const rgb = toRgb8(image).data;
  const { width: W, height: H } = image;
  // Width pass: [H, outW, 3].
  const cx = coeffs(W, outW);
  const tmp = new Uint8Array(H * outW * 3);
  for (let y = 0; y < H; y++) {
    for (let o = 0; o < outW; o++) {
      const x0 = cx.first[o], n = cx.count[o], kb = o * cx.ksize;
      for (let c = 0; c < 3; c++) {
        let ss = 1 << (PRECISION_BITS - 1);
        for (let t = 0; t < n; t++) ss += rgb[(y * W + x0 + t) * 3 + c] * cx.k[kb + t];
        tmp[(y * outW + o) * 3 + c] = clip8(ss);
      }
    }
  }
  // Height pass: [outH, outW, 3].
  const cy = coeffs(H, outH);
  const out = new Uint8Array(outH * outW * 3);
  for (let o = 0; o < outH; o++) {
    const y0 = cy.first[o], n = cy.count[o], kb = o * cy.ksize;
    for (let x = 0; x < outW * 3; x++) {
      let ss = 1 << (PRECISION_BITS - 1);
      for (let t = 0; t < n; t++) ss += tmp[(y0 + t) * outW * 3 + x] * cy.k[kb + t];
      out[o * outW * 3 + x] = clip8(ss);
    }
  }
  return out;
}

/** A video frame as the official video predictor feeds it: (3, S, S) float32, normalised. */
export function videoFrameTensor(image: RgbImage, S: number): Float32Array {
  const resized = pilBicubicResize(image, S, S);
  const out = new Float32Array(3 * S * S);
  for (let c = 0; c < 3; c++) {
    const mean = f(SAM2_MEAN[c]), std = f(SAM2_STD[c]);
    for (let p = 0; p < S * S; p++) {
      out[c * S * S + p] = f(f(f(resized[p * 3 + c] / 255) - mean) / std);
    }
  }
  return out;
}
