/**
 * Strided copy: gathers a (up to 4-D) strided view of a tensor into a contiguous tensor.
 * One kernel serves slicing (token rows out of a sequence), permutes of leading dims
 * ((4, B, C) -> (B, 4, C)) and broadcasting (stride 0: one image embedding repeated for a
 * batch of prompts).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

const STRIDED_COPY: KernelSpec = {
  name: "strided_copy_4d",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { n: u32, offset: u32, d1: u32, d2: u32, d3: u32, s0: u32, s1: u32, s2: u32, s3: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = ((i0 * d1 + i1) * d2 + i2) * d3 + i3.
  let i3 = i % p.d3;
  let r3 = i / p.d3;
  let i2 = r3 % p.d2;
  let r2 = r3 / p.d2;
  let i1 = r2 % p.d1;
  let i0 = r2 / p.d1;
  dst[i] = src[p.offset + i0 * p.s0 + i1 * p.s1 + i2 * p.s2 + i3 * p.s3];
}`,
};

export interface StridedView {
  /** Element offset of the view's first element. */
  offset: number;
  /** Output shape, 1 to 4 dims. */
  shape: readonly number[];
  /** Input strides in elements for each output dim (0 repeats). */
  strides: readonly number[];
}

/** Copies a strided view of `x` into a new contiguous tensor of `view.shape`. */
export function stridedCopy(ctx: GpuContext, x: Tensor, view: StridedView, out?: Tensor): Tensor {
  const { shape, strides, offset } = view;
  if (shape.length < 1 || shape.length > 4 || strides.length !== shape.length) {
    throw new Error(
      `stridedCopy: need 1-4 dims with one stride each, got [${shape}] / [${strides}]`,
    );
  }
  // Pad to 4-D at the front with size-1 dims.
  const d = [...Array(4 - shape.length).fill(1), ...shape];
  const s = [...Array(4 - strides.length).fill(0), ...strides];
  const n = d.reduce((a, b) => a * b, 1);
  let last = offset;
  for (let k = 0; k < 4; k++) last += (d[k] - 1) * s[k];
  if (n > 0 && (offset < 0 || last >= x.size)) {
    throw new Error(
      `stridedCopy: view reaches element ${last} of a tensor of ${x.size} ([${x.shape}])`,
    );
  }
  const y = out ?? emptyTensor(ctx, shape, "strided_copy.out");
  if (y.size !== n) throw new Error(`stridedCopy: out has ${y.size} elements, need ${n}`);
  const params = new Params().u32(n, offset, d[1], d[2], d[3], s[0], s[1], s[2], s[3]).build();
  ctx.dispatch(STRIDED_COPY, params, [x.buffer, y.buffer], grid(Math.ceil(n / WG)));
  return y;
}
