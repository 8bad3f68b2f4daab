/**
 * SAM's window_partition / window_unpartition for ViT windowed attention (batch 1):
 * [H, W, C] tokens, zero-padded to a multiple of the window, regrouped as
 * [nWin, win*win, C] windows in row-major window order, and back (dropping the padding).
 * Both are gathers, one thread per output element (a vec4 of channels where C % 4 == 0), so
 * every output is written exactly once.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, requireShaderF16, type Tensor } from "../gpu/tensor.ts";

const WG = 256;

/** `v4`: channels move as vec4 (C % 4 == 0, every SAM width), a quarter of the loads. The
 * uniform `c` is then the channel count in vec4s. */
function partitionSpec(v4: boolean): KernelSpec {
  const elem = v4 ? "vec4<f32>" : "f32";
  return {
    name: `window_partition${v4 ? "_v4" : ""}_f32`,
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P { n: u32, h: u32, w: u32, c: u32, win: u32, nwx: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${elem}>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = ((window * win*win) + token) * C + ch, window = wy * nwx + wx.
  let ch = i % p.c;
  let t = i / p.c;
  let token = t % (p.win * p.win);
  let window = t / (p.win * p.win);
  let y = (window / p.nwx) * p.win + token / p.win;
  let x = (window % p.nwx) * p.win + token % p.win;
  // Zero padding outside the image (the clamped read there is harmless).
  dst[i] = select(${elem}(0.0), src[(min(y, p.h - 1u) * p.w + min(x, p.w - 1u)) * p.c + ch],
    y < p.h && x < p.w);
}`,
  };
}

/** `half`: an f16 tensor (precision "f16": the attention output), copied as it is. */
function unpartitionSpec(v4: boolean, half = false): KernelSpec {
  const scalar = half ? "f16" : "f32";
  const elem = v4 ? `vec4<${scalar}>` : scalar;
  return {
    name: `window_unpartition${v4 ? "_v4" : ""}_${scalar}`,
    bindings: ["uniform", "read", "write"],
    code: () =>
      /* wgsl */ `${half ? "enable f16;\n" : ""}
struct P { n: u32, w: u32, c: u32, win: u32, nwx: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<${elem}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${elem}>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Output index i = (y * W + x) * C + ch.
  let ch = i % p.c;
  let t = i / p.c;
  let x = t % p.w;
  let y = t / p.w;
  let window = (y / p.win) * p.nwx + x / p.win;
  let token = (y % p.win) * p.win + x % p.win;
  dst[i] = src[(window * p.win * p.win + token) * p.c + ch];
}`,
  };
}

const PARTITION = [partitionSpec(false), partitionSpec(true)];
const UNPARTITION = [unpartitionSpec(false), unpartitionSpec(true)];
const UNPARTITION_F16 = [unpartitionSpec(false, true), unpartitionSpec(true, true)];

function checkWin(fn: string, win: number): void {
  if (!Number.isInteger(win) || win < 1) {
    throw new Error(`${fn}: window size must be a positive integer, got ${win}`);
  }
}

/** `out` viewed as `shape`; it must hold exactly that many elements and not alias `x`. */
function checkOut(fn: string, out: Tensor, shape: number[], x: Tensor): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (out.size !== n) {
    throw new Error(`${fn}: out has ${out.size} elements, need [${shape}]`);
  }
  if (out.buffer === x.buffer) throw new Error(`${fn}: out may not share x's buffer`);
  return out.reshape(shape);
}

/**
 * [H, W, C] -> [nWin, win*win, C] with nWin = ceil(H/win) * ceil(W/win), zero padding. `out`
 * (any tensor of that many elements) lets a caller reuse its own buffer.
 */
export function windowPartition(ctx: GpuContext, x: Tensor, win: number, out?: Tensor): Tensor {
  checkWin("windowPartition", win);
  if (x.shape.length !== 3) {
    throw new Error(`windowPartition: x must be [H, W, C], got [${x.shape}]`);
  }
  const [h, w, c] = x.shape;
  const nwy = Math.ceil(h / win), nwx = Math.ceil(w / win);
  const shape = [nwy * nwx, win * win, c];
  const y = out
    ? checkOut("windowPartition", out, shape, x)
    : emptyTensor(ctx, shape, "window_partition.out");
  const v4 = c % 4 === 0 ? 1 : 0;
  const n = v4 ? y.size / 4 : y.size;
  const params = new Params().u32(n, h, w, v4 ? c / 4 : c, win, nwx).build();
  ctx.dispatch(PARTITION[v4], params, [x.buffer, y.buffer], grid(Math.ceil(n / WG)));
  return y;
}

/** [nWin, win*win, C] (windows of the padded ceil(H/win)*win x ceil(W/win)*win grid) -> [H, W, C]. */
export function windowUnpartition(
  ctx: GpuContext,
  x: Tensor,
  win: number,
  H: number,
  W: number,
  out?: Tensor,
): Tensor {
  checkWin("windowUnpartition", win);
  const nwy = Math.ceil(H / win), nwx = Math.ceil(W / win);
  if (
    x.shape.length !== 3 || x.shape[0] !== nwy * nwx || x.shape[1] !== win * win ||
    !Number.isInteger(H) || !Number.isInteger(W) || H < 1 || W < 1
  ) {
    throw new Error(
      `windowUnpartition: x must be [nWin ${nwy * nwx}, win*win ${win * win}, C] for ` +
        `${H}x${W} with window ${win}, got [${x.shape}]`,
    );
  }
  const c = x.shape[2];
  const y = out
    ? checkOut("windowUnpartition", out, [H, W, c], x)
    : emptyTensor(ctx, [H, W, c], "window_unpartition.out", x.dtype);
  if (y.dtype !== x.dtype) {
    throw new Error(`windowUnpartition: out is ${y.dtype}, x is ${x.dtype}`);
  }
  const half = x.dtype === "f16";
  if (half) requireShaderF16(ctx, "windowUnpartition");
  const v4 = c % 4 === 0 ? 1 : 0;
  const n = v4 ? y.size / 4 : y.size;
  const params = new Params().u32(n, W, v4 ? c / 4 : c, win, nwx).build();
  const spec = (half ? UNPARTITION_F16 : UNPARTITION)[v4];
  ctx.dispatch(spec, params, [x.buffer, y.buffer], grid(Math.ceil(n / WG)));
  return y;
}
