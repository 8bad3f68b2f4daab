/**
 * 2x2 max pooling, stride 2, no padding, floor mode (torch's nn.MaxPool2d(2, 2)): Hiera's
 * q-pooling at stage changes, on token-major grids. The input is a strided view, so the
 * queries can be pooled straight out of a fused qkv buffer:
 *
 *   (b, y, x, c) is read at offset + ((b * H + y) * W + x) * rowStride + c
 *   out [B, floor(H/2), floor(W/2), C], contiguous.
 *
 * One thread per output element (a vec4 of channels when C, offset and rowStride are
 * multiples of 4). torch propagates NaN through max; WGSL's max need not, so the kernel
 * does it explicitly (by the bits: compilers may fold x != x away).
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

function maxPoolSpec(v4: boolean): KernelSpec {
  const elem = v4 ? "vec4<f32>" : "f32";
  return {
    name: `max_pool_2x2${v4 ? "_v4" : ""}_f32`,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, h: u32, w: u32, c: u32, offset: u32, stride: u32, ho: u32, wo: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${elem}>;

fn is_nan(v: ${elem}) -> ${v4 ? "vec4<bool>" : "bool"} {
  // By its bits: compilers may fold v != v to false.
  return (bitcast<${v4 ? "vec4<u32>" : "u32"}>(v) & ${
      v4 ? "vec4<u32>(0x7fffffffu)" : "0x7fffffffu"
    }) >
    ${v4 ? "vec4<u32>(0x7f800000u)" : "0x7f800000u"};
}

fn nan_max(a: ${elem}, b: ${elem}) -> ${elem} {
  // A NaN operand wins, as in torch's max_pool2d.
  return select(select(max(a, b), b, is_nan(b)), a, is_nan(a));
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = ((b * Ho + oy) * Wo + ox) * C + ch.
  let ch = i % p.c;
  let t = i / p.c;
  let ox = t % p.wo;
  let t2 = t / p.wo;
  let oy = t2 % p.ho;
  let b = t2 / p.ho;
  let row = (b * p.h + 2u * oy) * p.w + 2u * ox;
  let base = p.offset + ch;
  let v00 = src[base + row * p.stride];
  let v01 = src[base + (row + 1u) * p.stride];
  let v10 = src[base + (row + p.w) * p.stride];
  let v11 = src[base + (row + p.w + 1u) * p.stride];
  dst[i] = nan_max(nan_max(v00, v01), nan_max(v10, v11));
}`,
  };
}

const SPECS = [maxPoolSpec(false), maxPoolSpec(true)];

/** Where the pooled grid lives inside `x`'s buffer; defaults: offset 0, rowStride = channels. */
export interface PoolView {
  batch: number;
  h: number;
  w: number;
  channels: number;
  offset?: number;
  rowStride?: number;
}

/**
 * 2x2 max pool of the [batch, h, w, channels] grid viewed in `x` (see PoolView) into a new
 * [batch, floor(h/2), floor(w/2), channels] tensor, or into `out` (same element count).
 */
export function maxPool2x2(ctx: GpuContext, x: Tensor, view: PoolView, out?: Tensor): Tensor {
  const { batch, h, w, channels: c } = view;
  const offset = view.offset ?? 0, stride = view.rowStride ?? c;
  for (const [k, v] of Object.entries({ batch, h, w, channels: c })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`maxPool2x2: ${k} must be >= 1, got ${v}`);
  }
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(stride) || stride < c) {
    throw new Error(`maxPool2x2: bad offset ${offset} / rowStride ${stride} for ${c} channels`);
  }
  const last = offset + (batch * h * w - 1) * stride + c;
  if (last > x.size) {
    throw new Error(
      `maxPool2x2: view [${batch}, ${h}, ${w}, ${c}] needs ${last} elements, x has ${x.size}`,
    );
  }
  const ho = Math.floor(h / 2), wo = Math.floor(w / 2);
  if (ho < 1 || wo < 1) throw new Error(`maxPool2x2: ${h}x${w} grid is too small to pool`);
  const shape = [batch, ho, wo, c];
  const n = batch * ho * wo * c;
  let y: Tensor;
  if (out) {
    if (out.size !== n) throw new Error(`maxPool2x2: out has ${out.size} elements, need ${n}`);
    if (out.buffer === x.buffer) throw new Error("maxPool2x2: out may not share x's buffer");
    y = out.reshape(shape);
  } else {
    y = emptyTensor(ctx, shape, "max_pool.out");
  }
  const v4 = c % 4 === 0 && offset % 4 === 0 && stride % 4 === 0 ? 1 : 0;
  const k = v4 ? 4 : 1;
  const threads = n / k;
  const params = new Params().u32(threads, h, w, c / k, offset / k, stride / k, ho, wo).build();
  ctx.dispatch(SPECS[v4], params, [x.buffer, y.buffer], grid(Math.ceil(threads / WG)));
  return y;
}
