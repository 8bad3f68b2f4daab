/**
 * Elementwise add: out = a + b (same shape). Also the template every kernel file follows:
 * WGSL, the binding layout it owns, shape guards, dispatch.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

const ADD: KernelSpec = {
  name: "add_f32",
  bindings: ["uniform", "read", "read", "write"],
  code: () => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  out[i] = a[i] + b[i];
}`,
};

/** Returns a + b as a new tensor (or into `out`). */
export function add(ctx: GpuContext, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  if (a.size !== b.size) {
    throw new Error(`add: sizes differ, [${a.shape}] vs [${b.shape}]`);
  }
  const y = out ?? emptyTensor(ctx, a.shape, "add.out");
  if (y.size !== a.size) throw new Error(`add: out has ${y.size} elements, need ${a.size}`);
  const params = new Params().u32(a.size).build();
  ctx.dispatch(ADD, params, [a.buffer, b.buffer, y.buffer], grid(Math.ceil(a.size / WG)));
  return y;
}
