/**
 * 2-D convolution as im2col + linear: the unfolded input [Hout * Wout, Cin * kh * kw] times
 * the PyTorch weight [Cout, Cin, kh, kw] viewed as [Cout, Cin * kh * kw], plus bias. The
 * output is token-major [Hout, Wout, Cout] (hwc), the layout the encoder works in.
 *
 * A 1x1, stride-1, unpadded convolution on an hwc input is already a per-token linear, so
 * it skips the unfold.
 */
import type { GpuContext } from "../gpu/context.ts";
import { numel, Tensor } from "../gpu/tensor.ts";
import { convInputDims, type ConvLayout, convOutSize, im2col } from "./im2col.ts";
import { linear } from "./linear.ts";

export type { ConvLayout } from "./im2col.ts";

export interface Conv2dOptions {
  stride: number;
  padding: number;
  /** Where to write the [Hout, Wout, Cout] result (may be a larger pooled buffer's view). */
  out?: Tensor;
  /** Scratch for the unfolded input, at least Hout * Wout * Cin * kh * kw elements. */
  scratch?: Tensor;
  /**
   * Without `scratch`, the unfolded input conv2d allocates is pushed here for the caller to
   * destroy once the work is submitted (left out, it would never be freed).
   */
  temps?: Tensor[];
}

/**
 * x: [Cin, H, W] ("chw") or [H, W, Cin] ("hwc"), a leading batch of 1 allowed; weight
 * [Cout, Cin, kh, kw]; bias [Cout] or null. Returns [Hout, Wout, Cout].
 */
export function conv2d(
  ctx: GpuContext,
  x: Tensor,
  layout: ConvLayout,
  weight: Tensor,
  bias: Tensor | null,
  opts: Conv2dOptions,
): Tensor {
  const { cin, h, w } = convInputDims(x, layout);
  if (weight.shape.length !== 4) {
    throw new Error(`conv2d: weight must be [Cout, Cin, kh, kw], got [${weight.shape}]`);
  }
  const [cout, wcin, kh, kw] = weight.shape;
  if (wcin !== cin) {
    throw new Error(`conv2d: input has ${cin} channels, weight [${weight.shape}] expects ${wcin}`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== cout)) {
    throw new Error(`conv2d: bias must be [${cout}], got [${bias.shape}]`);
  }
  const { stride, padding } = opts;
  const hout = convOutSize(h, kh, stride, padding);
  const wout = convOutSize(w, kw, stride, padding);
  const k = cin * kh * kw;
  // [Cout, Cin, kh, kw] -> [Cout, Cin * kh * kw]: the im2col column order.
  const w2 = weight.reshape([cout, k]);
  let cols: Tensor;
  if (layout === "hwc" && kh === 1 && kw === 1 && stride === 1 && padding === 0) {
    cols = x.reshape([h * w, cin]); // [H, W, Cin] -> [H * W, Cin]
  } else {
    cols = im2col(ctx, x, layout, { kh, kw, stride, padding }, opts.scratch);
    if (!opts.scratch) opts.temps?.push(cols);
  }
  const out = opts.out ? viewAs(opts.out, [hout * wout, cout]) : undefined;
  const y = linear(ctx, cols, w2, bias, { out });
  return y.reshape([hout, wout, cout]); // [Hout * Wout, Cout] -> [Hout, Wout, Cout]
}

/** A view of the first numel(shape) elements of t (t may be a larger pooled buffer). */
function viewAs(t: Tensor, shape: number[]): Tensor {
  const n = numel(shape);
  if (t.size === n) return t.reshape(shape);
  if (t.size < n) throw new Error(`conv2d: out has ${t.size} elements, need ${n}`);
  return new Tensor(t.ctx, t.buffer, shape, t.label);
}
