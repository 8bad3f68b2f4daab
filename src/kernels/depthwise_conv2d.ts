/**
 * Depthwise 2-D convolution (groups = channels, as TinyViT's 3x3 `Conv2d_BN(..., groups=C)`)
 * on token-major [H, W, C] maps: out[oy, ox, c] = act(bias[c] + sum over (ky, kx) of
 * x[oy * stride - padding + ky, ox * stride - padding + kx, c] * weight[c, 0, ky, kx]), zero
 * outside the map. One thread per output element (a vec4 of channels where C % 4 == 0); the
 * weight stays in PyTorch layout [C, 1, k, k].
 *
 * Variants: activation none / gelu (exact erf, fused after the bias), scalar / vec4.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { ACTIVATION_WGSL, activationExpr } from "./activation.ts";
import { convOutSize } from "./im2col.ts";

const WG = 256;

export type DepthwiseActivation = "none" | "gelu";

function depthwiseSpec(act: DepthwiseActivation, v4: boolean): KernelSpec {
  const elem = v4 ? "vec4<f32>" : "f32";
  // The four channels' taps of one (ky, kx), gathered from the [C, 1, k, k] weight.
  const tap = v4
    ? `vec4<f32>(wt[(ch * 4u) * kk + t], wt[(ch * 4u + 1u) * kk + t],
        wt[(ch * 4u + 2u) * kk + t], wt[(ch * 4u + 3u) * kk + t])`
    : `wt[ch * kk + t]`;
  const b = v4
    ? `vec4<f32>(bias[ch * 4u], bias[ch * 4u + 1u], bias[ch * 4u + 2u], bias[ch * 4u + 3u])`
    : `bias[ch]`;
  const applied = act === "none"
    ? "acc"
    : v4
    ? `vec4<f32>(${[0, 1, 2, 3].map((e) => activationExpr(act, `acc[${e}]`)).join(", ")})`
    : activationExpr(act, "acc");
  return {
    name: `depthwise_conv2d${act === "none" ? "" : `_${act}`}${v4 ? "_v4" : ""}_f32`,
    bindings: ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
${act === "none" ? "" : ACTIVATION_WGSL}
struct P { n: u32, c: u32, h: u32, w: u32, wout: u32, k: u32, stride: u32, padding: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${elem}>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<${elem}>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = (oy * wout + ox) * c + ch (c, ch in vec4s for the vec4 variant).
  let ch = i % p.c;
  let t0 = i / p.c;
  let ox = t0 % p.wout;
  let oy = t0 / p.wout;
  let kk = p.k * p.k;
  var acc = ${b};
  for (var ky = 0u; ky < p.k; ky++) {
    // Signed so that padding reaches below zero.
    let iy = i32(oy * p.stride + ky) - i32(p.padding);
    if (iy < 0 || iy >= i32(p.h)) { continue; }
    for (var kx = 0u; kx < p.k; kx++) {
      let ix = i32(ox * p.stride + kx) - i32(p.padding);
      if (ix < 0 || ix >= i32(p.w)) { continue; }
      let t = ky * p.k + kx;
      acc += x[(u32(iy) * p.w + u32(ix)) * p.c + ch] * ${tap};
    }
  }
  out[i] = ${applied};
}`,
  };
}

const SPECS = new Map<string, KernelSpec>();

function specFor(act: DepthwiseActivation, v4: boolean): KernelSpec {
  const key = `${act}/${v4}`;
  let spec = SPECS.get(key);
  if (!spec) {
    spec = depthwiseSpec(act, v4);
    SPECS.set(key, spec);
  }
  return spec;
}

export interface DepthwiseConv2dOptions {
  stride: number;
  padding: number;
  activation?: DepthwiseActivation;
  /** Where to write [Hout, Wout, C] (exactly that many elements; must not alias x). */
  out?: Tensor;
}

/**
 * x: [H, W, C] (a leading batch of 1 allowed); weight [C, 1, k, k]; bias [C].
 * Returns [Hout, Wout, C].
 */
export function depthwiseConv2d(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  opts: DepthwiseConv2dOptions,
): Tensor {
  const s = x.shape;
  const dims = s.length === 4 && s[0] === 1 ? s.slice(1) : s;
  if (dims.length !== 3) throw new Error(`depthwiseConv2d: x must be [H, W, C], got [${s}]`);
  const [h, w, c] = dims;
  if (weight.shape.length !== 4 || weight.shape[0] !== c || weight.shape[1] !== 1) {
    throw new Error(`depthwiseConv2d: weight must be [${c}, 1, k, k], got [${weight.shape}]`);
  }
  const [, , k, kw] = weight.shape;
  if (k !== kw) throw new Error(`depthwiseConv2d: kernel ${k}x${kw} must be square`);
  if (bias.size !== c) {
    throw new Error(`depthwiseConv2d: bias has ${bias.size} elements, need ${c}`);
  }
  const { stride, padding } = opts;
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`depthwiseConv2d: stride must be a positive integer, got ${stride}`);
  }
  if (!Number.isInteger(padding) || padding < 0 || padding >= k) {
    throw new Error(`depthwiseConv2d: padding must be an integer in [0, ${k}), got ${padding}`);
  }
  const hout = convOutSize(h, k, stride, padding);
  const wout = convOutSize(w, k, stride, padding);
  if (hout < 1 || wout < 1) {
    throw new Error(`depthwiseConv2d: kernel ${k}x${k} larger than the padded ${h}x${w} input`);
  }
  const shape = [hout, wout, c];
  const n = hout * wout * c;
  const y = opts.out ?? emptyTensor(ctx, shape, "depthwise_conv2d.out");
  if (y.size !== n) throw new Error(`depthwiseConv2d: out has ${y.size} elements, need [${shape}]`);
  if ([x, weight, bias].some((t) => t.buffer === y.buffer)) {
    throw new Error("depthwiseConv2d: out must not share a buffer with x, weight or bias");
  }
  const v4 = c % 4 === 0;
  const lanes = v4 ? n / 4 : n;
  const params = new Params()
    .u32(lanes, v4 ? c / 4 : c, h, w, wout, k, stride, padding)
    .build();
  ctx.dispatch(
    specFor(opts.activation ?? "none", v4),
    params,
    [x.buffer, weight.buffer, bias.buffer, y.buffer],
    grid(Math.ceil(lanes / WG)),
  );
  return y.reshape(shape);
}
