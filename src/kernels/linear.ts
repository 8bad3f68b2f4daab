/**
 * Linear layer: y = act(x @ W^T + bias) + residual, with W in PyTorch layout [N, K]. Runs the
 * tiled GEMM of matmul.ts with the bias, activation and residual fused into its store, so a
 * transformer MLP or projection is one dispatch and one write of y.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor } from "../gpu/tensor.ts";
import type { Activation } from "./activation.ts";
import { runGemm } from "./matmul.ts";

export type { Activation } from "./activation.ts";

export interface LinearOptions {
  /** Applied after the bias; "gelu" is the exact erf form of torch's nn.GELU(). */
  activation?: Activation;
  /** Added after the activation; same number of elements as the output. */
  residual?: Tensor;
  out?: Tensor;
  /** A GEMM variant by name ("tile64", "reg_m8x8w16"), overriding the tuned / default one. */
  variant?: string;
}

/**
 * x: [..., K] (M = x.size / K rows), weight: [N, K], bias: [N] or null.
 * Returns [...x.shape.slice(0, -1), N].
 */
export function linear(
  ctx: GpuContext,
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  opts: LinearOptions = {},
): Tensor {
  const activation = opts.activation ?? "none";
  if (weight.shape.length !== 2) {
    throw new Error(`linear: weight must be [N, K], got [${weight.shape}]`);
  }
  const [N, K] = weight.shape;
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== K) {
    throw new Error(`linear: x [${x.shape}] must end in K=${K} (weight [${weight.shape}])`);
  }
  if (K === 0) throw new Error("linear: K must be at least 1");
  const M = x.size / K;
  for (const [t, what] of [[bias, "bias"], [opts.residual, "residual"]] as const) {
    if (t && t.dtype !== "f32") throw new Error(`linear: ${what} must be f32, got ${t.dtype}`);
  }
  if (bias && bias.size !== N) {
    throw new Error(`linear: bias has ${bias.size} elements, need N=${N}`);
  }
  const outShape = [...x.shape.slice(0, -1), N];
  const residual = opts.residual;
  if (residual && residual.size !== M * N) {
    throw new Error(
      `linear: residual [${residual.shape}] has ${residual.size} elements, need ${M * N}`,
    );
  }
  const y = opts.out ?? emptyTensor(ctx, outShape, "linear.out");
  if (y.size !== M * N) throw new Error(`linear: out has ${y.size} elements, need ${M * N}`);
  for (const [t, what] of [[x, "x"], [weight, "weight"], [bias, "bias"], [residual, "residual"]]) {
    if (t && (t as Tensor).buffer === y.buffer) {
      throw new Error(`linear: out must not share a buffer with ${what}`);
    }
  }
  const buffers = [x.buffer, weight.buffer];
  if (bias) buffers.push(bias.buffer);
  if (residual) buffers.push(residual.buffer);
  buffers.push(y.buffer);
  runGemm(
    ctx,
    "linear",
    {
      bLayout: "nk",
      vecA: K % 4 === 0,
      vecB: K % 4 === 0,
      bias: bias !== null,
      activation,
      residual: residual !== undefined,
      // precision "f16": f16 operands pick the "_f16..." variant (f32 accumulation).
      ...(x.dtype === "f16" ? { aF16: true } : {}),
      ...(weight.dtype === "f16" ? { bF16: true } : {}),
      ...(y.dtype === "f16" ? { outF16: true } : {}),
    },
    {
      batch: 1,
      M,
      N,
      K,
      strideA: 0,
      strideB: 0,
      strideOut: 0,
    },
    buffers,
    opts.variant,
  );
  return y;
}
