/**
 * SAM's image encoder neck (ImageEncoderViT.neck), shared by every encoder family that ends in
 * it (SAM's ViT, MobileSAM's TinyViT): 1x1 conv (no bias) -> LayerNorm2d -> 3x3 conv (pad 1,
 * no bias) -> LayerNorm2d, eps 1e-6, on [s, s, C] tokens; output (1, D, s, s) NCHW.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import { conv2d } from "../kernels/conv2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";

/** LayerNorm2d's eps in SAM's neck. */
export const NECK_LN_EPS = 1e-6;

export interface NeckWeights {
  /** [D, C, 1, 1] */
  conv1: Tensor;
  ln1: [Tensor, Tensor];
  /** [D, D, 3, 3] */
  conv2: Tensor;
  ln2: [Tensor, Tensor];
}

/** Reads the neck's tensors by their official names (`neck.0.weight` ...) through `get`. */
export function neckWeights(get: (name: string) => Tensor): NeckWeights {
  return {
    conv1: get("neck.0.weight"),
    ln1: [get("neck.1.weight"), get("neck.1.bias")],
    conv2: get("neck.2.weight"),
    ln2: [get("neck.3.weight"), get("neck.3.bias")],
  };
}

/**
 * x: [s, s, C] tokens. `view(name, shape)` lends the scratch buffers: "a" and "b" ([s, s, D]
 * each, ping-pong; neither may be x's buffer) and "cols" ([s*s, 9D], the 3x3 conv's unfolded
 * input). Returns a new (1, D, s, s) tensor owned by the caller.
 */
export function neckForward(
  ctx: GpuContext,
  x: Tensor,
  w: NeckWeights,
  view: (name: "a" | "b" | "cols", shape: number[]) => Tensor,
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
  const n2 = conv2d(ctx, l1, "hwc", w.conv2, null, {
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
