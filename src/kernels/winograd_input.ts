/**
 * Winograd F(4x4, 3x3) input transform for a 3x3, stride-1, pad-1 convolution on a
 * token-major [s, s, C] input: V[e, t, c] = (B^T d B)[e] for every 6x6 input tile d
 * (tiles step by 4 and overlap by 2; the padding ring and the tiles' overhang read zero).
 *
 * With the filter transformed once (winogradFilter in conv3x3_winograd.ts), the convolution
 * becomes 36 independent GEMMs [T, C] x [C, D] (one per tile element e), 4x fewer
 * multiplications than im2col's [s*s, 9C] x [9C, D], and no 9x unfolded copy of the input.
 *
 * One invocation per (tile, 4 channels): it reads the 36 vec4 of its tile, applies B^T on
 * both sides with the constant coefficients unrolled (zeros skipped), and writes 36 vec4.
 * Layout: V is [36, T, C] with T = ceil(s/4)^2 tiles in row-major order.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { Params, type Tensor } from "../gpu/tensor.ts";

/** B^T of F(4x4, 3x3) (Lavin & Gray), rows = output index, columns = input index. */
export const WINOGRAD_BT = [
  [4, 0, -5, 0, 1, 0],
  [0, -4, -4, 1, 1, 0],
  [0, 4, -4, -1, 1, 0],
  [0, -2, -1, 2, 1, 0],
  [0, 2, -1, -2, 1, 0],
  [0, 4, 0, -5, 0, 1],
];

/** Tiles per side of an s x s output (4 outputs a tile). */
export function winogradTiles(s: number): number {
  return Math.ceil(s / 4);
}

/** WGSL of sum_k m[i][k] * x(k), zero coefficients left out (x(k) a vec4 expression). */
export function linearCombination(row: number[], x: (k: number) => string): string {
  const terms = row.flatMap((c, k) =>
    c === 0 ? [] : [c === 1 ? x(k) : c === -1 ? `-${x(k)}` : `${c.toFixed(1)} * ${x(k)}`]
  );
  return terms.join(" + ").replaceAll("+ -", "- ");
}

const WG = 64;
const I6 = [0, 1, 2, 3, 4, 5];

const INPUT: KernelSpec = {
  name: "winograd_input_f4x3_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { s: u32, c4: u32, tw: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;

fn pixel(y: i32, xx: i32, c: u32) -> vec4<f32> {
  let s = i32(p.s);
  if (y < 0 || y >= s || xx < 0 || xx >= s) { return vec4<f32>(0.0); }
  return x[(u32(y) * p.s + u32(xx)) * p.c4 + c];
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * ${WG}u;
  if (id >= p.n) { return; }
  let c = id % p.c4;
  let t = id / p.c4;
  let y0 = i32(t / p.tw) * 4 - 1;
  let x0 = i32(t % p.tw) * 4 - 1;
${
    I6.map((i) => I6.map((j) => `  let d${i}${j} = pixel(y0 + ${i}, x0 + ${j}, c);`).join("\n"))
      .join("\n")
  }
  // Columns first: r = B^T d, then V = r B (B^T applied to the rows of r).
${
    I6.map((i) =>
      I6.map((j) => `  let r${i}${j} = ${linearCombination(WINOGRAD_BT[i], (k) => `d${k}${j}`)};`)
        .join("\n")
    ).join("\n")
  }
  let tiles = p.tw * p.tw;
${
    I6.map((i) =>
      I6.map((j) =>
        `  v[(${i * 6 + j}u * tiles + t) * p.c4 + c] = ${
          linearCombination(WINOGRAD_BT[j], (k) => `r${i}${k}`)
        };`
      ).join("\n")
    ).join("\n")
  }
}`,
};

/**
 * x: [s, s, C] (C a multiple of 4). Writes V [36, T, C] into `out` (at least 36 T C
 * elements) and returns it.
 */
export function winogradInput(ctx: GpuContext, x: Tensor, out: Tensor): Tensor {
  const [s, s2, C] = x.shape;
  if (x.shape.length !== 3 || s !== s2 || C % 4 !== 0) {
    throw new Error(`winogradInput: x must be [s, s, C] with C % 4 == 0, got [${x.shape}]`);
  }
  if (x.dtype !== "f32" || out.dtype !== "f32") throw new Error("winogradInput: f32 only");
  const tw = winogradTiles(s);
  const need = 36 * tw * tw * C;
  if (out.size < need) throw new Error(`winogradInput: out has ${out.size} elements, need ${need}`);
  const n = tw * tw * (C / 4);
  const params = new Params().u32(s, C / 4, tw, n).build();
  ctx.dispatch(INPUT, params, [x.buffer, out.buffer], grid(Math.ceil(n / WG)));
  return out;
}
