/**
 * SAM's image encoder (the official ImageEncoderViT) on our WebGPU kernels, one code path for
 * every size, driven by SamArch:
 *
 *   patch embed (16x16 stride-16 conv) + pos_embed
 *   blocks: x = x + proj(attn(norm1(x)))   (windowed blocks partition AFTER norm1, so the zero
 *                                           padded tokens take part in attention, as officially)
 *           x = x + lin2(gelu(lin1(norm2(x))))
 *   neck:   1x1 conv -> LayerNorm2d -> 3x3 conv (pad 1) -> LayerNorm2d, output (1, D, s, s) NCHW
 *
 * Activations are token-major [H, W, C]. The output projection is per token, so it runs after
 * window_unpartition on the real tokens only, with the residual fused into it.
 *
 * Weights are uploaded once (ImageEncoder.fromStateDict). Activations live in a fixed set of
 * buffers sized from the arch (encoderBufferPlan), reused by every block and every call; see
 * the plan for what shares which buffer.
 */
import type { GpuContext } from "../gpu/context.ts";
import {
  emptyTensor,
  numel,
  Tensor,
  type TensorDType,
  tensorFrom,
  tensorFromF16,
} from "../gpu/tensor.ts";
import { add } from "../kernels/add.ts";
import { attention, type HeadsView } from "../kernels/attention.ts";
import { conv2d } from "../kernels/conv2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { getRelPos, relPosBias } from "../kernels/rel_pos.ts";
import { windowPartition, windowUnpartition } from "../kernels/window.ts";
import { tensorF32 } from "../weights/load.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import type { Precision } from "../precision.ts";
import {
  type HostPrepare,
  neckForward,
  neckScratch,
  type NeckWeights,
  neckWeights,
  neckWinograd,
} from "./neck.ts";
import { preprocessImage } from "./preprocess.ts";
import type { SamImageEncoder } from "./encoder.ts";
import type { RgbImage } from "../types.ts";

/** Both of SAM's encoder LayerNorms (blocks and neck) use eps 1e-6. */
const LN_EPS = 1e-6;

/** The sizes one forward pass works with, derived from the arch. */
export interface EncoderGeometry {
  /** Token grid side (imgSize / patchSize): 64 for the real models. */
  grid: number;
  tokens: number;
  embedDim: number;
  heads: number;
  headDim: number;
  mlpDim: number;
  outDim: number;
  win: number;
  /** Windows per windowed block, and tokens including the zero padding. */
  windows: number;
  paddedTokens: number;
  /** Columns of the patch embedding's unfolded input (3 * patch * patch). */
  patchCols: number;
}

export function encoderGeometry(arch: SamArch): EncoderGeometry {
  const grid = arch.imgSize / arch.patchSize;
  if (!Number.isInteger(grid)) {
    throw new Error(
      `encoder: imgSize ${arch.imgSize} is not a multiple of patch ${arch.patchSize}`,
    );
  }
  const win = arch.windowSize;
  const perSide = win > 0 ? Math.ceil(grid / win) : 0;
  return {
    grid,
    tokens: grid * grid,
    embedDim: arch.embedDim,
    heads: arch.numHeads,
    headDim: arch.embedDim / arch.numHeads,
    mlpDim: arch.encoderMlpDim,
    outDim: arch.promptEmbedDim,
    win,
    windows: perSide * perSide,
    paddedTokens: perSide * perSide * win * win,
    patchCols: 3 * arch.patchSize * arch.patchSize,
  };
}

/** Is block i global (window 0) in the official build? */
function isGlobal(arch: SamArch, i: number): boolean {
  return arch.windowSize === 0 || arch.globalAttnIndexes.includes(i);
}

/**
 * The activation memory of one forward pass, in float32 elements.
 *
 * `owned`: buffers the encoder allocates once and reuses for every block and every call.
 * Lifetimes within a block:
 * - x: the residual stream between blocks; x2: the residual inside a block (after the
 *   attention), since a linear's out may not alias its residual input.
 * - tok: norm1 output, then norm2 output; in the neck the conv outputs. Sized for max(C, D).
 * - attn: the attention output ([windows, win^2, C] padded, or [N, C]).
 * - big: qkv, then (dead after attention) the MLP hidden layer; in the patch embedding and
 *   the neck the im2col scratch.
 * - input: the (3, S, S) image tensor when given as a Float32Array.
 *
 * - relH, relW: the decomposed rel-pos bias factors of the block's attention.
 *
 * The windowed blocks' partitioned norm1 output lives in "attn" (dead once qkv is computed,
 * before attention writes there) and their unpartitioned attention output in "tok" (norm1's
 * output is dead by then), so a pass allocates nothing but its output embedding.
 */
export interface EncoderBufferPlan {
  owned: Record<OwnedBuffer, number>;
  /** The owned buffers' bytes: the peak activation memory of a pass. */
  peakBytes: number;
  /** Bytes of the uploaded weights (rel-pos tables gathered per block; GEMM weights f16
   * under precision "f16"). */
  weightBytes: number;
  /** Bytes of one output embedding (1, D, s, s), owned by the caller. */
  outputBytes: number;
}

export type OwnedBuffer =
  | "x"
  | "x2"
  | "tok"
  | "attn"
  | "big"
  | "input"
  | "relH"
  | "relW"
  | "wino";

export function encoderBufferPlan(
  arch: SamArch,
  precision: Precision = "f32",
): EncoderBufferPlan {
  const g = encoderGeometry(arch);
  const N = g.tokens, C = g.embedDim, D = g.outDim;
  const blocks = Array.from({ length: arch.depth }, (_, i) => isGlobal(arch, i));
  const anyWindowed = blocks.some((global) => !global);
  const anyGlobal = blocks.some((global) => global);
  // Rows of a block's attention: padded windows for windowed blocks, the grid for global ones.
  const attnRows = Math.max(anyWindowed ? g.paddedTokens : 0, anyGlobal ? N : 0);
  // relH: [batch * heads, nq, kH]: windows * heads * win^2 * win, or heads * N * grid.
  const rel = Math.max(
    anyWindowed ? g.windows * g.heads * g.win * g.win * g.win : 0,
    anyGlobal ? g.heads * N * g.grid : 0,
  );
  const neck = neckScratch(g.grid, D, precision);
  const owned = {
    x: N * C,
    x2: N * Math.max(C, D),
    tok: N * Math.max(C, D),
    attn: attnRows * C,
    big: Math.max(attnRows * 3 * C, N * g.mlpDim, neck.cols, N * g.patchCols),
    input: 3 * arch.imgSize * arch.imgSize,
    relH: rel,
    relW: rel,
    wino: neck.wino,
  };
  const peakBytes = 4 * Object.values(owned).reduce((a, b) => a + b, 0);
  // Weights as uploaded: every encoder tensor of the official table except the raw rel-pos
  // tables, which are uploaded gathered by get_rel_pos as [span, span, headDim]. `matrices`:
  // the GEMM weights (patch embed, qkv, proj, lin1, lin2, the neck's convs), 2 bytes each
  // under precision "f16"; the rest (norms, biases, pos_embed, rel-pos) stays 4.
  // The neck's 3x3 conv: Winograd's [36, D, D] filter (f32), else [D, D, 3, 3].
  let matrices = C * g.patchCols + D * C + (neckWinograd(precision) ? 36 : 9) * D * D;
  let others = N * C + C + 4 * D;
  for (let i = 0; i < arch.depth; i++) {
    const span = isGlobal(arch, i) ? g.grid : g.win;
    matrices += 4 * C * C + 2 * C * g.mlpDim;
    others += 4 * C + 4 * C + g.mlpDim + C;
    others += 2 * span * span * g.headDim;
  }
  const weightBytes = 4 * others + (precision === "f16" ? 2 : 4) * matrices;
  return { owned, peakBytes, weightBytes, outputBytes: 4 * D * N };
}

/** Stage names reported to `onStage`, matching the fixture files (act_block3.npy ...). */
export type EncoderStage = "act_patch_embed" | `act_block${number}` | "image_embeddings";

export interface EncodeOptions {
  /**
   * Called right after each stage is recorded, with its output: act_patch_embed (before
   * pos_embed, [s, s, C]), act_block{k} ([s, s, C]), image_embeddings ((1, D, s, s)). The
   * tensor's buffer is reused by later stages: copy it (cloneTensor) to keep it.
   */
  onStage?: (stage: EncoderStage, t: Tensor) => void;
}

/** Records a copy of t into a new tensor (for keeping a stage's output). */
export function cloneTensor(ctx: GpuContext, t: Tensor, label = "clone"): Tensor {
  const copy = emptyTensor(ctx, t.shape, label);
  ctx.copy(t.buffer, 0, copy.buffer, 0, t.size * 4);
  return copy;
}

interface BlockWeights {
  global: boolean;
  norm1: [Tensor, Tensor];
  qkv: [Tensor, Tensor];
  proj: [Tensor, Tensor];
  norm2: [Tensor, Tensor];
  lin1: [Tensor, Tensor];
  lin2: [Tensor, Tensor];
  /** get_rel_pos tables, [span, span, headDim]. */
  rh: Tensor;
  rw: Tensor;
}

/** The image encoder of one model: weights on the GPU and its activation buffers. */
export class ImageEncoder {
  readonly geometry: EncoderGeometry;
  readonly plan: EncoderBufferPlan;
  private readonly weights: Tensor[] = [];
  private readonly patchW: Tensor;
  private readonly patchB: Tensor;
  private readonly posEmbed: Tensor;
  private readonly blocks: BlockWeights[] = [];
  private readonly neck: NeckWeights;
  private buffers: Record<OwnedBuffer, GPUBuffer> | null = null;
  private disposed = false;
  /** Element type of the activations between GEMMs and attention (qkv, the attention output,
   * the MLP hidden layer). */
  private readonly between: TensorDType;

  private constructor(
    readonly ctx: GpuContext,
    readonly arch: SamArch,
    sd: StateDict,
    readonly precision: Precision = "f32",
  ) {
    this.geometry = encoderGeometry(arch);
    this.plan = encoderBufferPlan(arch, precision);
    this.between = precision;
    const g = this.geometry;
    const p = "image_encoder.";
    // `matrix`: the weight of a linear / conv (a GEMM's B), stored f16 under precision f16.
    const get = (
      name: string,
      shape?: number[],
      matrix = false,
      prepare?: HostPrepare,
    ): Tensor => {
      const host = sd.get(p + name);
      if (!host) throw new Error(`ImageEncoder: checkpoint has no tensor '${p}${name}'`);
      const raw = { data: tensorF32(host), shape: shape ?? [...host.shape] };
      const { data, shape: dims } = prepare ? prepare(raw.data, raw.shape) : raw;
      const upload = matrix && precision === "f16" ? tensorFromF16 : tensorFrom;
      const t = upload(ctx, data, dims, name);
      this.weights.push(t);
      return t;
    };
    const pair = (name: string, matrix = false): [Tensor, Tensor] => [
      get(`${name}.weight`, undefined, matrix),
      get(`${name}.bias`),
    ];
    this.patchW = get("patch_embed.proj.weight", undefined, true);
    this.patchB = get("patch_embed.proj.bias");
    this.posEmbed = get("pos_embed", [g.grid, g.grid, g.embedDim]); // (1, s, s, C) -> (s, s, C)
    for (let i = 0; i < arch.depth; i++) {
      const b = `blocks.${i}.`;
      const global = isGlobal(arch, i);
      const span = global ? g.grid : g.win;
      const relTable = (name: string): Tensor => {
        const host = sd.get(p + b + name);
        if (!host) throw new Error(`ImageEncoder: checkpoint has no tensor '${p}${b}${name}'`);
        const [len, hd] = host.shape;
        const table = getRelPos(span, span, tensorF32(host), len, hd);
        const t = tensorFrom(ctx, table, [span, span, hd], `${b}${name}.gathered`);
        this.weights.push(t);
        return t;
      };
      this.blocks.push({
        global,
        norm1: pair(`${b}norm1`),
        qkv: pair(`${b}attn.qkv`, true),
        proj: pair(`${b}attn.proj`, true),
        norm2: pair(`${b}norm2`),
        lin1: pair(`${b}mlp.lin1`, true),
        lin2: pair(`${b}mlp.lin2`, true),
        rh: relTable("attn.rel_pos_h"),
        rw: relTable("attn.rel_pos_w"),
      });
    }
    this.neck = neckWeights(
      (name, matrix, prepare) => get(name, undefined, matrix, prepare),
      precision,
    );
  }

  /** Uploads the encoder's weights of a SAM state dict (as loadSam returns it). */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: SamArch,
    precision: Precision = "f32",
  ): ImageEncoder {
    return new ImageEncoder(ctx, arch, sd, precision);
  }

  /** Bytes of the weights on the GPU (as uploaded; see the plan's weightBytes). */
  get weightBytes(): number {
    return this.weights.reduce((sum, t) => sum + t.byteLength, 0);
  }

  /** Frees the weights and activation buffers; the encoder cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ctx.submit(); // destroy only after recorded work that uses them is submitted
    for (const t of this.weights) t.destroy();
    this.releaseBuffers();
  }

  /** Frees only the activation buffers (reallocated by the next encode). */
  releaseBuffers(): void {
    if (!this.buffers) return;
    this.ctx.submit();
    for (const b of Object.values(this.buffers)) b.destroy();
    this.buffers = null;
  }

  private view(name: OwnedBuffer, shape: readonly number[], dtype: TensorDType = "f32"): Tensor {
    if (!this.buffers) {
      const entries = Object.entries(this.plan.owned).map(([k, n]) => {
        const buffer = this.ctx.device.createBuffer({
          label: `encoder.${k}`,
          size: Math.max(16, n * 4),
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
        });
        return [k, buffer];
      });
      this.buffers = Object.fromEntries(entries);
    }
    if (numel(shape) > this.plan.owned[name]) {
      throw new Error(`encoder: buffer '${name}' is too small for [${shape}] (a plan bug)`);
    }
    return new Tensor(this.ctx, this.buffers![name], shape, `encoder.${name}`, dtype);
  }

  /**
   * Records the forward pass on the (3, S, S) normalised, padded image tensor (as
   * preprocessImage makes it; (1, 3, S, S) accepted). Returns a new (1, D, s, s) tensor owned
   * by the caller (destroy it when done).
   */
  encode(input: Tensor | Float32Array, opts: EncodeOptions = {}): Tensor {
    if (this.disposed) throw new Error("ImageEncoder: used after dispose()");
    const ctx = this.ctx, g = this.geometry, S = this.arch.imgSize;
    const N = g.tokens, C = g.embedDim, s = g.grid;
    const hook = opts.onStage ?? (() => {});
    let image: Tensor;
    if (input instanceof Float32Array) {
      if (input.length !== 3 * S * S) {
        throw new Error(`encode: input has ${input.length} values, need 3 x ${S} x ${S}`);
      }
      image = this.view("input", [3, S, S]);
      // Queue writes run before the next submit: flush earlier recorded work first, which
      // may still read this buffer.
      ctx.submit();
      ctx.device.queue.writeBuffer(image.buffer, 0, input as Float32Array<ArrayBuffer>);
    } else {
      if (input.size !== 3 * S * S) {
        throw new Error(`encode: input [${input.shape}] must be (3, ${S}, ${S})`);
      }
      image = input.reshape([3, S, S]);
    }

    // Patch embedding: (3, S, S) -> [s, s, C], then + pos_embed.
    const patches = conv2d(ctx, image, "chw", this.patchW, this.patchB, {
      stride: this.arch.patchSize,
      padding: 0,
      out: this.view("x2", [s, s, C]),
      scratch: this.view("big", [N, g.patchCols]),
    });
    hook("act_patch_embed", patches);
    let x = add(ctx, patches, this.posEmbed, this.view("x", [s, s, C]));

    for (let i = 0; i < this.blocks.length; i++) {
      x = this.block(this.blocks[i], x);
      // A submit per block keeps command buffers modest.
      ctx.submit();
      hook(`act_block${i}`, x);
    }

    // Neck on [s, s, C] tokens (src/encoder/neck.ts).
    const out = neckForward(
      ctx,
      x,
      this.neck,
      (name, shape) =>
        this.view(
          name === "a" ? "tok" : name === "b" ? "x2" : name === "wino" ? "wino" : "big",
          shape,
        ),
    );
    hook("image_embeddings", out);
    return out;
  }

  /**
   * One ViT block on the residual stream x (in buffer "x"); the block's intermediate residual
   * goes to "x2" and the result back into "x".
   */
  private block(w: BlockWeights, x: Tensor): Tensor {
    const ctx = this.ctx, g = this.geometry;
    const s = g.grid, C = g.embedDim, N = g.tokens;
    // norm1 (eps 1e-6) over channels.
    const xn = layerNorm(ctx, x, ...w.norm1, LN_EPS, this.view("tok", [s, s, C]));
    // Windowed: [s, s, C] -> [windows, win^2, C], zero padding after norm1 (official order).
    const span = w.global ? s : g.win;
    const batch = w.global ? 1 : g.windows;
    const rows = batch * span * span;
    const attnIn = w.global
      ? xn
      : windowPartition(ctx, xn, g.win, this.view("attn", [batch, span * span, C]));
    // precision f16: qkv stored as f16, read so by relPosBias and attention (f32 out).
    const qkv = linear(ctx, attnIn, ...w.qkv, {
      out: this.view("big", [rows, 3 * C], this.between),
    });
    const dims = { batch, heads: g.heads, headDim: g.headDim, nq: span * span, nk: span * span };
    const view = (k: number): HeadsView => ({ tensor: qkv, offset: k * C, rowStride: 3 * C });
    const rel = relPosBias(ctx, view(0), dims, span, span, w.rh, w.rw, span, span, {
      relH: this.view("relH", [batch * g.heads, span * span, span]),
      relW: this.view("relW", [batch * g.heads, span * span, span]),
    });
    // precision f16: the attention output (proj's input) is stored as f16 too.
    const attn = attention(ctx, view(0), view(1), view(2), dims, {
      relPos: rel,
      out: this.view("attn", [batch, span * span, C], this.between),
    });
    // Back to [s, s, C] (dropping the padded tokens), then proj + residual into x2.
    const attnTokens = w.global
      ? attn.reshape([s, s, C])
      : windowUnpartition(ctx, attn, g.win, s, s, this.view("tok", [s, s, C], this.between));
    const x2 = linear(ctx, attnTokens, ...w.proj, {
      residual: x,
      out: this.view("x2", [s, s, C]),
    });
    // MLP: x = x2 + lin2(gelu(lin1(norm2(x2)))), the result back into x's buffer.
    const xn2 = layerNorm(ctx, x2, ...w.norm2, LN_EPS, this.view("tok", [s, s, C]));
    const hidden = linear(ctx, xn2, ...w.lin1, {
      activation: "gelu",
      out: this.view("big", [N, g.mlpDim], this.between),
    });
    return linear(ctx, hidden, ...w.lin2, { residual: x2, out: this.view("x", [s, s, C]) });
  }
}

/** The result of encodeImage: the embedding and the sizes the decoder needs. */
export interface EncodedImage {
  /** (1, D, s, s), owned by the caller. */
  embedding: Tensor;
  /** [height, width] of the original image. */
  originalSize: [number, number];
  /** [height, width] after ResizeLongestSide. */
  inputSize: [number, number];
}

/**
 * SamPredictor.set_image: preprocess the pixels (RGB or RGBA, alpha ignored) and record the
 * encoder pass. The embedding is ready to read or to hand to the decoder (same GpuContext).
 */
export function encodeImage(
  encoder: SamImageEncoder,
  image: RgbImage,
  opts: { onStage?: (stage: string, t: Tensor) => void } = {},
): EncodedImage {
  const pre = preprocessImage(image, encoder.arch.imgSize);
  const embedding = encoder.encode(pre.tensor, opts);
  return { embedding, originalSize: pre.originalSize, inputSize: pre.inputSize };
}
