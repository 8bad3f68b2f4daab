/**
 * Elementwise add with broadcast: out = a + b, where b.size divides a.size and b repeats
 * over a's leading dims (out[i] = a[i] + b[i % b.size]: a bias [C] over tokens [N, C], a
 * positional embedding over a batch). Also the template every kernel file follows: WGSL, the
 * binding layout it owns, shape guards, dispatch; `binarySpec` / `broadcastBinary` serve
 * mul.ts too.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

/** A broadcast binary kernel computing the WGSL expression `expr` of `a[i]` and `b[j]`. */
export function binarySpec(name: string, expr: (a: string, b: string) => string): KernelSpec {
  return {
    name,
    bindings: ["uniform", "read", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, nb: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // b repeats over a's leading dims.
  out[i] = ${expr("a[i]", "b[i % p.nb]")};
}`,
  };
}

/** Checks the broadcast rule and dispatches `spec` for out = op(a, b). */
export function broadcastBinary(
  ctx: GpuContext,
  spec: KernelSpec,
  op: string,
  a: Tensor,
  b: Tensor,
  out?: Tensor,
): Tensor {
  if (b.size === 0 || a.size % b.size !== 0) {
    throw new Error(
      `${op}: sizes differ, [${a.shape}] vs [${b.shape}], and b's ${b.size} elements do not ` +
        `divide a's ${a.size} (b may only repeat over a's leading dims)`,
    );
  }
  const y = out ?? emptyTensor(ctx, a.shape, `${op}.out`);
  if (y.size !== a.size) throw new Error(`${op}: out has ${y.size} elements, need ${a.size}`);
  if (y.buffer === a.buffer || y.buffer === b.buffer) {
    throw new Error(`${op}: out must not alias an input`);
  }
  const params = new Params().u32(a.size, b.size).build();
  ctx.dispatch(spec, params, [a.buffer, b.buffer, y.buffer], grid(Math.ceil(a.size / WG)));
  return y;
}

const ADD = binarySpec("add_f32", (a, b) => `${a} + ${b}`);

/** Returns a + b as a new tensor (or into `out`); b.size must divide a.size (b repeats). */
export function add(ctx: GpuContext, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return broadcastBinary(ctx, ADD, "add", a, b, out);
}
