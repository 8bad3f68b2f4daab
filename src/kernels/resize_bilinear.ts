/**
 * Bilinear resizing as PyTorch's F.interpolate(mode="bilinear", align_corners=False) on the
 * CPU computes it in float32, and SAM's fused mask postprocess:
 *   low-res logits (N planes, h x w) -> bilinear to imgSize x imgSize -> crop to the resized
 *   image (inputH x inputW) -> bilinear to the original size (outH x outW).
 *
 * The fused kernel evaluates that composition per output pixel: the four intermediate values
 * the second interpolation reads are each computed as the first interpolation would, and
 * rounded to float32 as the intermediate tensor would be, so it reproduces the two passes
 * without materialising the (imgSize x imgSize) intermediate.
 *
 * PyTorch's per-axis source index and weights (upsample_bilinear2d, align_corners=False):
 *   scale = in / out (float32); src = max(scale * (dst + 0.5) - 0.5, 0);
 *   i0 = floor(src); i1 = i0 + (i0 < in - 1); l1 = src - i0; l0 = 1 - l1;
 *   value = (x[i0, j0] * w0 + x[i0, j1] * w1) * l0 + (x[i1, j0] * w0 + x[i1, j1] * w1) * l1.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor } from "../gpu/tensor.ts";

const WG = 64;

/** Shared WGSL: the per-axis index/weight rule and one bilinear sample of a plane. */
const WGSL_AXIS = /* wgsl */ `
struct Axis { i0: u32, i1: u32, l0: f32, l1: f32 }
fn axis(dst: u32, scale: f32, n_in: u32) -> Axis {
  let src = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
  let i0 = min(u32(src), n_in - 1u);
  let i1 = select(i0, i0 + 1u, i0 < n_in - 1u);
  let l1 = src - f32(i0);
  return Axis(i0, i1, 1.0 - l1, l1);
}
`;

const RESIZE: KernelSpec = {
  name: "resize_bilinear_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { n: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, scale_h: f32, scale_w: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${WGSL_AXIS}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= p.n) { return; }
  let ox = idx % p.out_w;
  let oy = (idx / p.out_w) % p.out_h;
  let plane = idx / (p.out_w * p.out_h);
  let ay = axis(oy, p.scale_h, p.in_h);
  let ax = axis(ox, p.scale_w, p.in_w);
  let base = plane * p.in_h * p.in_w;
  let r0 = base + ay.i0 * p.in_w;
  let r1 = base + ay.i1 * p.in_w;
  let t0 = x[r0 + ax.i0] * ax.l0 + x[r0 + ax.i1] * ax.l1;
  let t1 = x[r1 + ax.i0] * ax.l0 + x[r1 + ax.i1] * ax.l1;
  y[idx] = t0 * ay.l0 + t1 * ay.l1;
}`,
};

/** The float32 scale PyTorch uses for an axis resized from `n_in` to `n_out`. */
export function resizeScale(nIn: number, nOut: number): number {
  return Math.fround(Math.fround(nIn) / Math.fround(nOut));
}

/** x: [..., H, W] (leading dims are planes) -> [..., outH, outW]. */
export function resizeBilinear(
  ctx: GpuContext,
  x: Tensor,
  outH: number,
  outW: number,
  out?: Tensor,
): Tensor {
  if (x.shape.length < 2) {
    throw new Error(`resizeBilinear: x must be [..., H, W], got [${x.shape}]`);
  }
  const inH = x.shape[x.shape.length - 2], inW = x.shape[x.shape.length - 1];
  if (!(outH >= 1 && outW >= 1 && Number.isInteger(outH) && Number.isInteger(outW))) {
    throw new Error(`resizeBilinear: bad output size ${outH}x${outW}`);
  }
  const planes = x.size / (inH * inW);
  const outShape = [...x.shape.slice(0, -2), outH, outW];
  const y = out ?? emptyTensor(ctx, outShape, "resize_bilinear.out");
  const n = planes * outH * outW;
  if (y.size !== n) throw new Error(`resizeBilinear: out has ${y.size} elements, need ${n}`);
  const params = new Params().u32(n, inH, inW, outH, outW)
    .f32(resizeScale(inH, outH), resizeScale(inW, outW)).build();
  ctx.dispatch(RESIZE, params, [x.buffer, y.buffer], grid(Math.ceil(n / WG)));
  return y;
}

function postprocessSpec(bits: boolean): KernelSpec {
  // Logits: one invocation per output pixel. Bits: one invocation per 32 consecutive pixels
  // of a plane (row-major), packed LSB first into one u32; each plane starts a new word.
  const sample = /* wgsl */ `
fn inter(base: u32, a: u32, b: u32) -> f32 {
  // Value of the (imgSize x imgSize) intermediate at row a, column b (a, b inside the crop).
  let ay = axis(a, p.scale1, p.low);
  let ax = axis(b, p.scale1, p.low);
  let r0 = base + ay.i0 * p.low;
  let r1 = base + ay.i1 * p.low;
  let t0 = x[r0 + ax.i0] * ax.l0 + x[r0 + ax.i1] * ax.l1;
  let t1 = x[r1 + ax.i0] * ax.l0 + x[r1 + ax.i1] * ax.l1;
  return t0 * ay.l0 + t1 * ay.l1;
}
fn pixel(plane: u32, oy: u32, ox: u32) -> f32 {
  let base = (p.first + plane) * p.low * p.low;
  let ay = axis(oy, p.scale2h, p.in_h);
  let ax = axis(ox, p.scale2w, p.in_w);
  let t0 = inter(base, ay.i0, ax.i0) * ax.l0 + inter(base, ay.i0, ax.i1) * ax.l1;
  let t1 = inter(base, ay.i1, ax.i0) * ax.l0 + inter(base, ay.i1, ax.i1) * ax.l1;
  return t0 * ay.l0 + t1 * ay.l1;
}`;
  return {
    name: bits ? "sam_postprocess_bits" : "sam_postprocess_f32",
    bindings: ["uniform", "read", "write"],
    code: () => /* wgsl */ `
struct P {
  n: u32, low: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, words: u32, first: u32,
  scale1: f32, scale2h: f32, scale2w: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<${bits ? "u32" : "f32"}>;
${WGSL_AXIS}
${sample}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * ${WG}u;
  if (idx >= p.n) { return; }
  ${
      bits
        ? `
  // n = planes * words; word w of a plane holds pixels 32w .. 32w+31.
  let plane = idx / p.words;
  let start = (idx % p.words) * 32u;
  let count = min(32u, p.out_h * p.out_w - start);
  var word = 0u;
  for (var k = 0u; k < count; k++) {
    let q = start + k;
    if (pixel(plane, q / p.out_w, q % p.out_w) > 0.0) { word |= 1u << k; }
  }
  y[idx] = word;`
        : `
  let ox = idx % p.out_w;
  let oy = (idx / p.out_w) % p.out_h;
  let plane = idx / (p.out_w * p.out_h);
  y[idx] = pixel(plane, oy, ox);`
    }
}`,
  };
}

const POST_LOGITS = postprocessSpec(false);
const POST_BITS = postprocessSpec(true);

export interface PostprocessGeometry {
  /** Encoder input side (1024 for the real models). */
  imgSize: number;
  /** The resized image inside the padded input, [h, w] (ResizeLongestSide's shape). */
  inputSize: readonly [number, number];
  /** The original image, [h, w]. */
  originalSize: readonly [number, number];
}

/** Words of 32 mask bits per plane of the packed output. */
export function maskWordsPerPlane(originalSize: readonly [number, number]): number {
  return Math.ceil(originalSize[0] * originalSize[1] / 32);
}

/**
 * SAM's postprocess_masks fused: lowRes [..., l, l] -> [..., H, W]; with `planes`, only the
 * planes first .. first+count-1 of lowRes (flat over the leading dims) -> [count, H, W].
 * `output: "logits"` gives float32 logits; `"bits"` gives the masks (logit > 0) packed 32
 * pixels a word, LSB first, row-major per plane, each plane starting a new word
 * (maskWordsPerPlane words per plane), as a u32 buffer in the returned Tensor.
 */
export function samPostprocess(
  ctx: GpuContext,
  lowRes: Tensor,
  geo: PostprocessGeometry,
  output: "logits" | "bits" = "logits",
  out?: Tensor,
  planes?: { first: number; count: number },
): Tensor {
  const s = lowRes.shape;
  if (s.length < 2 || s[s.length - 1] !== s[s.length - 2]) {
    throw new Error(`samPostprocess: low-res logits must be [..., l, l], got [${s}]`);
  }
  const low = s[s.length - 1];
  const allPlanes = lowRes.size / (low * low);
  const first = planes?.first ?? 0;
  const count = planes?.count ?? allPlanes;
  if (
    !Number.isInteger(first) || !Number.isInteger(count) || first < 0 || first + count > allPlanes
  ) {
    throw new Error(
      `samPostprocess: planes ${first}..${first + count - 1} outside 0..${allPlanes - 1}`,
    );
  }
  const [inH, inW] = geo.inputSize;
  const [outH, outW] = geo.originalSize;
  for (const v of [geo.imgSize, inH, inW, outH, outW]) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(
        `samPostprocess: sizes must be positive integers, got ${JSON.stringify(geo)}`,
      );
    }
  }
  if (inH > geo.imgSize || inW > geo.imgSize) {
    throw new Error(`samPostprocess: input size ${inH}x${inW} exceeds imgSize ${geo.imgSize}`);
  }
  const words = maskWordsPerPlane([outH, outW]);
  const n = output === "bits" ? count * words : count * outH * outW;
  const lead = planes ? [count] : s.slice(0, -2);
  const shape = output === "bits" ? [...lead, words] : [...lead, outH, outW];
  const y = out ?? emptyTensor(ctx, shape, `sam_postprocess.${output}`);
  if (y.size !== n) throw new Error(`samPostprocess: out has ${y.size} elements, need ${n}`);
  const params = new Params().u32(n, low, inH, inW, outH, outW, words, first)
    .f32(resizeScale(low, geo.imgSize), resizeScale(inH, outH), resizeScale(inW, outW)).build();
  ctx.dispatch(
    output === "bits" ? POST_BITS : POST_LOGITS,
    params,
    [lowRes.buffer, y.buffer],
    grid(Math.ceil(n / WG)),
  );
  return y;
}
