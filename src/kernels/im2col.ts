/**
 * im2col: unfolds the receptive fields of a 2-D convolution into rows, so the convolution
 * becomes one matrix product with the PyTorch weight [Cout, Cin, kh, kw] seen as
 * [Cout, Cin * kh * kw]. Row r = oy * Wout + ox; column j = (c * kh + ky) * kw + kx holds
 * x[c, oy * stride - padding + ky, ox * stride - padding + kx], zero outside the image.
 *
 * One shader serves both input layouts: the element (c, y, x) is read at
 * c * strideC + y * strideY + x * strideX, which is (H*W, W, 1) for "chw" and
 * (1, W*Cin, Cin) for "hwc".
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, Tensor } from "../gpu/tensor.ts";

const WG = 256;

export type ConvLayout = "chw" | "hwc";

export interface ConvGeometry {
  cin: number;
  h: number;
  w: number;
  kh: number;
  kw: number;
  stride: number;
  padding: number;
}

const IM2COL: KernelSpec = {
  name: "im2col_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P {
  n: u32, cols: u32, wout: u32, kh: u32, kw: u32, h: u32, w: u32, stride: u32,
  padding: u32, sc: u32, sy: u32, sx: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // i = row * cols + j; row = oy * wout + ox; j = (c * kh + ky) * kw + kx.
  let row = i / p.cols;
  let j = i % p.cols;
  let ox = row % p.wout;
  let oy = row / p.wout;
  let kx = j % p.kw;
  let ky = (j / p.kw) % p.kh;
  let c = j / (p.kw * p.kh);
  // Signed so that padding reaches below zero.
  let iy = i32(oy * p.stride + ky) - i32(p.padding);
  let ix = i32(ox * p.stride + kx) - i32(p.padding);
  var v = 0.0;
  if (iy >= 0 && ix >= 0 && iy < i32(p.h) && ix < i32(p.w)) {
    v = x[c * p.sc + u32(iy) * p.sy + u32(ix) * p.sx];
  }
  cols[i] = v;
}`,
};

/** Output spatial size of a convolution along one axis. */
export function convOutSize(size: number, k: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - k) / stride) + 1;
}

/** Reads (cin, h, w) from x's shape for the given layout, with clear errors. */
export function convInputDims(
  x: Tensor,
  layout: ConvLayout,
): { cin: number; h: number; w: number } {
  const s = x.shape;
  // A leading batch of 1 is accepted: (1, C, H, W) or (1, H, W, C).
  const dims = s.length === 4 && s[0] === 1 ? s.slice(1) : s;
  if (dims.length !== 3) {
    throw new Error(`conv: input must be [${layout.split("").join(", ")}] (3-D), got [${s}]`);
  }
  return layout === "chw"
    ? { cin: dims[0], h: dims[1], w: dims[2] }
    : { cin: dims[2], h: dims[0], w: dims[1] };
}

/**
 * Unfolds x ([Cin, H, W] for "chw", [H, W, Cin] for "hwc"; a leading batch of 1 is allowed)
 * into [Hout * Wout, Cin * kh * kw].
 */
export function im2col(
  ctx: GpuContext,
  x: Tensor,
  layout: ConvLayout,
  k: { kh: number; kw: number; stride: number; padding: number },
  out?: Tensor,
): Tensor {
  const { cin, h, w } = convInputDims(x, layout);
  const { kh, kw, stride, padding } = k;
  for (const [name, v] of Object.entries({ kh, kw, stride }) as [string, number][]) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`im2col: ${name} must be >= 1, got ${v}`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new Error(`im2col: padding must be a non-negative integer, got ${padding}`);
  }
  const hout = convOutSize(h, kh, stride, padding);
  const wout = convOutSize(w, kw, stride, padding);
  if (hout < 1 || wout < 1) {
    throw new Error(`im2col: kernel ${kh}x${kw} (padding ${padding}) larger than input ${h}x${w}`);
  }
  const cols = cin * kh * kw;
  const shape = [hout * wout, cols];
  const y = out ?? emptyTensor(ctx, shape, "im2col.out");
  if (y.size < hout * wout * cols) {
    throw new Error(`im2col: out has ${y.size} elements, need ${hout * wout * cols}`);
  }
  const [sc, sy, sx] = layout === "chw" ? [h * w, w, 1] : [1, w * cin, cin];
  const n = hout * wout * cols;
  const params = new Params().u32(n, cols, wout, kh, kw, h, w, stride, padding, sc, sy, sx)
    .build();
  ctx.dispatch(IM2COL, params, [x.buffer, y.buffer], grid(Math.ceil(n / WG)));
  // `out` may be a larger pooled buffer: view its first n elements.
  return new Tensor(ctx, y.buffer, shape, y.label);
}
