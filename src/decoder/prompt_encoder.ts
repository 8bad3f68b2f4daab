/**
 * SAM's PromptEncoder (segment_anything/modeling/prompt_encoder.py).
 *
 * Sparse embeddings (points, box corners: a handful of tokens) are computed on the CPU in
 * float32 arithmetic (Math.fround at every step PyTorch rounds). The dense positional
 * encoding is computed once on the CPU and uploaded; mask prompts go through
 * mask_downscaling on the GPU (conv 2x2 s2 -> LayerNorm2d -> GELU -> conv 2x2 s2 ->
 * LayerNorm2d -> GELU -> conv 1x1), token-major, so LayerNorm2d is a LayerNorm over the last
 * dim.
 *
 * Coordinates given to this module are already in the resized input frame (see
 * transforms.ts for ResizeLongestSide.apply_coords).
 */
import type { GpuContext } from "../gpu/context.ts";
import { type Tensor, tensorFrom, tensorFromF16 } from "../gpu/tensor.ts";
import type { Precision } from "../precision.ts";
import { activation } from "../kernels/activation.ts";
import { conv2d } from "../kernels/conv2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { tensorF32 } from "../weights/host_tensor.ts";
import type { SamArch, StateDict } from "../weights/types.ts";

const f = Math.fround;
/** 2 * np.pi as PyTorch multiplies a float32 tensor by it (the scalar cast to float32). */
const TWO_PI = f(2 * Math.PI);
/** LayerNorm2d's eps in mask_downscaling. */
const LN2D_EPS = 1e-6;

/** A prompt in the resized input frame, as SamPredictor.predict_torch receives it. */
export interface FramePrompt {
  /** [x0, y0, x1, y1, ...] in input-frame pixels. */
  coords?: Float32Array;
  /** One per point: 1 foreground, 0 background, -1 padding (not a point). */
  labels?: ArrayLike<number>;
  /** [x0, y0, x1, y1] in input-frame pixels. */
  box?: Float32Array;
}

/** Number of sparse tokens a prompt produces (points, plus a padding point without a box, plus 2 box corners). */
export function sparseTokenCount(p: FramePrompt): number {
  const points = p.labels ? p.labels.length : 0;
  const hasPoints = points > 0;
  return (hasPoints ? points + (p.box ? 0 : 1) : 0) + (p.box ? 2 : 0);
}

function host(sd: StateDict, name: string): Float32Array {
  const t = sd.get(name);
  if (!t) throw new Error(`prompt encoder: checkpoint has no tensor '${name}'`);
  return tensorF32(t);
}

/** Uploads a checkpoint tensor (float32) under its official name. */
export function uploadWeight(
  ctx: GpuContext,
  sd: StateDict,
  name: string,
  shape?: readonly number[],
): Tensor {
  const t = sd.get(name);
  if (!t) throw new Error(`decoder: checkpoint has no tensor '${name}'`);
  return tensorFrom(ctx, tensorF32(t), shape ?? t.shape, name);
}

/** A GEMM weight (a linear's [N, K]): f16 under precision "f16", else as `uploadWeight`. */
export function uploadMatrix(
  ctx: GpuContext,
  sd: StateDict,
  name: string,
  precision: Precision,
): Tensor {
  if (precision !== "f16") return uploadWeight(ctx, sd, name);
  const t = sd.get(name);
  if (!t) throw new Error(`decoder: checkpoint has no tensor '${name}'`);
  return tensorFromF16(ctx, tensorF32(t), t.shape, name);
}

interface MaskDownscaling {
  conv0: { w: Tensor; b: Tensor };
  ln1: { w: Tensor; b: Tensor };
  conv3: { w: Tensor; b: Tensor };
  ln4: { w: Tensor; b: Tensor };
  /** 1x1 conv as a linear: weight [D, maskInChans]. */
  conv6: { w: Tensor; b: Tensor };
}

/** What the prompt encoder needs of an architecture (SAM's, or SAM 2's decoder side). */
export type PromptEncoderArch = Pick<SamArch, "promptEmbedDim" | "imgSize" | "patchSize">;

export class PromptEncoder {
  readonly embedDim: number;
  /** Side of the image embedding (s); mask prompts are 4s x 4s. */
  readonly embedSize: number;
  readonly imgSize: number;
  /** positional_encoding_gaussian_matrix [2, D/2]. */
  private readonly gaussian: Float32Array;
  /** point_embeddings[0..3]: background, foreground, box corner 0, box corner 1. */
  private readonly pointEmbeddings: Float32Array[];
  private readonly notAPoint: Float32Array;
  readonly noMaskEmbed: Float32Array;
  private readonly maskDown: MaskDownscaling;
  private densePeTokens: Tensor | null = null;
  private noMaskTensor: Tensor | null = null;

  private constructor(
    private readonly ctx: GpuContext,
    sd: StateDict,
    arch: PromptEncoderArch,
    /** Tensor name prefix: "prompt_encoder." (SAM), "sam_prompt_encoder." (SAM 2). */
    p: string,
  ) {
    this.embedDim = arch.promptEmbedDim;
    this.embedSize = arch.imgSize / arch.patchSize;
    this.imgSize = arch.imgSize;
    this.gaussian = host(sd, `${p}pe_layer.positional_encoding_gaussian_matrix`);
    if (this.gaussian.length !== this.embedDim) {
      throw new Error(
        `prompt encoder: gaussian matrix has ${this.gaussian.length} values, need 2 x ${
          this.embedDim / 2
        }`,
      );
    }
    this.pointEmbeddings = [0, 1, 2, 3].map((i) => host(sd, `${p}point_embeddings.${i}.weight`));
    this.notAPoint = host(sd, `${p}not_a_point_embed.weight`);
    this.noMaskEmbed = host(sd, `${p}no_mask_embed.weight`);
    const up = (n: string, shape?: number[]) => uploadWeight(ctx, sd, `${p}${n}`, shape);
    const conv6 = sd.get(`${p}mask_downscaling.6.weight`)!;
    this.maskDown = {
      conv0: { w: up("mask_downscaling.0.weight"), b: up("mask_downscaling.0.bias") },
      ln1: { w: up("mask_downscaling.1.weight"), b: up("mask_downscaling.1.bias") },
      conv3: { w: up("mask_downscaling.3.weight"), b: up("mask_downscaling.3.bias") },
      ln4: { w: up("mask_downscaling.4.weight"), b: up("mask_downscaling.4.bias") },
      conv6: {
        // [D, maskInChans, 1, 1] viewed as [D, maskInChans]
        w: up("mask_downscaling.6.weight", [conv6.shape[0], conv6.shape[1]]),
        b: up("mask_downscaling.6.bias"),
      },
    };
  }

  static create(
    ctx: GpuContext,
    sd: StateDict,
    arch: PromptEncoderArch,
    prefix = "prompt_encoder.",
  ): PromptEncoder {
    return new PromptEncoder(ctx, sd, arch, prefix);
  }

  /**
   * PositionEmbeddingRandom._pe_encoding of one point already normalised to [0, 1], written
   * into out[offset .. offset + D): sin of the D/2 projections, then cos.
   */
  private peEncode(nx: number, ny: number, out: Float32Array, offset: number): void {
    const half = this.embedDim / 2;
    const cx = f(f(2 * nx) - 1), cy = f(f(2 * ny) - 1);
    for (let k = 0; k < half; k++) {
      // (N, 2) @ (2, D/2): a two-term float32 dot product.
      const proj = f(f(cx * this.gaussian[k]) + f(cy * this.gaussian[half + k]));
      const arg = f(TWO_PI * proj);
      out[offset + k] = f(Math.sin(arg));
      out[offset + half + k] = f(Math.cos(arg));
    }
  }

  /** forward_with_coords for one input-frame point (after the +0.5 shift). */
  private peAt(x: number, y: number, out: Float32Array, offset: number): void {
    this.peEncode(f(x / this.imgSize), f(y / this.imgSize), out, offset);
  }

  /** get_dense_pe() as (D, s, s), channel-major like the official (1, D, s, s). */
  densePe(): Float32Array {
    const s = this.embedSize, D = this.embedDim;
    const tokens = this.densePeTokenData();
    const out = new Float32Array(D * s * s);
    for (let t = 0; t < s * s; t++) {
      for (let c = 0; c < D; c++) out[c * s * s + t] = tokens[t * D + c];
    }
    return out;
  }

  /** get_dense_pe() token-major: (s*s, D), token t = row * s + col. */
  private densePeTokenData(): Float32Array {
    const s = this.embedSize, D = this.embedDim;
    const out = new Float32Array(s * s * D);
    for (let r = 0; r < s; r++) {
      // grid.cumsum - 0.5 = index + 0.5, then divided by the side (float32).
      const ny = f(f(r + 0.5) / s);
      for (let c = 0; c < s; c++) this.peEncode(f(f(c + 0.5) / s), ny, out, (r * s + c) * D);
    }
    return out;
  }

  /** The dense PE uploaded once, token-major (s*s, D). */
  densePeGpu(): Tensor {
    this.densePeTokens ??= tensorFrom(
      this.ctx,
      this.densePeTokenData(),
      [this.embedSize * this.embedSize, this.embedDim],
      "prompt_encoder.dense_pe",
    );
    return this.densePeTokens;
  }

  /** no_mask_embed uploaded once: (D), broadcast over the image tokens by `add`. */
  noMaskEmbedGpu(): Tensor {
    this.noMaskTensor ??= tensorFrom(
      this.ctx,
      this.noMaskEmbed,
      [this.embedDim],
      "prompt_encoder.no_mask_embed",
    );
    return this.noMaskTensor;
  }

  /**
   * Sparse embeddings (N, D) of one prompt, N = sparseTokenCount(p): the points (+0.5,
   * PE, label embedding; label -1 is not_a_point with zero PE), the padding point when there
   * is no box, then the two box corners.
   */
  sparse(p: FramePrompt): Float32Array {
    const D = this.embedDim;
    const n = sparseTokenCount(p);
    const out = new Float32Array(n * D);
    let row = 0;
    const addEmbedding = (w: Float32Array) => {
      for (let c = 0; c < D; c++) out[row * D + c] = f(out[row * D + c] + w[c]);
    };
    const points = p.labels ? p.labels.length : 0;
    if (points > 0) {
      const coords = p.coords!;
      const labels = [...Array.from(p.labels!), ...(p.box ? [] : [-1])];
      for (let i = 0; i < labels.length; i++, row++) {
        const label = labels[i];
        if (label === -1) {
          // PE zeroed, then not_a_point_embed added.
          addEmbedding(this.notAPoint);
          continue;
        }
        this.peAt(f(coords[2 * i] + 0.5), f(coords[2 * i + 1] + 0.5), out, row * D);
        if (label === 0) addEmbedding(this.pointEmbeddings[0]);
        else if (label === 1) addEmbedding(this.pointEmbeddings[1]);
        else throw new Error(`prompt encoder: point label ${label} is not -1, 0 or 1`);
      }
    }
    if (p.box) {
      for (let corner = 0; corner < 2; corner++, row++) {
        const x = f(p.box[2 * corner] + 0.5), y = f(p.box[2 * corner + 1] + 0.5);
        this.peAt(x, y, out, row * D);
        addEmbedding(this.pointEmbeddings[2 + corner]);
      }
    }
    return out;
  }

  /**
   * _embed_points without padding, for any mix of labels (N, D): -1 not_a_point (zero PE),
   * 0 / 1 background / foreground, 2 / 3 box corners; coordinates in the input frame, +0.5
   * applied here. SAM 2's image predictor gives its box this way, as two points labelled 2
   * and 3 ahead of the clicks.
   */
  embedPoints(coords: Float32Array, labels: ArrayLike<number>): Float32Array {
    const D = this.embedDim;
    const out = new Float32Array(labels.length * D);
    for (let i = 0; i < labels.length; i++) {
      const label = labels[i];
      if (label !== -1) {
        this.peAt(f(coords[2 * i] + 0.5), f(coords[2 * i + 1] + 0.5), out, i * D);
      }
      const w = label === -1 ? this.notAPoint : this.pointEmbeddings[label];
      if (!w) throw new Error(`prompt encoder: point label ${label} is not -1, 0, 1, 2 or 3`);
      for (let c = 0; c < D; c++) out[i * D + c] = f(out[i * D + c] + w[c]);
    }
    return out;
  }

  /**
   * mask_downscaling of one low-res mask prompt (4s x 4s logits) on the GPU, token-major:
   * returns (s*s, D). Intermediates are pushed to `temps` for the caller to destroy once the
   * work is submitted.
   */
  embedMask(mask: Tensor, temps: Tensor[]): Tensor {
    const ctx = this.ctx, m = this.maskDown;
    const side = 4 * this.embedSize;
    if (mask.size !== side * side) {
      throw new Error(`prompt encoder: mask input has ${mask.size} values, need ${side}x${side}`);
    }
    const x = mask.reshape([1, side, side]); // (Cin=1, 4s, 4s), chw
    const t = <T extends Tensor>(v: T): T => (temps.push(v), v);
    let h = t(conv2d(ctx, x, "chw", m.conv0.w, m.conv0.b, { stride: 2, padding: 0, temps })); // (2s, 2s, c/4)
    h = t(layerNorm(ctx, h, m.ln1.w, m.ln1.b, LN2D_EPS));
    h = t(activation(ctx, h, "gelu"));
    h = t(conv2d(ctx, h, "hwc", m.conv3.w, m.conv3.b, { stride: 2, padding: 0, temps })); // (s, s, c)
    h = t(layerNorm(ctx, h, m.ln4.w, m.ln4.b, LN2D_EPS));
    h = t(activation(ctx, h, "gelu"));
    const tokens = h.reshape([this.embedSize * this.embedSize, h.shape[2]]); // (s*s, c)
    return linear(ctx, tokens, m.conv6.w, m.conv6.b); // (s*s, D)
  }

  dispose(): void {
    for (const part of Object.values(this.maskDown)) {
      part.w.destroy();
      part.b.destroy();
    }
    this.densePeTokens?.destroy();
    this.densePeTokens = null;
    this.noMaskTensor?.destroy();
    this.noMaskTensor = null;
  }
}
