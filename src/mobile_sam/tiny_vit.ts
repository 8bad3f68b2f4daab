/**
 * MobileSAM's image encoder: TinyViT (mobile_sam/modeling/tiny_vit_sam.py) on our WebGPU
 * kernels, then SAM's neck. Activations are token-major [H, W, C] throughout (the official
 * NCHW maps and (B, H*W, C) token lists are the same numbers in another order):
 *
 *   patch_embed: Conv2d_BN 3x3 s2 -> GELU -> Conv2d_BN 3x3 s2           (1024 -> 256)
 *   stage 0, MBConv: x = gelu(x + bn3(conv3(gelu(dw3x3(gelu(conv1(x)))))))
 *   PatchMerging (after stages 0-2): 1x1 -> GELU -> dw 3x3 (stride 2, or 1 for widths
 *     320 / 448 / 576) -> GELU -> 1x1                                       (256 -> 128 -> 64 -> 64)
 *   stages 1-3, TinyViTBlock:
 *     x = x + proj(attn(LN(window_partition(x))))   partition of the RAW tokens, zero padded
 *                                                    at the bottom and right, THEN the
 *                                                    LayerNorm, so padded tokens become the
 *                                                    LayerNorm's bias and are unmasked keys
 *     x = local_conv(x)                             dw 3x3 Conv2d_BN, no activation or residual
 *     x = x + fc2(gelu(fc1(LN(x))))
 *   neck: SAM's (src/encoder/neck.ts) on the 64x64 grid.
 *
 * At load every Conv2d_BN is folded into a conv with a bias (fold_bn.ts), the qkv rows are
 * reordered from TinyViT's per-head [q k v] blocks into SAM's [all q | all k | all v] (so q,
 * k, v are plain head views for the attention kernel), and each block's bias table
 * `attention_biases[:, attention_bias_idxs]` is gathered once into [heads, w*w, w*w]. The
 * loaded table is used: the official `build_sam_vit_t(checkpoint)` runs eval() before loading,
 * which caches the initial zeros until eval() runs again; the goldens use the loaded one.
 *
 * The proj linear is per token, so it runs after window_unpartition on the real tokens only,
 * with the residual fused in. LayerNorm eps is 1e-5 in the blocks (nn.LayerNorm's default),
 * 1e-6 in the neck.
 */
import type { GpuContext } from "../gpu/context.ts";
import { numel, Tensor, type TensorDType, tensorFrom, tensorFromF16 } from "../gpu/tensor.ts";
import type { Precision } from "../precision.ts";
import { activation } from "../kernels/activation.ts";
import { attention, type HeadsView } from "../kernels/attention.ts";
import { depthwiseConv2d } from "../kernels/depthwise_conv2d.ts";
import { im2col } from "../kernels/im2col.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { windowPartition, windowUnpartition } from "../kernels/window.ts";
import { type HostPrepare, neckForward, type NeckWeights, neckWeights } from "../encoder/neck.ts";
import { tensorF32 } from "../weights/load.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import { inferTinyVitArch, type TinyVitArch, type TinyVitStage } from "./arch.ts";
import { foldConvBn } from "./fold_bn.ts";

/** nn.LayerNorm's default eps, used by TinyViT's attention and MLP norms. */
const LN_EPS = 1e-5;

/** Stage names reported to `onStage`, as the fixture files (act_layer2.npy ...). */
export type TinyVitStageName = "act_patch_embed" | `act_layer${number}` | "image_embeddings";

/** A folded Conv2d_BN: weight [Cout, Cin/groups, k, k] (1x1 ones as [Cout, Cin]), bias. */
interface Conv {
  w: Tensor;
  b: Tensor;
}

export interface MBConvWeights {
  conv1: Conv;
  conv2: Conv;
  conv3: Conv;
}

export interface BlockWeights {
  norm: [Tensor, Tensor];
  qkv: [Tensor, Tensor];
  proj: [Tensor, Tensor];
  /** attention_biases gathered: [heads, w*w, w*w]. */
  biasTable: Tensor;
  localConv: Conv;
  mlpNorm: [Tensor, Tensor];
  fc1: [Tensor, Tensor];
  fc2: [Tensor, Tensor];
}

interface StageWeights {
  arch: TinyVitStage;
  mbconv: MBConvWeights[];
  blocks: BlockWeights[];
  downsample: MBConvWeights | null;
}

/**
 * TinyViT's attention_bias_idxs for a w x w window: idx[i][j] is the position of the offset
 * (|dr|, |dc|) between tokens i and j in the order offsets are first met scanning i, j
 * row-major, which is |dr| * w + |dc| (the first token meets every offset in that order).
 */
export function attentionBiasIndex(w: number): Int32Array {
  const n = w * w;
  const idx = new Int32Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = Math.floor(i / w), ci = i % w;
    for (let j = 0; j < n; j++) {
      idx[i * n + j] = Math.abs(ri - Math.floor(j / w)) * w + Math.abs(ci - (j % w));
    }
  }
  return idx;
}

/** attention_biases [heads, w*w] -> the per-head table [heads, w*w, w*w]. */
export function gatherBiasTable(biases: Float32Array, heads: number, w: number): Float32Array {
  const n = w * w;
  const idx = attentionBiasIndex(w);
  const out = new Float32Array(heads * n * n);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < n * n; k++) out[h * n * n + k] = biases[h * n + idx[k]];
  }
  return out;
}

/**
 * Reorders qkv rows (weight [3C, C] or bias [3C]) from TinyViT's per-head layout, head h's
 * rows being [q(d) k(d) v(d)] at h * 3d, into SAM's [q of all heads | k | v].
 */
export function qkvToSamLayout(data: Float32Array, heads: number, d: number): Float32Array {
  const rowLen = data.length / (3 * heads * d);
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let part = 0; part < 3; part++) {
      for (let r = 0; r < d; r++) {
        const src = (h * 3 * d + part * d + r) * rowLen;
        const dst = (part * heads * d + h * d + r) * rowLen;
        out.set(data.subarray(src, src + rowLen), dst);
      }
    }
  }
  return out;
}

/**
 * Reads a MobileSAM state dict's encoder tensors onto the GPU (`image_encoder.` + name),
 * folding each Conv2d_BN; every uploaded tensor is kept in `tensors` for dispose.
 */
export class TinyVitWeightLoader {
  readonly tensors: Tensor[] = [];
  constructor(
    readonly ctx: GpuContext,
    readonly sd: StateDict,
    readonly prefix = "image_encoder.",
    /** "f16": GEMM weights (linear, 1x1 and unfolded convs) are stored as f16. */
    readonly precision: Precision = "f32",
  ) {}

  upload(data: Float32Array, shape: readonly number[], label: string): Tensor {
    const t = tensorFrom(this.ctx, data, shape, label);
    this.tensors.push(t);
    return t;
  }

  /** A GEMM weight (B of a linear): f16 under precision "f16", else as `upload`. */
  uploadMatrix(data: Float32Array, shape: readonly number[], label: string): Tensor {
    if (this.precision !== "f16") return this.upload(data, shape, label);
    const t = tensorFromF16(this.ctx, data, shape, label);
    this.tensors.push(t);
    return t;
  }

  raw(name: string): Float32Array {
    const host = this.sd.get(this.prefix + name);
    if (!host) throw new Error(`TinyVitEncoder: checkpoint has no tensor '${this.prefix}${name}'`);
    return tensorF32(host);
  }

  /** `prepare`: a rewrite of the host data before the upload (the neck's Winograd filter). */
  get(name: string, matrix = false, prepare?: HostPrepare): Tensor {
    const raw = {
      data: this.raw(name),
      shape: [...(this.sd.get(this.prefix + name)?.shape ?? [])],
    };
    const { data, shape } = prepare ? prepare(raw.data, raw.shape) : raw;
    return matrix ? this.uploadMatrix(data, shape, name) : this.upload(data, shape, name);
  }

  pair(name: string, matrix = false): [Tensor, Tensor] {
    return [this.get(`${name}.weight`, matrix), this.get(`${name}.bias`)];
  }

  /**
   * A Conv2d_BN folded; 1x1 convs as linear weights [Cout, Cin]. `gemm`: the conv runs as a
   * GEMM (1x1, or unfolded by im2col), so its weight may be f16; depthwise ones stay f32.
   */
  conv(name: string, gemm = false): Conv {
    const f = foldConvBn(this.sd, this.prefix + name);
    const pointwise = f.shape[2] === 1 && f.shape[3] === 1;
    const shape = pointwise ? [f.shape[0], f.shape[1]] : f.shape;
    return {
      w: (gemm || pointwise ? this.uploadMatrix : this.upload).call(
        this,
        f.weight,
        shape,
        `${name}.folded`,
      ),
      b: this.upload(f.bias, [f.shape[0]], `${name}.bias`),
    };
  }

  /** MBConv or PatchMerging (both conv1, conv2, conv3) at `name`. */
  mbconv(name: string): MBConvWeights {
    return {
      conv1: this.conv(`${name}.conv1`),
      conv2: this.conv(`${name}.conv2`),
      conv3: this.conv(`${name}.conv3`),
    };
  }

  /** A TinyViTBlock at `name` (e.g. "layers.1.blocks.0") of stage `s`. */
  block(name: string, s: TinyVitStage): BlockWeights {
    const B = `${name}.`;
    const d = s.dim / s.heads;
    const n = s.window * s.window;
    return {
      norm: this.pair(`${B}attn.norm`),
      qkv: [
        this.uploadMatrix(
          qkvToSamLayout(this.raw(`${B}attn.qkv.weight`), s.heads, d),
          [3 * s.dim, s.dim],
          `${B}qkv`,
        ),
        this.upload(
          qkvToSamLayout(this.raw(`${B}attn.qkv.bias`), s.heads, d),
          [3 * s.dim],
          `${B}qkv.bias`,
        ),
      ],
      proj: this.pair(`${B}attn.proj`, true),
      biasTable: this.upload(
        gatherBiasTable(this.raw(`${B}attn.attention_biases`), s.heads, s.window),
        [s.heads, n, n],
        `${B}bias_table`,
      ),
      localConv: this.conv(`${B}local_conv`),
      mlpNorm: this.pair(`${B}mlp.norm`),
      fc1: this.pair(`${B}mlp.fc1`, true),
      fc2: this.pair(`${B}mlp.fc2`, true),
    };
  }
}

/** Lends activation buffers by role; a view is only asked for to write a new output. */
export type ViewFn = (name: BufferName, shape: readonly number[], dtype?: TensorDType) => Tensor;

export type BufferName =
  | "input"
  | "x"
  | "y"
  | "z"
  | "h1"
  | "h2"
  | "win"
  | "winN"
  | "qkv"
  | "cols";

/** The image encoder of one MobileSAM: folded weights on the GPU, reusable activations. */
export class TinyVitEncoder {
  readonly tinyVit: TinyVitArch;
  private readonly weights: Tensor[];
  private readonly stem: [Conv, Conv];
  private readonly stages: StageWeights[] = [];
  private readonly neck: NeckWeights;
  /**
   * Activation buffers by role, each grown to the largest view asked of it (a view is only
   * asked for to write a new output, so growing never loses live data); the first pass sizes
   * them, later passes allocate nothing but their output.
   */
  private buffers = new Map<BufferName, GPUBuffer>();
  private disposed = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly arch: SamArch,
    sd: StateDict,
    readonly precision: Precision = "f32",
  ) {
    this.tinyVit = inferTinyVitArch(sd);
    const load = new TinyVitWeightLoader(ctx, sd, "image_encoder.", precision);
    this.weights = load.tensors;
    this.stem = [
      load.conv("patch_embed.seq.0", true),
      load.conv("patch_embed.seq.2", true),
    ];
    this.tinyVit.stages.forEach((s, i) => {
      const L = `layers.${i}.`;
      const stage: StageWeights = { arch: s, mbconv: [], blocks: [], downsample: null };
      for (let b = 0; b < s.depth; b++) {
        if (i === 0) stage.mbconv.push(load.mbconv(`${L}blocks.${b}`));
        else stage.blocks.push(load.block(`${L}blocks.${b}`, s));
      }
      if (s.downsample) stage.downsample = load.mbconv(`${L}downsample`);
      this.stages.push(stage);
    });
    this.neck = neckWeights((name, matrix, prepare) => load.get(name, matrix, prepare), precision);
  }

  /** Uploads the encoder's weights of a MobileSAM state dict (BatchNorm folded). */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: SamArch,
    precision: Precision = "f32",
  ): TinyVitEncoder {
    return new TinyVitEncoder(ctx, arch, sd, precision);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ctx.submit(); // destroy only after recorded work that uses them is submitted
    for (const t of this.weights) t.destroy();
    this.releaseBuffers();
  }

  releaseBuffers(): void {
    if (this.buffers.size === 0) return;
    this.ctx.submit();
    for (const b of this.buffers.values()) b.destroy();
    this.buffers.clear();
  }

  /** Bytes of the activation buffers held now (after a pass: the peak of one pass). */
  get activationBytes(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.size;
    return n;
  }

  private view(name: BufferName, shape: readonly number[], dtype: TensorDType = "f32"): Tensor {
    const bytes = Math.max(16, numel(shape) * 4);
    let buffer = this.buffers.get(name);
    if (!buffer || buffer.size < bytes) {
      if (buffer) {
        this.ctx.submit(); // recorded work may still use the old buffer
        buffer.destroy();
      }
      buffer = this.ctx.device.createBuffer({
        label: `tinyvit.${name}`,
        size: Math.ceil(bytes / 4) * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.buffers.set(name, buffer);
    }
    return new Tensor(this.ctx, buffer, shape, `tinyvit.${name}`, dtype);
  }

  /**
   * Records the forward pass on the (3, 1024, 1024) normalised, padded image tensor ((1, 3,
   * S, S) accepted). Returns a new (1, D, 64, 64) tensor owned by the caller.
   */
  encode(
    input: Tensor | Float32Array,
    opts: { onStage?: (stage: TinyVitStageName, t: Tensor) => void } = {},
  ): Tensor {
    if (this.disposed) throw new Error("TinyVitEncoder: used after dispose()");
    const ctx = this.ctx, S = this.tinyVit.imgSize;
    const hook = opts.onStage ?? (() => {});
    let image: Tensor;
    if (input instanceof Float32Array) {
      if (input.length !== 3 * S * S) {
        throw new Error(`encode: input has ${input.length} values, need 3 x ${S} x ${S}`);
      }
      image = this.view("input", [3, S, S]);
      // Queue writes run before the next submit: flush earlier recorded work first.
      ctx.submit();
      ctx.device.queue.writeBuffer(image.buffer, 0, input as Float32Array<ArrayBuffer>);
    } else {
      if (input.size !== 3 * S * S) {
        throw new Error(`encode: input [${input.shape}] must be (3, ${S}, ${S})`);
      }
      image = input.reshape([3, S, S]);
    }

    // patch_embed: (3, S, S) -> [S/2, S/2, stem] (GELU) -> [S/4, S/4, C0].
    const [c1, c2] = this.stem;
    const h1 = S / 2, g0 = S / 4;
    const stem = this.tinyVit.stemDim, C0 = this.tinyVit.stages[0].dim;
    const cols1 = im2col(
      ctx,
      image,
      "chw",
      { kh: 3, kw: 3, stride: 2, padding: 1 },
      this.view("cols", [h1 * h1, 27]),
    );
    const s1 = linear(ctx, cols1, c1.w.reshape([stem, 27]), c1.b, {
      activation: "gelu",
      out: this.view("h1", [h1, h1, stem]),
    });
    const cols2 = im2col(
      ctx,
      s1,
      "hwc",
      { kh: 3, kw: 3, stride: 2, padding: 1 },
      this.view("cols", [g0 * g0, 9 * stem]),
    );
    let x = linear(ctx, cols2, c2.w.reshape([C0, 9 * stem]), c2.b, {
      out: this.view("x", [g0, g0, C0]),
    });
    ctx.submit();
    hook("act_patch_embed", x);

    this.stages.forEach((stage, i) => {
      const view: ViewFn = (name, shape, dtype) => this.view(name, shape, dtype);
      for (const w of stage.mbconv) {
        x = mbconvForward(ctx, w, x, view);
        ctx.submit();
      }
      for (const w of stage.blocks) {
        x = tinyVitBlockForward(ctx, stage.arch, w, x, view);
        // A submit per block keeps command buffers modest.
        ctx.submit();
      }
      if (stage.downsample) x = patchMergingForward(ctx, stage.arch, stage.downsample, x, view);
      // The official stage output is tokens (1, H*W, C): [H, W, C] here.
      hook(`act_layer${i}`, x);
    });

    const out = neckForward(
      ctx,
      x,
      this.neck,
      // Winograd's products in "h1" (the MBConv hidden buffer, dead in the neck).
      (name, shape) =>
        this.view(
          name === "a" ? "y" : name === "b" ? "z" : name === "wino" ? "h1" : "cols",
          shape,
        ),
    );
    hook("image_embeddings", out);
    return out;
  }
}

/** MBConv on x (buffer "x"): the result back in "x". */
export function mbconvForward(ctx: GpuContext, w: MBConvWeights, x: Tensor, view: ViewFn): Tensor {
  const [H, W, C] = x.shape;
  const hidden = w.conv1.w.shape[0];
  const a = linear(ctx, x, w.conv1.w, w.conv1.b, {
    activation: "gelu",
    out: view("h1", [H, W, hidden]),
  });
  const b = depthwiseConv2d(ctx, a, w.conv2.w, w.conv2.b, {
    stride: 1,
    padding: 1,
    activation: "gelu",
    out: view("h2", [H, W, hidden]),
  });
  // conv3 + shortcut, then GELU after the sum (act3).
  const sum = linear(ctx, b, w.conv3.w, w.conv3.b, {
    residual: x,
    out: view("y", [H, W, C]),
  });
  return activation(ctx, sum, "gelu", view("x", [H, W, C]));
}

/** PatchMerging after stage `s` on x (buffer "x"): the result, [H', W', out], back in "x". */
export function patchMergingForward(
  ctx: GpuContext,
  s: TinyVitStage,
  w: MBConvWeights,
  x: Tensor,
  view: ViewFn,
): Tensor {
  const [H, W] = x.shape;
  const { outDim, stride } = s.downsample!;
  // 3x3, padding 1.
  const outH = Math.floor((H - 1) / stride) + 1, outW = Math.floor((W - 1) / stride) + 1;
  const a = linear(ctx, x, w.conv1.w, w.conv1.b, {
    activation: "gelu",
    out: view("h1", [H, W, outDim]),
  });
  const b = depthwiseConv2d(ctx, a, w.conv2.w, w.conv2.b, {
    stride,
    padding: 1,
    activation: "gelu",
    out: view("h2", [outH, outW, outDim]),
  });
  return linear(ctx, b, w.conv3.w, w.conv3.b, {
    out: view("x", [outH, outW, outDim]),
  });
}

/** One TinyViTBlock of stage `s` on x (buffer "x"): the result back in "x". */
export function tinyVitBlockForward(
  ctx: GpuContext,
  s: TinyVitStage,
  w: BlockWeights,
  x: Tensor,
  view: ViewFn,
): Tensor {
  const [H, W, C] = x.shape;
  const win = s.window, n = win * win, heads = s.heads, d = C / heads;
  const windows = Math.ceil(H / win) * Math.ceil(W / win);
  // Raw tokens -> [windows, w*w, C], zero padded; then the attention's LayerNorm.
  const parts = windowPartition(ctx, x, win, view("win", [windows, n, C]));
  const normed = layerNorm(ctx, parts, ...w.norm, LN_EPS, view("winN", [windows, n, C]));
  // precision f16 (f16 weights): qkv stored as f16, read so by attention (f32 out).
  const qkv = linear(ctx, normed, ...w.qkv, {
    out: view("qkv", [windows * n, 3 * C], w.qkv[0].dtype),
  });
  const qkvHeads = (k: number): HeadsView => ({ tensor: qkv, offset: k * C, rowStride: 3 * C });
  const dims = { batch: windows, heads, headDim: d, nq: n, nk: n };
  const attn = attention(ctx, qkvHeads(0), qkvHeads(1), qkvHeads(2), dims, {
    biasTable: w.biasTable,
    out: view("win", [windows, n, C], w.qkv[0].dtype),
  });
  // Back to [H, W, C] (cropping the padding), proj + residual.
  const tokens = windowUnpartition(ctx, attn, win, H, W, view("h1", [H, W, C], attn.dtype));
  const x2 = linear(ctx, tokens, ...w.proj, { residual: x, out: view("y", [H, W, C]) });
  const k = w.localConv.w.shape[2];
  const x3 = depthwiseConv2d(ctx, x2, w.localConv.w, w.localConv.b, {
    stride: 1,
    padding: (k - 1) / 2,
    out: view("z", [H, W, C]),
  });
  // MLP: x3 + fc2(gelu(fc1(LN(x3)))).
  const xn = layerNorm(ctx, x3, ...w.mlpNorm, LN_EPS, view("h1", [H, W, C]));
  // Between two GEMMs: f16 when the weights are (precision "f16"), read back by fc2 as such.
  const hidden = linear(ctx, xn, ...w.fc1, {
    activation: "gelu",
    out: view("h2", [H, W, s.mlpDim], w.fc1[0].dtype),
  });
  return linear(ctx, hidden, ...w.fc2, { residual: x3, out: view("x", [H, W, C]) });
}
