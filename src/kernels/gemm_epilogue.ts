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
}

/** WGSL declarations of a, b, bias?, residual?, out after the uniform at binding 0. */
export function gemmBindingDecls(v: GemmEpilogue): string {
  const vecType = (vec: boolean) => (vec ? "vec4<f32>" : "f32");
  let binding = 1;
  const decls = [
    `@group(0) @binding(${binding++}) var<storage, read> a: array<${vecType(v.vecA)}>;`,
    `@group(0) @binding(${binding++}) var<storage, read> b: array<${vecType(v.vecB)}>;`,
  ];
  if (v.bias) decls.push(`@group(0) @binding(${binding++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) {
    decls.push(`@group(0) @binding(${binding++}) var<storage, read> residual: array<f32>;`);
  }
  decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>;`);
  return decls.join("\n");
}

/** The stored value of accumulator `acc` at column `n`, output index `o` (WGSL names). */
export function gemmEpilogueExpr(v: GemmEpilogue, acc: string): string {
  let value = acc;
  if (v.bias) value = `(${value} + bias[n])`;
  value = activationExpr(v.activation, value);
  if (v.residual) value = `${value} + residual[o]`;
  return value;
}

const specs = new Map<string, KernelSpec>();

/**
 * The cached KernelSpec named `<prefix>[_bias][_act][_residual]_f32[_a4][_b4]_<tile>`; `code`
 * builds its WGSL on first use.
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
    spec = { name, bindings, code };
    specs.set(name, spec);
  }
  return spec;
}
