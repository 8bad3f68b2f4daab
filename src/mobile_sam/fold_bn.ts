/**
 * TinyViT's `Conv2d_BN` (a bias-free Conv2d, then BatchNorm2d with running statistics) folded
 * into one convolution with a bias, at load, as the official `Conv2d_BN.fuse()` does:
 *   s = gamma / sqrt(running_var + eps);  weight' = weight * s (per output channel);
 *   bias' = beta - running_mean * s.
 * Folding happens in float64 and rounds once to float32.
 */
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";

/** BatchNorm2d's default eps, which every TinyViT BatchNorm uses. */
export const BN_EPS = 1e-5;

export interface FoldedConv {
  /** [Cout, Cin / groups, k, k], PyTorch layout. */
  weight: Float32Array;
  shape: number[];
  bias: Float32Array;
}

/** Folds the plain arrays: weight [Cout, ...] (Cout rows of equal length), BN vectors [Cout]. */
export function foldBatchNorm(
  weight: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  mean: Float32Array,
  variance: Float32Array,
  eps = BN_EPS,
): { weight: Float32Array; bias: Float32Array } {
  const cout = gamma.length;
  if ([beta, mean, variance].some((v) => v.length !== cout) || weight.length % cout !== 0) {
    throw new Error(
      `foldBatchNorm: ${weight.length} weights and BatchNorm vectors of ${gamma.length}, ` +
        `${beta.length}, ${mean.length}, ${variance.length} do not agree`,
    );
  }
  const per = weight.length / cout;
  const w = new Float32Array(weight.length);
  const b = new Float32Array(cout);
  for (let o = 0; o < cout; o++) {
    const s = gamma[o] / Math.sqrt(variance[o] + eps);
    for (let j = 0; j < per; j++) w[o * per + j] = weight[o * per + j] * s;
    b[o] = beta[o] - mean[o] * s;
  }
  return { weight: w, bias: b };
}

/** Folds `<prefix>.c.weight` with `<prefix>.bn.*` of a state dict. */
export function foldConvBn(sd: StateDict, prefix: string): FoldedConv {
  const get = (name: string) => {
    const t = sd.get(`${prefix}.${name}`);
    if (!t) throw new Error(`MobileSAM: checkpoint has no tensor '${prefix}.${name}'`);
    return t;
  };
  const conv = get("c.weight");
  const folded = foldBatchNorm(
    tensorF32(conv),
    tensorF32(get("bn.weight")),
    tensorF32(get("bn.bias")),
    tensorF32(get("bn.running_mean")),
    tensorF32(get("bn.running_var")),
  );
  return { ...folded, shape: [...conv.shape] };
}
