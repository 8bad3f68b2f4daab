/**
 * Tiled GEMM with K-contiguous staging ("tile64k", "tile128k": the 64 x 64 and 128 x 64 tiles
 * of matmul.ts) and the same with a register prefetch of the next K tile ("tile64p",
 * "tile128p").
 *
 * matmul.ts's tiles stage A (and B in "nk") K-major, As[k][m]: the global rows are K
 * contiguous, so every vec4 read from storage is split into four scalar stores down a column
 * of the tile (on GPUs a 4-way bank conflict per store). Here the tiles keep the layout of
 * the operand in storage, so every store into workgroup memory is one vec4:
 * - A (and B in "nk": linear weights, transposed B) is staged As[m][k], K contiguous, rows
 *   padded by one vec4 (row stride BK/4 + 1 = 5 vec4 = 20 words). A thread owns rows
 *   ty + 16 i and columns tx + 16 j (strided, not adjacent), so the 8 threads of one 128-bit
 *   phase read rows 20 words apart: banks 0, 20, 8, 28, 16, 4, 24, 12 (+0..3), conflict-free.
 *   The inner product runs in vec4 steps along K: c[i][j] += dot(A[i][k..k+3], B[j][k..k+3]).
 * - B in "kn" ([K, N], N contiguous) is staged as it is, Bs[k][n]; the thread owns 4
 *   adjacent columns (one vec4) and takes the outer product with the 4 values of its A vec4.
 * So neither layout needs a transposed store, and "kn" needs no weights pre-transposed at
 * load (every [K, N] operand in the models is an activation anyway: linear weights are [N, K]).
 * Global loads are vec4 where the contiguous dim is a multiple of 4 ("_a4" / "_b4"), else
 * four guarded scalars gathered into the vec4 that is stored. M, N, K need not be multiples
 * of the tile: out-of-range loads read zero, stores are guarded. Epilogue and f16 operands
 * are gemm_epilogue.ts's (loads widen to f32, accumulation stays f32).
 *
 * The "p" variants keep one shared buffer and prefetch through registers: tile k+1 is read
 * from storage into registers after the first barrier, so its latency hides behind the
 * arithmetic on tile k, and is stored to workgroup memory after the second barrier.
 * (Two shared buffers would save a barrier but need 2 x 10 KiB (2 x 15 for the 128 tile),
 * over WebGPU's 16 KiB default workgroup storage.)
 *
 * Measured on lavapipe (llvmpipe, LLVM 15, 256 bits; 2 cores shared with other work), GFLOP/s,
 * median of 3, every variant back to back per shape (bench/kernels/gemm_kstage_bench.ts):
 *
 *   sam-mini shape                    tile64  64k  64p  tile128  128k  128p  reg_m8x8w8
 *   qkv            4900 x 128 -> 384    0.70  0.95 0.85     0.88  0.93  0.89        2.02
 *   proj+res       4900 x 128 -> 128    0.69  0.65 0.65     0.82  0.85  0.89        1.16
 *   mlp.lin1+gelu  4096 x 128 -> 512    0.81  0.74 0.92     1.07  1.07  1.13        1.34
 *   mlp.lin2+res   4096 x 512 -> 128    0.97  1.04 0.96     1.26  1.30  1.21        2.00
 *   patch_embed    4096 x 768 -> 128    0.95  0.98 0.89     0.95  1.05  0.96        1.60
 *   attn @ v ("kn") 50 x 196x196 @ 64   0.62  0.64 0.47     0.74  0.73  0.66        0.64
 *
 * On a CPU adapter K-contiguous staging is a wash against matmul.ts's (within the 10-25% that
 * one kernel varies between runs here): llvmpipe has no banks, a per-invocation vec4 store
 * is four scalar stores there as much as a transposing store is, and the inner loops read
 * the same 8 values per 16 FMAs. The prefetch does not pay either: a workgroup runs as loops
 * over its invocations, split at each barrier, with loads that complete in order (nothing
 * to overlap), and the prefetched registers live across a barrier, so they are kept in
 * memory per invocation; on "kn" it costs up to a quarter. The register blocks of
 * gemm_register.ts (no workgroup memory) stay 1.3-2.5x ahead and remain the CPU default.
 * What these variants are for (no bank conflicts on the stores, global latency hidden
 * behind the arithmetic) shows only on a GPU, where `deno task tune` picks per shape; no
 * GPU was at hand to measure them on.
 */
import type { KernelSpec } from "../gpu/context.ts";
import { ACTIVATION_WGSL } from "./activation.ts";
import {
  cachedGemmSpec,
  gemmBindingDecls,
  type GemmEpilogue,
  gemmEpilogueExpr,
  gemmLoad,
} from "./gemm_epilogue.ts";
import type { GemmTile } from "./matmul.ts";

/** A K-contiguous-staging variant: the tile (TN is 4) and whether the next K tile is prefetched. */
export interface KStageShape {
  tile: GemmTile;
  prefetch: boolean;
}

export interface KStageVariant extends GemmEpilogue, KStageShape {}

/** 64 x 64, 256 threads of 4 x 4 (matmul.ts's TILE_64) and 128 x 64, 256 threads of 8 x 4
 * (TILE_128, for many rows): As is 5 or 10 KiB, Bs 5 KiB, under WebGPU's default 16 KiB. */
const TILE64: GemmTile = { bm: 64, bn: 64, bk: 16, tm: 4 };
const TILE128: GemmTile = { bm: 128, bn: 64, bk: 16, tm: 8 };

/** The named variants: "k" stages K-contiguous, "p" also prefetches the next K tile. */
export const KSTAGE_VARIANTS: Readonly<Record<string, KStageShape>> = {
  tile64k: { tile: TILE64, prefetch: false },
  tile64p: { tile: TILE64, prefetch: true },
  tile128k: { tile: TILE128, prefetch: false },
  tile128p: { tile: TILE128, prefetch: true },
};

/** The shape of a variant named here, or null. */
export function parseKStageName(name: string): KStageShape | null {
  return Object.hasOwn(KSTAGE_VARIANTS, name) ? KSTAGE_VARIANTS[name] : null;
}

const TN = 4;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of a loader returning 4 K- (or N-) consecutive values from row `row`, zero outside. */
function loader(
  v: GemmEpilogue,
  which: "a" | "b",
  fn: string,
  vec: boolean,
  rowLimit: string,
  colLimit: string,
  rowLen: string,
): string {
  const head = `fn ${fn}(base: u32, row: u32, col: u32) -> vec4<f32> {`;
  if (vec) {
    // The contiguous dim is a multiple of 4: a vec4 is all in range or all out.
    return `${head}
  if (row >= ${rowLimit} || col >= ${colLimit}) { return vec4<f32>(0.0); }
  return ${gemmLoad(v, which, `${which}[(base + row * ${rowLen} + col) / 4u]`, true)};
}`;
  }
  const lanes = range(4).map((j) =>
    `if (col + ${j}u < ${colLimit}) { v[${j}] = ${
      gemmLoad(v, which, `${which}[start + col + ${j}u]`, false)
    }; }`
  );
  return `${head}
  var v = vec4<f32>(0.0);
  if (row >= ${rowLimit}) { return v; }
  let start = base + row * ${rowLen};
  ${lanes.join("\n  ")}
  return v;
}`;
}

function kStageCode(v: KStageVariant): string {
  const t = v.tile;
  const TX = t.bn / TN; // threads along N
  const TY = t.bm / t.tm; // threads along M
  const nt = TX * TY;
  const KQ = t.bk / 4; // vec4 per staged row
  const S = KQ + 1; // padded row stride (vec4)
  const nk = v.bLayout === "nk";
  const R = range(t.tm);
  const C = range(TN);

  // Which vec4 of each staged tile a thread loads: slot s covers l = tid + s * nt.
  const aSlots = range((t.bm * KQ) / nt);
  const bSlots = range((t.bn * KQ) / nt);
  const slotIdx = [
    ...aSlots.map((s) =>
      `let ar${s} = (tid + ${s * nt}u) / ${KQ}u; let ak${s} = (tid + ${s * nt}u) % ${KQ}u;`
    ),
    ...bSlots.map((s) =>
      nk
        ? `let br${s} = (tid + ${s * nt}u) / ${KQ}u; let bk${s} = (tid + ${s * nt}u) % ${KQ}u;`
        : `let br${s} = (tid + ${s * nt}u) / ${TX}u; let bk${s} = (tid + ${s * nt}u) % ${TX}u;`
    ),
  ];
  // Global reads of the K tile at k-offset `k`: vec4 values, in slot order.
  const readA = (s: number, k: string) => `load_a(a_base, m0 + ar${s}, ${k} + ak${s} * 4u)`;
  const readB = (s: number, k: string) =>
    nk
      ? `load_b(b_base, n0 + br${s}, ${k} + bk${s} * 4u)`
      : `load_b(b_base, ${k} + br${s}, n0 + bk${s} * 4u)`;
  // Workgroup stores: one vec4 each, in the layout the value had in storage.
  const putA = (s: number, val: string) => `As[ar${s} * ${S}u + ak${s}] = ${val};`;
  const putB = (s: number, val: string) =>
    nk ? `Bs[br${s} * ${S}u + bk${s}] = ${val};` : `Bs[br${s} * ${TX}u + bk${s}] = ${val};`;

  let stage: string;
  let loopHead: string;
  let prefetch = "";
  if (v.prefetch) {
    loopHead = [
      ...aSlots.map((s) => `var pa${s} = ${readA(s, "0u")};`),
      ...bSlots.map((s) => `var pb${s} = ${readB(s, "0u")};`),
    ].join("\n  ");
    stage = [...aSlots.map((s) => putA(s, `pa${s}`)), ...bSlots.map((s) => putB(s, `pb${s}`))]
      .join("\n    ");
    prefetch = `// Tile k+1 into registers while this one is computed; stored after the barrier.
    if (k0 + ${t.bk}u < p.K) {
      ${aSlots.map((s) => `pa${s} = ${readA(s, `k0 + ${t.bk}u`)};`).join("\n      ")}
      ${bSlots.map((s) => `pb${s} = ${readB(s, `k0 + ${t.bk}u`)};`).join("\n      ")}
    }`;
  } else {
    loopHead = "";
    stage = [
      ...aSlots.map((s) => putA(s, readA(s, "k0"))),
      ...bSlots.map((s) => putB(s, readB(s, "k0"))),
    ]
      .join("\n    ");
  }

  // The thread's rows ty + TY i (padded offsets into As) and, for "nk", columns tx + TX j.
  const rowOff = R.map((i) => `let ao${i} = (ty + ${i * TY}u) * ${S}u;`);
  const colOff = nk ? C.map((j) => `let bo${j} = (tx + ${j * TX}u) * ${S}u;`) : [];
  let accDecl: string;
  let compute: string;
  let stores: string;
  if (nk) {
    accDecl = R.map((i) => C.map((j) => `var c${i}_${j} = 0.0;`).join(" ")).join("\n  ");
    compute = `${R.map((i) => `let x${i} = As[ao${i} + kq];`).join(" ")}
      ${C.map((j) => `let y${j} = Bs[bo${j} + kq];`).join(" ")}
      ${R.map((i) => C.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n      ")}`;
    stores = R.map((i) =>
      C.map((j) => `store(o_base, m0 + ty + ${i * TY}u, n0 + tx + ${j * TX}u, c${i}_${j});`)
        .join(" ")
    ).join("\n  ");
  } else {
    accDecl = R.map((i) => `var c${i} = vec4<f32>(0.0);`).join("\n  ");
    const steps = range(4).map((kk) =>
      `let y${kk} = Bs[(kq * 4u + ${kk}u) * ${TX}u + tx];
      ${R.map((i) => `c${i} = fma(vec4<f32>(x${i}[${kk}]), y${kk}, c${i});`).join(" ")}`
    );
    compute = `${R.map((i) => `let x${i} = As[ao${i} + kq];`).join(" ")}
      ${steps.join("\n      ")}`;
    stores = R.map((i) =>
      C.map((j) => `store(o_base, m0 + ty + ${i * TY}u, n0 + tx * 4u + ${j}u, c${i}[${j}]);`)
        .join(" ")
    ).join("\n  ");
  }

  const loadB = nk
    ? loader(v, "b", "load_b", v.vecB, "p.N", "p.K", "p.K")
    : loader(v, "b", "load_b", v.vecB, "p.K", "p.N", "p.N");
  return /* wgsl */ `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

// As[m * ${S} + k/4]: K contiguous, rows padded by one vec4.
var<workgroup> As: array<vec4<f32>, ${t.bm * S}>;
// ${nk ? `Bs[n * ${S} + k/4]: as As` : `Bs[k * ${TX} + n/4]: N contiguous, as B is stored`}.
var<workgroup> Bs: array<vec4<f32>, ${nk ? t.bn * S : t.bk * TX}>;

${loader(v, "a", "load_a", v.vecA, "p.M", "p.K", "p.K")}
${loadB}

fn store(o_base: u32, m: u32, n: u32, acc: f32) {
  if (m < p.M && n < p.N) {
    let o = o_base + m * p.N + n;
    out[o] = ${gemmEpilogueExpr(v, "acc")};
  }
}

@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let n0 = wg.x * ${t.bn}u;
  let m0 = wg.y * ${t.bm}u;
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  let tx = tid % ${TX}u;
  let ty = tid / ${TX}u;
  ${slotIdx.join("\n  ")}
  ${rowOff.join(" ")}
  ${colOff.join(" ")}
  ${accDecl}
  ${loopHead}
  for (var k0 = 0u; k0 < p.K; k0 += ${t.bk}u) {
    ${stage}
    workgroupBarrier();
    ${prefetch}
    for (var kq = 0u; kq < ${KQ}u; kq++) {
      ${compute}
    }
    workgroupBarrier();
  }
  ${stores}
}`;
}

/** The cached KernelSpec of a variant; `prefix` names the op ("linear", "matmul_nn", ...). */
export function kStageGemmSpec(prefix: string, v: KStageVariant): KernelSpec {
  const t = v.tile;
  const variant = { ...v, tile: { ...t } };
  return cachedGemmSpec(
    prefix,
    v,
    `k${v.prefetch ? "p" : ""}${t.bm}x${t.bn}x${t.bk}t${t.tm}`,
    () => kStageCode(variant),
  );
}
