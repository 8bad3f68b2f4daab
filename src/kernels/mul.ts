/**
 * Elementwise multiply with add's broadcast rule (b.size divides a.size, b repeats over a's
 * leading dims), and scaling by a constant.
 */
import type { GpuContext } from "../gpu/context.ts";
import type { Tensor } from "../gpu/tensor.ts";
import { unary, unarySpec } from "./activation.ts";
import { binarySpec, broadcastBinary } from "./add.ts";

const MUL = binarySpec("mul_f32", (a, b) => `${a} * ${b}`);

const SCALE = unarySpec("scale_f32", (x) => `${x} * p.s`);

/** a * b (b a tensor whose size divides a's, repeated; or a number: a scaled by it). */
export function mul(ctx: GpuContext, a: Tensor, b: Tensor | number, out?: Tensor): Tensor {
  if (typeof b === "number") return scale(ctx, a, b, out);
  return broadcastBinary(ctx, MUL, "mul", a, b, out);
}

/** x * s for a constant s. */
export function scale(ctx: GpuContext, x: Tensor, s: number, out?: Tensor): Tensor {
  return unary(ctx, SCALE, "scale", x, s, out);
}
