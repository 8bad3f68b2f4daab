/**
 * Axial 2-D rotary position encoding, as SAM 2's RoPEAttention applies it to q and k
 * (`compute_axial_cis` / `apply_rotary_enc` in `modeling/position_encoding.py`).
 *
 * Each head's vector of length D is read as D/2 complex pairs (x[2j], x[2j+1]). Pair j is
 * rotated by the angle pos_x * f[j] for j < D/4 and pos_y * f[j - D/4] for the rest, with
 * f[i] = 1 / theta^(4i / D) and (pos_x, pos_y) = (p % endX, floor(p / endX)) the token's place
 * on the endX x endY grid. Keys of the cross-attention to memories repeat that grid once per
 * memory frame (`repeat_freqs_k`: row r takes position r % (endX * endY)), and the last rows
 * (object-pointer tokens, `num_k_exclude_rope`) are copied unrotated.
 *
 * The cos / sin table is computed on the CPU in float32 as torch does (the official code
 * caches `freqs_cis` per grid too), so the shader never evaluates trig of large angles.
 */
import { type GpuContext, grid, type KernelSpec } from "../gpu/context.ts";
import { emptyTensor, Params, type Tensor, tensorFrom } from "../gpu/tensor.ts";

const WG = 256;
const f = Math.fround;

/**
 * The rotation table [endX * endY, D / 2, 2] of (cos, sin), float32 like torch's `freqs_cis`:
 * frequencies `1 / theta ** (arange(0, D, 4) / D)` and angles `t * freq` rounded to float32.
 */
export function axialRopeTable(
  headDim: number,
  endX: number,
  endY: number,
  theta = 10000,
): Float32Array {
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0) {
    throw new Error(`axialRopeTable: head dim ${headDim} must be a positive multiple of 4`);
  }
  for (const [name, v] of [["endX", endX], ["endY", endY]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`axialRopeTable: ${name} ${v} must be a positive integer`);
    }
  }
  const quarter = headDim / 4;
  const freqs = Float32Array.from(
    { length: quarter },
    (_, i) => f(1 / f(theta ** f((4 * i) / headDim))),
  );
  const half = headDim / 2;
  const table = new Float32Array(endX * endY * half * 2);
  for (let p = 0; p < endX * endY; p++) {
    const px = p % endX, py = Math.floor(p / endX);
    for (let j = 0; j < half; j++) {
      const angle = j < quarter ? f(px * freqs[j]) : f(py * freqs[j - quarter]);
      const o = (p * half + j) * 2;
      table[o] = Math.cos(angle);
      table[o + 1] = Math.sin(angle);
    }
  }
  return table;
}

/** The table of `axialRopeTable` uploaded, with the grid it was made for. */
export interface RopeTable {
  tensor: Tensor;
  headDim: number;
  /** endX * endY: the number of positions; rows past it wrap around (repeat_freqs_k). */
  positions: number;
}

export function createRopeTable(
  ctx: GpuContext,
  headDim: number,
  endX: number,
  endY: number,
  theta = 10000,
): RopeTable {
  const data = axialRopeTable(headDim, endX, endY, theta);
  return {
    tensor: tensorFrom(ctx, data, [endX * endY, headDim / 2, 2], "rope.table"),
    headDim,
    positions: endX * endY,
  };
}

const ROPE: KernelSpec = {
  name: "rope_axial_f32",
  bindings: ["uniform", "read", "read", "write"],
  code: () => /* wgsl */ `
struct P { n: u32, half: u32, pairs_per_row: u32, positions: u32, rope_rows: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= p.n) { return; }
  // Pair i = row * pairs_per_row + head * half + j.
  let row = i / p.pairs_per_row;
  let v = x[i];
  if (row >= p.rope_rows) { out[i] = v; return; }
  let j = (i % p.pairs_per_row) % p.half;
  let t = cs[(row % p.positions) * p.half + j];
  // (a + ib)(cos + i sin), as torch's complex product.
  out[i] = vec2<f32>(v.x * t.x - v.y * t.y, v.x * t.y + v.y * t.x);
}`,
};

export interface RopeOptions {
  heads: number;
  /** Rows [0, ropeRows) are rotated, the rest copied; default all. */
  ropeRows?: number;
  out?: Tensor;
}

/**
 * x: [..., rows, heads * D] token-major (a projection's output); table for head dim D.
 * Returns x rotated, same shape. ropeRows must be a multiple of table.positions (the memory
 * frames each repeat the grid), as the official expand requires.
 */
export function applyAxialRope(
  ctx: GpuContext,
  x: Tensor,
  table: RopeTable,
  opts: RopeOptions,
): Tensor {
  const { heads } = opts;
  const D = table.headDim;
  const width = x.shape[x.shape.length - 1];
  if (!Number.isInteger(heads) || heads < 1 || width !== heads * D) {
    throw new Error(
      `applyAxialRope: x [${x.shape}] must end in heads * headDim = ${heads} * ${D}`,
    );
  }
  const rows = x.size / width;
  const ropeRows = opts.ropeRows ?? rows;
  if (!Number.isInteger(ropeRows) || ropeRows < 0 || ropeRows > rows) {
    throw new Error(`applyAxialRope: ropeRows ${ropeRows} must be in [0, ${rows}]`);
  }
  if (ropeRows % table.positions !== 0) {
    throw new Error(
      `applyAxialRope: ${ropeRows} rotated rows are not a whole number of ` +
        `${table.positions}-position grids`,
    );
  }
  const y = opts.out ?? emptyTensor(ctx, x.shape, "rope.out");
  if (y.size !== x.size) {
    throw new Error(`applyAxialRope: out has ${y.size} elements, need ${x.size}`);
  }
  if (y.buffer === x.buffer || y.buffer === table.tensor.buffer) {
    throw new Error("applyAxialRope: out must not alias x or the table");
  }
  const n = x.size / 2;
  const params = new Params().u32(n, D / 2, width / 2, table.positions, ropeRows).build();
  ctx.dispatch(ROPE, params, [x.buffer, table.tensor.buffer, y.buffer], grid(Math.ceil(n / WG)));
  return y;
}
