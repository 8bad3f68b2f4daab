/**
 * Register-blocked GEMM without workgroup memory: the variant family for CPU adapters.
 *
 * On llvmpipe / lavapipe a workgroup runs as SIMD loops over its invocations, and every load
 * whose address differs between invocations becomes a scalar gather (several ns a value),
 * while a load whose address is the same in every invocation of the workgroup is one load
 * and a broadcast; workgroup memory and barriers add loops of their own. So here each
 * invocation keeps an RM x RN block of the output in registers and reads its operands
 * straight from storage: along the "lane" dimension the invocations of a workgroup own
 * different rows (or columns), while the other operand's block is the same for all of them.
 *
 * Layouts as in matmul.ts: A is [M, K] (K contiguous); B is "nk" ([N, K], linear weights,
 * transposed B) or "kn" ([K, N]). K is walked in vec4 steps where the contiguous dims allow
 * ("_a4" / "_b4"), scalar otherwise. The fused epilogue (bias, activation, residual) is
 * matmul.ts's. Measured on lavapipe (2 cores shared with other work, so compare within one
 * run): 512 rows x 768 x 768, the 64x64 shared-memory tile 0.96 GFLOP/s, m8x8 with 16
 * invocations 1.8, with 8 (one 256-bit SIMD vector of llvmpipe: no loop over sub-groups, no
 * spills across it) 2.6.
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

/** A register variant's shape. */
export interface RegisterTile {
  /** Which output dimension the invocations of a workgroup split: rows (M) or columns (N). */
  lanes: "m" | "n";
  /** Output rows and columns per invocation. RN is a multiple of 4 for "kn" + vecB. */
  rm: number;
  rn: number;
  /** Invocations per workgroup. */
  wg: number;
}

export interface RegisterGemmVariant extends GemmEpilogue {
  tile: RegisterTile;
}

/** Output rows and columns one workgroup covers. */
export function registerBlock(t: RegisterTile): { bm: number; bn: number } {
  return t.lanes === "m" ? { bm: t.rm * t.wg, bn: t.rn } : { bm: t.rm, bn: t.rn * t.wg };
}

/** "m8x8w16": lanes over M, 8 x 8 per invocation, 16 invocations. */
export function registerTileName(t: RegisterTile): string {
  return `${t.lanes}${t.rm}x${t.rn}w${t.wg}`;
}

/** Parses a name made by `registerTileName`, or returns null. */
export function parseRegisterTile(name: string): RegisterTile | null {
  const m = /^([mn])(\d+)x(\d+)w(\d+)$/.exec(name);
  if (!m) return null;
  const [rm, rn, wg] = [Number(m[2]), Number(m[3]), Number(m[4])];
  const ok = (x: number, max: number) => Number.isInteger(x) && x >= 1 && x <= max;
  if (!ok(rm, 16) || !ok(rn, 32) || !ok(wg, 256)) return null;
  return { lanes: m[1] as "m" | "n", rm, rn, wg };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function registerGemmCode(v: RegisterGemmVariant): string {
  const t = v.tile;
  const R = range(t.rm);
  const C = range(t.rn);
  const value = gemmEpilogueExpr(v, "acc");

  // Row / column origins: the lane dimension differs per invocation, the other is uniform.
  const origin = t.lanes === "m"
    ? `let m0 = (wg.y * ${t.wg}u + lid) * ${t.rm}u;
  let n0 = wg.x * ${t.rn}u;`
    : `let m0 = wg.y * ${t.rm}u;
  let n0 = (wg.x * ${t.wg}u + lid) * ${t.rn}u;`;
  // Clamped row starts: out-of-range rows / columns read a valid row and are never stored.
  const rowBases = R.map((i) => `let ra${i} = a_base + min(m0 + ${i}u, p.M - 1u) * p.K;`);
  const acc = R.map((i) => C.map((j) => `var c${i}_${j} = 0.0;`).join(" "));

  // Scalar loads of A row i / B column j at k (one lane of a vec4 where the buffer is vec4).
  const aLoad = (i: number) =>
    gemmLoad(v, "a", v.vecA ? `a[(ra${i} + k) / 4u][k % 4u]` : `a[ra${i} + k]`, false);
  const bLoadNk = (j: number) =>
    gemmLoad(v, "b", v.vecB ? `b[(rb${j} + k) / 4u][k % 4u]` : `b[rb${j} + k]`, false);
  let body: string;
  if (v.bLayout === "nk") {
    const colBases = C.map((j) => `let rb${j} = b_base + min(n0 + ${j}u, p.N - 1u) * p.K;`);
    if (v.vecA && v.vecB) {
      body = `${colBases.join("\n  ")}
  for (var k = 0u; k < p.K; k += 4u) {
    ${R.map((i) => `let x${i} = ${gemmLoad(v, "a", `a[(ra${i} + k) / 4u]`, true)};`).join(" ")}
    ${C.map((j) => `let y${j} = ${gemmLoad(v, "b", `b[(rb${j} + k) / 4u]`, true)};`).join(" ")}
    ${R.map((i) => C.map((j) => `c${i}_${j} += dot(x${i}, y${j});`).join(" ")).join("\n    ")}
  }`;
    } else {
      body = `${colBases.join("\n  ")}
  for (var k = 0u; k < p.K; k++) {
    ${
        R.map((i) => `let x${i} = ${aLoad(i)};`)
          .join(" ")
      }
    ${
        C.map((j) => `let y${j} = ${bLoadNk(j)};`)
          .join(" ")
      }
    ${
        R.map((i) => C.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join(
          "\n    ",
        )
      }
  }`;
    }
  } else {
    // "kn": B rows are N-contiguous; column j of the block is n0 + j (clamped).
    const colIdx = C.map((j) => `let cn${j} = min(n0 + ${j}u, p.N - 1u);`);
    const bLoad = (j: number) =>
      gemmLoad(
        v,
        "b",
        v.vecB
          ? `b[(b_base + k * p.N + cn${j}) / 4u][(cn${j}) % 4u]`
          : `b[b_base + k * p.N + cn${j}]`,
        false,
      );
    body = `${colIdx.join("\n  ")}
  for (var k = 0u; k < p.K; k++) {
    ${
      R.map((i) => `let x${i} = ${aLoad(i)};`)
        .join(" ")
    }
    ${C.map((j) => `let y${j} = ${bLoad(j)};`).join(" ")}
    ${
      R.map((i) => C.map((j) => `c${i}_${j} = fma(x${i}, y${j}, c${i}_${j});`).join(" ")).join(
        "\n    ",
      )
    }
  }`;
  }

  const stores = R.map((i) =>
    C.map((j) => `store(o_base, m0 + ${i}u, n0 + ${j}u, c${i}_${j});`).join(" ")
  );
  return /* wgsl */ `
${v.activation === "none" ? "" : ACTIVATION_WGSL}
struct P { M: u32, N: u32, K: u32, stride_a: u32, stride_b: u32, stride_out: u32 }
@group(0) @binding(0) var<uniform> p: P;
${gemmBindingDecls(v)}

fn store(o_base: u32, m: u32, n: u32, acc: f32) {
  if (m < p.M && n < p.N) {
    let o = o_base + m * p.N + n;
    out[o] = ${value};
  }
}

@compute @workgroup_size(${t.wg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let a_base = wg.z * p.stride_a;
  let b_base = wg.z * p.stride_b;
  let o_base = wg.z * p.stride_out;
  ${origin}
  ${rowBases.join("\n  ")}
  ${acc.join("\n  ")}
  ${body}
  ${stores.join("\n  ")}
}`;
}

/** The cached KernelSpec of a register variant; `prefix` names the op ("linear", ...). */
export function registerGemmSpec(prefix: string, v: RegisterGemmVariant): KernelSpec {
  const variant = { ...v, tile: { ...v.tile } };
  return cachedGemmSpec(
    prefix,
    v,
    `reg_${registerTileName(v.tile)}`,
    () => registerGemmCode(variant),
  );
}
