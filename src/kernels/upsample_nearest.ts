/**
 * Nearest-neighbour 2x upsampling of a token-major [H, W, C] grid, as torch's
 * F.interpolate(scale_factor=2.0, mode="nearest") computes it (source index floor(dst / 2)):
 * the top-down path of SAM 2's FPN neck. Optionally adds a same-shaped `addend` (the lateral
 * features) in the same pass, so the neck's `lateral + upsample(prev)` is one dispatch.
 *
 * One thread per output element (a vec4 of channels when C % 4 == 0).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

function upsampleSpec(v4: boolean, withAdd: boolean): KernelSpec {
  const elem = v4 ? "vec4<f32>" : "f32";
  return {
    name: `upsample_nearest_2x${withAdd ? "_add" : ""}${v4 ? "_v4" : ""}_f32`,
    bindings: withAdd ? ["uniform", "read", "read", "write"] : ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, w: u32, c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<${elem}>;
${
      withAdd
        ? `@group(0) @binding(2) var<storage, read> addend: array<${elem}>;
@group(0) @binding(3) var<storage, read_write> dst: array<${elem}>;`
        : `@group(0) @binding(2) var<storage, read_write> dst: array<${elem}>;`
    }

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = (y * 2W + x) * C + ch; its source is (y / 2, x / 2).
  let ch = i % p.c;
  let t = i / p.c;
  let x = t % (2u * p.w);
  let y = t / (2u * p.w);
  let v = src[((y / 2u) * p.w + x / 2u) * p.c + ch];
  dst[i] = ${withAdd ? "addend[i] + v" : "v"};
}`,
  };
}

const SPECS = [
  [upsampleSpec(false, false), upsampleSpec(true, false)],
  [upsampleSpec(false, true), upsampleSpec(true, true)],
];

/**
 * x [H, W, C] -> [2H, 2W, C] nearest, plus `addend` ([2H, 2W, C] elements) when given (the
 * sum is addend + upsampled, as torch's `lateral + top_down`). Into `out` when given.
 */
export function upsampleNearest2x(
  ctx: GpuContext,
  x: Tensor,
  opts: { addend?: Tensor; out?: Tensor } = {},
): Tensor {
  if (x.shape.length !== 3) {
    throw new Error(`upsampleNearest2x: x must be [H, W, C], got [${x.shape}]`);
  }
  const [h, w, c] = x.shape;
  const shape = [2 * h, 2 * w, c];
  const n = 4 * h * w * c;
  const { addend, out } = opts;
  if (addend && addend.size !== n) {
    throw new Error(`upsampleNearest2x: addend has ${addend.size} elements, need [${shape}]`);
  }
  let y: Tensor;
  if (out) {
    if (out.size !== n) {
      throw new Error(`upsampleNearest2x: out has ${out.size} elements, need ${n}`);
    }
    if (out.buffer === x.buffer || out.buffer === addend?.buffer) {
      throw new Error("upsampleNearest2x: out may not share a buffer with its inputs");
    }
    y = out.reshape(shape);
  } else {
    y = emptyTensor(ctx, shape, "upsample_nearest.out");
  }
  const v4 = c % 4 === 0 ? 1 : 0;
  const k = v4 ? 4 : 1;
  const params = new Params().u32(n / k, w, c / k).build();
  const buffers = addend ? [x.buffer, addend.buffer, y.buffer] : [x.buffer, y.buffer];
  ctx.dispatch(SPECS[addend ? 1 : 0][v4], params, buffers, grid(Math.ceil(n / k / WG)));
  return y;
}
