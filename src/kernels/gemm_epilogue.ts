/**
 * What every GEMM variant shares (the shared-memory tiles of matmul.ts and the register blocks
 * of gemm_register.ts): its storage bindings, the fused epilogue of `linear` (bias, then the
 * activation, then the residual) and the spec naming and caching.
 */
import type { KernelSpec } from "../gpu/context.ts";
import { type Activation, activationExpr } from "./activation.ts";

/** The parts of a GEMM variant that the op fixes (layout, vec4 access, epilogue). */
export interface GemmEpilogue {
  /** "nk": B is [N, K] (K contiguous: linear weights, transposeB); "kn": B is [K, N]. */
  bLayout: "nk" | "kn";
  /** A rows (K) load as vec4: K % 4 == 0. */
  vecA: boolean;
  /** B loads as vec4 along its contiguous dim: K % 4 == 0 for "nk", N % 4 == 0 for "kn". */
  vecB: boolean;
  bias: boolean;
  activation: Activation;
  residual: boolean;
  /**
   * precision "f16" (the "_f16..." variants): A, B (the weight of a linear) or out stored as
   * f16. Loads widen to f32 and the accumulator, bias, activation and residual stay f32;
   * only the stored value is rounded. Absent: f32, the shader as before.
   */
  aF16?: boolean;
  bF16?: boolean;
  outF16?: boolean;
}

/** Does any operand of the variant live in f16 (the shader needs `enable f16;`)? */
export function gemmUsesF16(v: GemmEpilogue): boolean {
  return !!(v.aF16 || v.bF16 || v.outF16);
}

/** "f16" and the letters of the f16 operands: a, w (B, a linear's weight), o (out). */
export function gemmF16Letters(v: GemmEpilogue): string {
  return `f16${v.aF16 ? "a" : ""}${v.bF16 ? "w" : ""}${v.outF16 ? "o" : ""}`;
}

/**
 * `expr` read from operand `which` ("a" or "b"), widened to f32 when it is stored as f16:
 * `vec` for a vec4 value, else a scalar. Unchanged for f32 operands.
 */
export function gemmLoad(
  v: GemmEpilogue,
  which: "a" | "b",
  expr: string,
  vec: boolean,
): string {
  const half = which === "a" ? v.aF16 : v.bF16;
  if (!half) return expr;
  return vec ? `vec4<f32>(${expr})` : `f32(${expr})`;
}

/** WGSL declarations of a, b, bias?, residual?, out after the uniform at binding 0. */
export function gemmBindingDecls(v: GemmEpilogue): string {
  const elem = (half?: boolean) => (half ? "f16" : "f32");
  const vecType = (vec: boolean, half?: boolean) => (vec ? `vec4<${elem(half)}>` : elem(half));
  let binding = 1;
  const decls = [
    `@group(0) @binding(${binding++}) var<storage, read> a: array<${vecType(v.vecA, v.aF16)}>;`,
    `@group(0) @binding(${binding++}) var<storage, read> b: array<${vecType(v.vecB, v.bF16)}>;`,
  ];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(
    `@group(0) @binding(${binding++}) var<storage, read_write> out: array<${elem(v.outF16)}>;`,
  );
  return decls.join("\n");
}

/** The stored value of accumulator `acc` at column `n`, output index `o` (WGSL names). */
export function gemmEpilogueExpr(v: GemmEpilogue, acc: string): string {
  let value = acc;
  if (v.bias) value = `(${value} + bias[n])`;
  value = activationExpr(v.activation, value);
  if (v.residual) value = `${value} + residual[o]`;
  return v.outF16 ? `f16(${value})` : value;
}

const specs = new Map<string, KernelSpec>();

/**
 * The cached KernelSpec named `<prefix>[_bias][_act][_residual]_f32[_f16{a,w,o}][_a4][_b4]_<tile>`
 * ("_f16wo": B and out in f16); `code` builds its WGSL on first use.
 */
export function cachedGemmSpec(
  prefix: string,
  v: GemmEpilogue,
  tileName: string,
  code: () => string,
): KernelSpec {
  const parts = [prefix];
  if (v.bias) parts.push("bias");
  if (v.activation !== "none") parts.push(v.activation);
  if (v.residual) parts.push("residual");
  parts.push("f32");
  if (gemmUsesF16(v)) {
    parts.push(`f16${v.aF16 ? "a" : ""}${v.bF16 ? "w" : ""}${v.outF16 ? "o" : ""}`);
  }
  if (v.vecA) parts.push("a4");
  if (v.vecB) parts.push("b4");
  parts.push(tileName);
  const name = parts.join("_");
  let spec = specs.get(name);
  if (!spec) {
    const bindings: KernelSpec["bindings"] = [
      "uniform",
      "read",
      "read",
      ...(v.bias ? ["read" as const] : []),
      ...(v.residual ? ["read" as const] : []),
      "write",
    ];
    const half = gemmUsesF16(v);
    spec = { name, bindings, code: half ? () => `enable f16;\n${code()}` : code };
    specs.set(name, spec);
  }
  return spec;
}
