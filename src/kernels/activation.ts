/**
 * Elementwise activations: GELU (exact erf form, as torch's nn.GELU()) and ReLU.
 *
 * WGSL has no erf, so `ACTIVATION_WGSL` carries one, shared with the fused linear epilogue:
 * - |z| < 1: erf(z) = z * Q(z^2), Q the Maclaurin series of erf cut after 12 terms
 *   (truncation error < 1e-10 on |z| < 1);
 * - |z| >= 1: erfc(z) = exp(-z^2) * P(t), t = 1 / (1 + z/2), P a degree-9 polynomial fitted
 *   here (weighted least squares on Chebyshev nodes, relative error 7e-10 in float64 on
 *   z in [1, 10]); exp(-z^2) is split as exp(-zh^2) * exp(-(z - zh)(z + zh)) with zh = z
 *   cut to 12 mantissa bits (zh^2 is exact), so large z loses no accuracy to rounding z^2.
 * Evaluated in float32: erf within ~2e-7 relative, erfc within ~5e-7 relative. GELU uses
 * erfc for negative x, so gelu(x) for x << 0 (tiny values) keeps its relative accuracy
 * (2e-5 at x = -12, the limit set by rounding x / sqrt(2) to float32); measured on llvmpipe,
 * |gelu - float64| <= 2.4e-7 on [-12, 12].
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

export type Activation = "none" | "gelu" | "relu";

/** WGSL functions `erf_f32`, `erfc_pos_f32`, `gelu_f32`, `relu_f32`, `activation_<kind>`. */
export const ACTIVATION_WGSL = /* wgsl */ `
// erf on |z| < 1 from its Maclaurin series, Horner in z^2.
fn erf_small_f32(z: f32) -> f32 {
  let z2 = z * z;
  var q = -1.2290555240213052e-09;
  q = q * z2 + 1.4807192805221803e-08;
  q = q * z2 - 1.6365844146548625e-07;
  q = q * z2 + 1.6462114444948384e-06;
  q = q * z2 - 1.4925650248187594e-05;
  q = q * z2 + 0.00012055332626914605;
  q = q * z2 - 0.0008548327023163438;
  q = q * z2 + 0.005223977845162153;
  q = q * z2 - 0.02686617150902748;
  q = q * z2 + 0.11283791810274124;
  q = q * z2 - 0.37612637877464294;
  q = q * z2 + 1.128379225730896;
  return z * q;
}

// erfc(z) for z >= 0.
fn erfc_pos_f32(z: f32) -> f32 {
  if (z < 1.0) { return 1.0 - erf_small_f32(z); }
  let t = 1.0 / (1.0 + 0.5 * z);
  var p = -0.0645255520939827;
  p = p * t + 0.3156639337539673;
  p = p * t - 0.5555782914161682;
  p = p * t + 0.3575119972229004;
  p = p * t - 0.08125431090593338;
  p = p * t + 0.22589655220508575;
  p = p * t + 0.23699799180030823;
  p = p * t + 0.2833343744277954;
  p = p * t + 0.28200486302375793;
  p = p * t + 2.8556346478580963e-06;
  let zh = bitcast<f32>(bitcast<u32>(z) & 0xfffff000u);
  return exp(-zh * zh) * exp(-(z - zh) * (z + zh)) * p;
}

fn erf_f32(z: f32) -> f32 {
  let a = abs(z);
  var r: f32;
  if (a < 1.0) { r = erf_small_f32(a); } else { r = 1.0 - erfc_pos_f32(a); }
  return select(r, -r, z < 0.0);
}

// torch nn.GELU(): 0.5 x (1 + erf(x / sqrt(2))) = 0.5 x erfc(-x / sqrt(2)).
fn gelu_f32(x: f32) -> f32 {
  let z = x * 0.7071067811865476;
  if (x < 0.0) { return 0.5 * x * erfc_pos_f32(-z); }
  return x - 0.5 * x * erfc_pos_f32(z);
}

fn relu_f32(x: f32) -> f32 { return max(x, 0.0); }
`;

/** The WGSL expression applying `kind` to the f32 expression `v`. */
export function activationExpr(kind: Activation, v: string): string {
  return kind === "gelu" ? `gelu_f32(${v})` : kind === "relu" ? `relu_f32(${v})` : v;
}

const WG = 256;

/**
 * An elementwise kernel out[i] = expr(x[i]), with an f32 uniform `p.s` the expression may use
 * (mul.ts's scale); `prelude` holds the WGSL functions it calls.
 */
export function unarySpec(name: string, expr: (x: string) => string, prelude = ""): KernelSpec {
  return {
    name,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
${prelude}
struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  out[i] = ${expr("x[i]")};
}`,
  };
}

/** Dispatches a `unarySpec` kernel over x into a new tensor of x's shape or `out`. */
export function unary(
  ctx: GpuContext,
  spec: KernelSpec,
  op: string,
  x: Tensor,
  s: number,
  out?: Tensor,
): Tensor {
  const y = out ?? emptyTensor(ctx, x.shape, `${op}.out`);
  if (y.size !== x.size) throw new Error(`${op}: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error(`${op}: out must not alias x`);
  const params = new Params().u32(x.size).f32(s).build();
  ctx.dispatch(spec, params, [x.buffer, y.buffer], grid(Math.ceil(x.size / WG)));
  return y;
}

const SPECS = {
  gelu: unarySpec("gelu_f32", (x) => activationExpr("gelu", x), ACTIVATION_WGSL),
  relu: unarySpec("relu_f32", (x) => activationExpr("relu", x), ACTIVATION_WGSL),
};

/** Elementwise GELU (exact) or ReLU of `x`, into a new tensor of x's shape or `out`. */
export function activation(
  ctx: GpuContext,
  x: Tensor,
  kind: "gelu" | "relu",
  out?: Tensor,
): Tensor {
  const spec = SPECS[kind];
  if (!spec) throw new Error(`activation: unknown kind ${kind}`);
  return unary(ctx, spec, kind, x, 0, out);
}
