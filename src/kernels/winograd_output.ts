/**
 * Winograd F(4x4, 3x3) output transform: from the 36 GEMM products of a tile,
 * M[e, t, d] (e = 6 i + j), the tile's 4x4 outputs Y = A^T M A, written token-major into
 * [s, s, D] (rows and columns past s, the last tile's overhang, are dropped).
 *
 * One invocation per (tile, 4 output channels): 36 vec4 reads, A^T applied on both sides
 * with the constant coefficients unrolled, up to 16 vec4 writes. See winograd_input.ts.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { Params, Tensor } from "../gpu/tensor.ts";
import { linearCombination, winogradTiles } from "./winograd_input.ts";

/** A^T of F(4x4, 3x3): 4 outputs from 6 tile elements. */
export const WINOGRAD_AT = [
  [1, 1, 1, 1, 1, 0],
  [0, 1, -1, 2, -2, 0],
  [0, 1, 1, 4, 4, 0],
  [0, 1, -1, 8, -8, 1],
];

const WG = 64;
const I4 = [0, 1, 2, 3];
const I6 = [0, 1, 2, 3, 4, 5];

const OUTPUT: KernelSpec = {
  name: "winograd_output_f4x3_f32",
  bindings: ["uniform", "read", "write"],
  code: () => /* wgsl */ `
struct P { s: u32, d4: u32, tw: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> m: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * ${WG}u;
  if (id >= p.n) { return; }
  let d = id % p.d4;
  let t = id / p.d4;
  let tiles = p.tw * p.tw;
${
    I6.map((i) =>
      I6.map((j) => `  let m${i}${j} = m[(${i * 6 + j}u * tiles + t) * p.d4 + d];`).join("\n")
    )
      .join("\n")
  }
  // r = A^T M (4 x 6), then Y = r A (4 x 4).
${
    I4.map((i) =>
      I6.map((j) => `  let r${i}${j} = ${linearCombination(WINOGRAD_AT[i], (k) => `m${k}${j}`)};`)
        .join("\n")
    ).join("\n")
  }
  let oy = (t / p.tw) * 4u;
  let ox = (t % p.tw) * 4u;
${
    I4.map((i) =>
      I4.map((j) =>
        `  if (oy + ${i}u < p.s && ox + ${j}u < p.s) { y[((oy + ${i}u) * p.s + ox + ${j}u) * p.d4 + d] = ${
          linearCombination(WINOGRAD_AT[j], (k) => `r${i}${k}`)
        }; }`
      ).join("\n")
    ).join("\n")
  }
}`,
};

/**
 * m: the 36 products [36, T, D] (D a multiple of 4) of an s x s output. Writes [s, s, D]
 * into `out` (at least s*s*D elements) and returns it viewed so.
 */
export function winogradOutput(
  ctx: GpuContext,
  m: Tensor,
  s: number,
  D: number,
  out: Tensor,
): Tensor {
  const tw = winogradTiles(s);
  if (D % 4 !== 0 || m.size < 36 * tw * tw * D) {
    throw new Error(
      `winogradOutput: need D % 4 == 0 and 36 x ${tw * tw} tiles x ${D} products, got ` +
        `D ${D} and ${m.size} elements`,
    );
  }
  if (m.dtype !== "f32" || out.dtype !== "f32") throw new Error("winogradOutput: f32 only");
  if (out.size < s * s * D) {
    throw new Error(`winogradOutput: out has ${out.size} elements, need ${s * s * D}`);
  }
  const n = tw * tw * (D / 4);
  const params = new Params().u32(s, D / 4, tw, n).build();
  ctx.dispatch(OUTPUT, params, [m.buffer, out.buffer], grid(Math.ceil(n / WG)));
  // `out` may be a larger pooled buffer: view its first s*s*D elements.
  return new Tensor(ctx, out.buffer, [s, s, D], out.label);
}
