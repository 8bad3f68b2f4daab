/**
 * The mask SAM 2 feeds its memory encoder (`_encode_new_memory`):
 * out = m * scale + bias with m = sigmoid(x) ("sigmoid"), or m = (x > 0 ? 1 : 0)
 * ("binarize": `binarize_mask_from_pts_for_mem_enc` on frames prompted by clicks).
 * Scale 20 and bias -10 in the SAM 2.1 configs. Multiply, then add, as two roundings like torch.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

export type MaskForMemory = "sigmoid" | "binarize";

function spec(mode: MaskForMemory): KernelSpec {
  const m = mode === "sigmoid" ? "1.0 / (1.0 + exp(-v))" : "select(0.0, 1.0, v > 0.0)";
  return {
    name: `sigmoid_affine_${mode}_f32`,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, scale: f32, bias: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  let v = x[i];
  let m = ${m};
  // Two statements so the product is rounded before the sum (no fused multiply-add).
  let scaled = m * p.scale;
  out[i] = scaled + p.bias;
}`,
  };
}

const SPECS = { sigmoid: spec("sigmoid"), binarize: spec("binarize") };

/** Returns sigmoid(x) * scale + bias (or the binarized mask scaled), x's shape. */
export function sigmoidAffine(
  ctx: GpuContext,
  x: Tensor,
  opts: { mode: MaskForMemory; scale: number; bias: number; out?: Tensor },
): Tensor {
  const s = SPECS[opts.mode];
  if (!s) throw new Error(`sigmoidAffine: unknown mode ${opts.mode}`);
  if (!Number.isFinite(opts.scale) || !Number.isFinite(opts.bias)) {
    throw new Error(`sigmoidAffine: scale ${opts.scale} and bias ${opts.bias} must be finite`);
  }
  const y = opts.out ?? emptyTensor(ctx, x.shape, "sigmoid_affine.out");
  if (y.size !== x.size) {
    throw new Error(`sigmoidAffine: out has ${y.size} elements, need ${x.size}`);
  }
  if (y.buffer === x.buffer) throw new Error("sigmoidAffine: out must not alias x");
  const params = new Params().u32(x.size).f32(opts.scale, opts.bias).build();
  ctx.dispatch(s, params, [x.buffer, y.buffer], grid(Math.ceil(x.size / WG)));
  return y;
}
