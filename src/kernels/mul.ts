/**
 * Elementwise multiply with add's broadcast rule (b.size divides a.size, b repeats over a's
 * leading dims), and scaling by a constant.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";
import { binarySpec, broadcastBinary } from "./add.ts";

const WG = 256;

const MUL = binarySpec("mul_f32", (a, b) => `${a} * ${b}`);

const SCALE: KernelSpec = {
  name: "scale_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  out[i] = x[i] * p.s;
}`,
};

/** a * b (b a tensor whose size divides a's, repeated; or a number: a scaled by it). */
export function mul(ctx: GpuContext, a: Tensor, b: Tensor | number, out?: Tensor): Tensor {
  if (typeof b === "number") return scale(ctx, a, b, out);
  return broadcastBinary(ctx, MUL, "mul", a, b, out);
}

/** x * s for a constant s. */
export function scale(ctx: GpuContext, x: Tensor, s: number, out?: Tensor): Tensor {
  const y = out ?? emptyTensor(ctx, x.shape, "scale.out");
  if (y.size !== x.size) throw new Error(`scale: out has ${y.size} elements, need ${x.size}`);
  if (y.buffer === x.buffer) throw new Error("scale: out must not alias x");
  const params = new Params().u32(x.size).f32(s).build();
  ctx.dispatch(SCALE, params, [x.buffer, y.buffer], grid(Math.ceil(x.size / WG)));
  return y;
}
