/**
 * SAM's image encoder neck (ImageEncoderViT.neck), shared by every encoder family that ends in
 * it (SAM's ViT, MobileSAM's TinyViT): 1x1 conv (no bias) -> LayerNorm2d -> 3x3 conv (pad 1,
 * no bias) -> LayerNorm2d, eps 1e-6, on [s, s, C] tokens; output (1, D, s, s) NCHW.
 *
 * With f32 weights the 3x3 conv runs as Winograd F(4x4, 3x3) (kernels/conv3x3_winograd.ts:
 * 2.25x fewer multiplications than the im2col GEMM, the neck's largest single product) on a
 * filter transformed at load; under precision "f16" it stays the im2col GEMM on f16 weights.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import { conv2d } from "../kernels/conv2d.ts";
import {
  conv3x3Winograd,
  winogradFilterHost,
  winogradScratch,
} from "../kernels/conv3x3_winograd.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import type { Precision } from "../precision.ts";

/** LayerNorm2d's eps in SAM's neck. */
export const NECK_LN_EPS = 1e-6;

export interface NeckWeights {
  /** [D, C, 1, 1] */
  conv1: Tensor;
  ln1: [Tensor, Tensor];
  /** [D, D, 3, 3], or the Winograd filter [36, D, D] (neckConv2Host, f32 weights). */
  conv2: Tensor;
  ln2: [Tensor, Tensor];
}

/** Host data as an encoder uploads it, after an optional rewrite (`prepare`). */
export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

/** A rewrite of a weight's host data before its upload. */
export type HostPrepare = (data: Float32Array, shape: readonly number[]) => HostTensor;

/**
 * An encoder's weight upload: the tensor `name` of its checkpoint; `matrix`, a GEMM weight
 * (f16 under precision "f16"); `prepare`, a rewrite of the host data before the upload.
 */
export type WeightGetter = (
  name: string,
  matrix: boolean,
  prepare?: HostPrepare,
) => Tensor;

/**
 * Reads the neck's tensors by their official names (`neck.0.weight` ...) through `get`; the
 * convs are GEMM weights, the 3x3 one uploaded as neckConv2Host makes it for `precision`.
 */
export function neckWeights(get: WeightGetter, precision: Precision): NeckWeights {
  return {
    conv1: get("neck.0.weight", true),
    ln1: [get("neck.1.weight", false), get("neck.1.bias", false)],
    conv2: get("neck.2.weight", true, (data, shape) => neckConv2Host(data, shape, precision)),
    ln2: [get("neck.3.weight", false), get("neck.3.bias", false)],
  };
}

/** Does the neck's 3x3 conv run as Winograd for weights of this precision? */
export function neckWinograd(precision: Precision): boolean {
  return precision === "f32";
}

/**
 * neck.2.weight as the neck uploads it: Winograd's [36, D, D] filter under precision "f32",
 * else the checkpoint's [D, D, 3, 3] as it is.
 */
export function neckConv2Host(
  data: Float32Array,
  shape: readonly number[],
  precision: Precision,
): HostTensor {
  if (!neckWinograd(precision)) return { data, shape: [...shape] };
  const [D, C, kh, kw] = shape;
  if (shape.length !== 4 || kh !== 3 || kw !== 3) {
    throw new Error(`neck: neck.2.weight [${shape}] must be [D, C, 3, 3]`);
  }
  return { data: winogradFilterHost(data, D, C), shape: [36, D, C] };
}

/** Elements of the neck's scratch views for an s x s grid of D channels (see neckForward). */
export function neckScratch(
  s: number,
  D: number,
  precision: Precision,
): { cols: number; wino: number } {
  if (!neckWinograd(precision)) return { cols: s * s * 9 * D, wino: 0 };
  const { v, m } = winogradScratch(s, D, D);
  return { cols: v, wino: m };
}

/**
 * x: [s, s, C] tokens. `view(name, shape)` lends the scratch buffers: "a" and "b" ([s, s, D]
 * each, ping-pong; neither may be x's buffer), "cols" (the 3x3 conv's unfolded input
 * [s*s, 9D], or Winograd's transformed input) and "wino" (Winograd's products; sizes in
 * neckScratch). Returns a new (1, D, s, s) tensor owned by the caller.
 */
export function neckForward(
  ctx: GpuContext,
  x: Tensor,
  w: NeckWeights,
  view: (name: "a" | "b" | "cols" | "wino", shape: number[]) => Tensor,
): Tensor {
  const [s, , C] = x.shape;
  const D = w.conv1.shape[0];
  if (x.shape.length !== 3 || w.conv1.shape[1] !== C) {
    throw new Error(`neck: input [${x.shape}] must be [s, s, ${w.conv1.shape[1]}]`);
  }
  const N = s * s;
  const n1 = conv2d(ctx, x, "hwc", w.conv1, null, {
    stride: 1,
    padding: 0,
    out: view("a", [s, s, D]),
  });
  // LayerNorm2d over channels is layerNorm over the last dim of [s, s, D].
  const l1 = layerNorm(ctx, n1, ...w.ln1, NECK_LN_EPS, view("b", [s, s, D]));
  const wino = winogradScratch(s, D, D);
  const n2 = w.conv2.shape.length === 3
    ? conv3x3Winograd(ctx, l1, w.conv2, {
      out: view("a", [s, s, D]),
      scratchV: view("cols", [wino.v]),
      scratchM: view("wino", [wino.m]),
    })
    : conv2d(ctx, l1, "hwc", w.conv2, null, {
      stride: 1,
      padding: 1,
      out: view("a", [s, s, D]),
      scratch: view("cols", [N, 9 * D]),
    });
  const l2 = layerNorm(ctx, n2, ...w.ln2, NECK_LN_EPS, view("b", [s, s, D]));
  // [s*s, D] tokens -> (1, D, s, s) NCHW: a transpose.
  const out = emptyTensor(ctx, [1, D, s, s], "image_embeddings");
  stridedCopy(ctx, l2, { offset: 0, shape: [D, N], strides: [1, D] }, out);
  return out;
}
