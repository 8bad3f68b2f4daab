/**
 * ConvTranspose2d with kernel 2x2 and stride 2 (SAM's output upscaling), token-major:
 * x [B, H, W, Cin] -> y [B, 2H, 2W, Cout], optionally followed by GELU (exact erf form).
 *
 * With kernel == stride the output pixels do not overlap:
 *   y[b, 2i+di, 2j+dj, co] = bias[co] + sum_ci x[b, i, j, ci] * w[ci, co, di, dj]
 * PyTorch stores the weight as [Cin, Cout, 2, 2], so w[ci, co, :, :] is one vec4: each
 * invocation of the direct kernel computes the four outputs (di, dj) of one (b, i, j, co).
 *
 * For real sizes the GEMM form is faster: the weight repacked once as [(di, dj, co), ci] =
 * [4 Cout, Cin] makes the whole layer one tiled linear (bias and GELU fused) giving
 * (b, i, j, di, dj, co), and one strided copy puts the pixels in place (a pixel shuffle).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { linear } from "./linear.ts";
import { stridedCopy } from "./strided_copy.ts";

const WG = 64;

/** erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26); WGSL has no erf. */
export const WGSL_ERF = /* wgsl */ `
fn erf_f32(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let r = 1.0 - poly * exp(-a * a);
  return select(r, -r, x < 0.0);
}
fn gelu_f32(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752)); }
`;

function spec(gelu: boolean): KernelSpec {
  return {
    name: gelu ? "conv_transpose2d_k2s2_gelu_f32" : "conv_transpose2d_k2s2_f32",
    bindings: ["uniform", "read", "read", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, h: u32, w: u32, cin: u32, cout: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${WGSL_ERF}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // One invocation per (b, i, j, co); n = B * H * W * Cout.
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= p.n) { return; }
  let co = idx % p.cout;
  let pix = idx / p.cout; // (b * H + i) * W + j
  let j = pix % p.w;
  let bi = pix / p.w; // b * H + i
  var acc = vec4<f32>(0.0);
  let xrow = pix * p.cin;
  for (var ci = 0u; ci < p.cin; ci++) {
    acc += x[xrow + ci] * wt[ci * p.cout + co];
  }
  acc += vec4<f32>(bias[co]);
  ${
      gelu
        ? "acc = vec4<f32>(gelu_f32(acc.x), gelu_f32(acc.y), gelu_f32(acc.z), gelu_f32(acc.w));"
        : ""
    }
  // acc = (di, dj) = (0,0), (0,1), (1,0), (1,1); output row 2i+di of image b is 2*(b*H+i)+di.
  let w2 = 2u * p.w;
  let top = ((2u * bi) * w2 + 2u * j) * p.cout + co;
  let bottom = top + w2 * p.cout;
  y[top] = acc.x;
  y[top + p.cout] = acc.y;
  y[bottom] = acc.z;
  y[bottom + p.cout] = acc.w;
}`,
  };
}

const PLAIN = spec(false);
const WITH_GELU = spec(true);

/**
 * y = act(conv_transpose2d(x, weight, bias, kernel 2, stride 2)).
 * x: [B, H, W, Cin] (or [H, W, Cin]), weight: [Cin, Cout, 2, 2] (PyTorch), bias: [Cout].
 * Returns [B, 2H, 2W, Cout] (or [2H, 2W, Cout]).
 */
export function convTranspose2d(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor,
  opts: { activation?: "none" | "gelu"; out?: Tensor } = {},
): Tensor {
  if (x.shape.length !== 3 && x.shape.length !== 4) {
    throw new Error(`convTranspose2d: x must be [B, H, W, Cin] or [H, W, Cin], got [${x.shape}]`);
  }
  const [b, h, w, cin] = x.shape.length === 4 ? x.shape : [1, ...x.shape];
  const ws = weight.shape;
  if (ws.length !== 4 || ws[0] !== cin || ws[2] !== 2 || ws[3] !== 2) {
    throw new Error(
      `convTranspose2d: weight must be [Cin=${cin}, Cout, 2, 2] (kernel 2, stride 2), got [${ws}]`,
    );
  }
  const cout = ws[1];
  if (bias.size !== cout) {
    throw new Error(`convTranspose2d: bias has ${bias.size} elements, need Cout=${cout}`);
  }
  const outShape = x.shape.length === 4 ? [b, 2 * h, 2 * w, cout] : [2 * h, 2 * w, cout];
  const y = opts.out ?? emptyTensor(ctx, outShape, "conv_transpose2d.out");
  if (y.size !== b * 4 * h * w * cout) {
    throw new Error(`convTranspose2d: out has ${y.size} elements, need [${outShape}]`);
  }
  const n = b * h * w * cout;
  const params = new Params().u32(n, h, w, cin, cout).build();
  const kernel = opts.activation === "gelu" ? WITH_GELU : PLAIN;
  ctx.dispatch(
    kernel,
    params,
    [x.buffer, weight.buffer, bias.buffer, y.buffer],
    grid(Math.ceil(n / WG)),
  );
  return y;
}

/** A ConvTranspose2d (2x2, stride 2) weight repacked for convTranspose2dGemm. */
export interface PackedConvTranspose2d {
  /** [4 Cout, Cin]: row (di * 2 + dj) * Cout + co holds w[:, co, di, dj]. */
  weight: Tensor;
  /** [4 Cout]: the bias repeated for each (di, dj). */
  bias: Tensor;
  cin: number;
  cout: number;
}

/** Repacks a PyTorch ConvTranspose2d weight [Cin, Cout, 2, 2] and bias [Cout] (host arrays). */
export function packConvTranspose2d(
  ctx: GpuContext,
  weight: Float32Array,
  bias: Float32Array,
  cin: number,
  cout: number,
  label = "conv_transpose2d",
): PackedConvTranspose2d {
  if (weight.length !== cin * cout * 4 || bias.length !== cout) {
    throw new Error(
      `packConvTranspose2d: need weight [${cin}, ${cout}, 2, 2] and bias [${cout}], got ` +
        `${weight.length} and ${bias.length} values`,
    );
  }
  const w = new Float32Array(4 * cout * cin);
  const b = new Float32Array(4 * cout);
  for (let k = 0; k < 4; k++) {
    for (let co = 0; co < cout; co++) {
      const row = k * cout + co;
      for (let ci = 0; ci < cin; ci++) w[row * cin + ci] = weight[(ci * cout + co) * 4 + k];
      b[row] = bias[co];
    }
  }
  return {
    weight: tensorFrom(ctx, w, [4 * cout, cin], `${label}.packed_weight`),
    bias: tensorFrom(ctx, b, [4 * cout], `${label}.packed_bias`),
    cin,
    cout,
  };
}

/**
 * The same layer as convTranspose2d as a GEMM plus a pixel shuffle: x [B, H, W, Cin] (or
 * [H, W, Cin]) -> [B, 2H, 2W, Cout] (or [2H, 2W, Cout]). The GEMM's output is a temporary,
 * destroyed after submit by the caller through `temps` when given.
 */
export function convTranspose2dGemm(
  ctx: GpuContext,
  x: Tensor,
  packed: PackedConvTranspose2d,
  opts: {
    activation?: "none" | "gelu";
    temps?: Tensor[];
    /** "blocks": skip the shuffle and return the GEMM output [B, H, W, 2, 2, Cout]. */
    pixelOrder?: "image" | "blocks";
  } = {},
): Tensor {
  if (x.shape.length !== 3 && x.shape.length !== 4) {
    throw new Error(
      `convTranspose2dGemm: x must be [B, H, W, Cin] or [H, W, Cin], got [${x.shape}]`,
    );
  }
  const [b, h, w, cin] = x.shape.length === 4 ? x.shape : [1, ...x.shape];
  if (cin !== packed.cin) {
    throw new Error(`convTranspose2dGemm: x has ${cin} channels, the weight expects ${packed.cin}`);
  }
  const cout = packed.cout;
  // (b, i, j) rows -> (b, i, j, di, dj, co)
  const y = linear(ctx, x, packed.weight, packed.bias, { activation: opts.activation ?? "none" });
  if (opts.pixelOrder === "blocks") return y.reshape([b, h, w, 2, 2, cout]);
  if (opts.temps) opts.temps.push(y);
  // Pixel shuffle: output (b*H + i, di, j, dj*Cout + co) reads y at
  // (b*H + i) * W*4*Cout + j * 4*Cout + di * 2*Cout + dj*Cout + co.
  const out = stridedCopy(ctx, y, {
    offset: 0,
    shape: [b * h, 2, w, 2 * cout],
    strides: [w * 4 * cout, 2 * cout, 4 * cout, 1],
  });
  const outShape = x.shape.length === 4 ? [b, 2 * h, 2 * w, cout] : [2 * h, 2 * w, cout];
  return out.reshape(outShape);
}
