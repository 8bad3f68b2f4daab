/**
 * SAM's MaskDecoder (segment_anything/modeling/mask_decoder.py) with the prompt encoder and
 * the mask postprocess: `SamDecoder.predict` takes prompts in original-image pixels and one
 * image embedding (1, D, s, s) on the GPU, and returns per prompt the low-res logits, the
 * IoU predictions and, when asked, masks or logits at the original size.
 *
 * Batching: prompts are grouped by (mask input or not, sparse token count, multimask); each
 * group runs in passes of up to `maxBatch` prompts (bounded by the storage-binding limit).
 * Prompts with different token counts cannot share a pass exactly: extra padding tokens would
 * take part in the attention. Prompts with a mask input get src = image + their dense
 * embedding, per prompt, as the official repeat_interleave does. Prompts without one all have
 * the same src (image + no_mask_embed), so it and layer 0's projections of it are
 * prompt-independent: they are computed once per image embedding and kept for later calls (a
 * small LRU keyed by the embedding's GPU buffer; see `releaseEmbedding`).
 *
 * Layout: everything is token-major. The image tokens are (HW, D); the output upscaling
 * runs on (B, s, s, D) -> (B, 2s, 2s, D/4) -> (B, 4s, 4s, D/8), so LayerNorm2d is a LayerNorm
 * over the last dim. The four hypernetwork MLPs run as three linears with block-diagonal
 * weights over the four mask tokens' concatenated rows, which yields hyper_in (B, 4, D/8)
 * directly; masks = hyper_in @ upscaled^T.
 */
import { type GpuContext, Readback } from "../gpu/context.ts";
import { type Tensor, tensorFrom, tensorFromF16 } from "../gpu/tensor.ts";
import type { Precision } from "../precision.ts";
import { activation } from "../kernels/activation.ts";
import { add } from "../kernels/add.ts";
import {
  convTranspose2dGemm,
  packConvTranspose2d,
  type PackedConvTranspose2d,
} from "../kernels/conv_transpose2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { matmul } from "../kernels/matmul.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import { tensorF32 } from "../weights/host_tensor.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import { postprocessReadBytes, samPostprocessRecord } from "./postprocess.ts";
import {
  type FramePrompt,
  PromptEncoder,
  sparseTokenCount,
  uploadMatrix,
  uploadWeight,
} from "./prompt_encoder.ts";
import {
  type DecoderPrompt,
  defaultMultimask,
  preprocessShape,
  toFramePrompt,
} from "./transforms.ts";
import { PinnedImageCache } from "./image_cache.ts";
import {
  type DecoderImage,
  Scratch,
  transformerImage,
  TwoWayTransformer,
} from "./two_way_transformer.ts";

export type { DecoderPrompt } from "./transforms.ts";

/** LayerNorm2d's eps in output_upscaling. */
const LN2D_EPS = 1e-6;
/** Prompts per pass at most (memory: about 30 tensors of HW x D floats per prompt live at once). */
const MAX_BATCH = 16;
/** Image embeddings whose prompt-independent work is kept (about 3.5 HW x D floats each). */
const IMAGE_CACHE_ENTRIES = 2;

export interface DecoderOptions {
  /** Default for prompts without their own `multimask`; unset: SAM's guidance per prompt. */
  multimask?: boolean;
  /** The original image [h, w]: prompts are in its pixels; masks and logits come at its size. */
  originalSize: readonly [number, number];
  /** "masks": binary masks at the original size; "logits": float logits there; "both"; "none" (default "masks"). */
  output?: "masks" | "logits" | "both" | "none";
  /** Return all mask tokens (0 = single, 1..3 = multimask), as the ONNX export does. */
  allTokens?: boolean;
  /**
   * Keep the low-res logits on the GPU: a tensor of (N, C, 4s, 4s) for the N prompts (all
   * with the same C), filled in prompt order; each result's `lowRes` is then empty (not read
   * back). For consumers that postprocess on the GPU themselves (the AMG).
   */
  lowResOut?: Tensor;
  /**
   * Keep the IoU predictions on the GPU: a tensor of (N, C), filled in prompt order; each
   * result's `iou` is then empty. With `lowResOut` and output "none" the call reads nothing
   * back: the caller's own readback observes the work (and its GPU errors).
   */
  iouOut?: Tensor;
  /**
   * Default true: the prompt-independent image side (src without a mask input, layer 0's
   * image projections) is computed once per embedding and kept for later calls. false:
   * every prompt computes it, as the official does (tests and benches compare the two).
   */
  reuseImage?: boolean;
}

export interface DecoderResult {
  /** Mask count C: 3 (multimask), 1 (single) or 4 (allTokens). */
  count: number;
  /** (C, 4s, 4s) low-res logits, to feed back as `maskInput` (empty with `lowResOut`). */
  lowRes: Float32Array;
  /** (C) predicted IoU. */
  iou: Float32Array;
  /** C masks at the original size, 0/1 bytes, row-major h x w (output "masks" / "both"). */
  masks?: Uint8Array[];
  /** (C, h, w) logits at the original size (output "logits" / "both"). */
  logits?: Float32Array;
}

interface Lin {
  w: Tensor;
  b: Tensor;
}

/**
 * The prompt-independent decoder inputs of one image embedding. Keyed by its GPU buffer:
 * the cache holds the buffer object, so a new embedding (even one allocated after this one
 * was destroyed) is always a new key; contents rewritten in place need `releaseEmbedding`.
 */
type ImageEntry = DecoderImage;

/** Block-diagonal weight [T*N, T*K] and bias [T*N] of T linears [N, K] applied to T row blocks. */
export function blockDiagonal(ws: Float32Array[], bs: Float32Array[], n: number, k: number) {
  const t = ws.length;
  const w = new Float32Array(t * n * t * k);
  const b = new Float32Array(t * n);
  for (let i = 0; i < t; i++) {
    for (let r = 0; r < n; r++) {
      w.set(ws[i].subarray(r * k, (r + 1) * k), (i * n + r) * t * k + i * k);
    }
    b.set(bs[i], i * n);
  }
  return { w, b };
}

export class SamDecoder {
  readonly arch: SamArch;
  readonly promptEncoder: PromptEncoder;
  readonly transformer: TwoWayTransformer;
  /** Side of the image embedding (s); low-res masks are 4s x 4s. */
  readonly embedSize: number;
  readonly dim: number;
  readonly numMaskTokens: number;
  /** Prompts per decoder pass. */
  readonly maxBatch: number;
  /** iou_token then mask_tokens: (1 + T, D), the first output tokens of every prompt. */
  private readonly outputTokens: Float32Array;
  private readonly upscale0: PackedConvTranspose2d;
  private readonly upscaleNorm: Lin;
  private readonly upscale3: PackedConvTranspose2d;
  private readonly hyper: Lin[];
  private readonly iouHead: Lin[];
  private readonly images = new PinnedImageCache<ImageEntry>(
    IMAGE_CACHE_ENTRIES,
    (entry) => this.destroyImage(entry),
  );

  private constructor(
    private readonly ctx: GpuContext,
    sd: StateDict,
    arch: SamArch,
    /** "f16": the transformer's, hypernetworks' and IoU head's weights stored as f16. */
    readonly precision: Precision = "f32",
  ) {
    this.arch = arch;
    this.dim = arch.promptEmbedDim;
    this.embedSize = arch.imgSize / arch.patchSize;
    this.numMaskTokens = arch.numMultimaskOutputs + 1;
    this.promptEncoder = PromptEncoder.create(ctx, sd, arch);
    this.transformer = new TwoWayTransformer(ctx, sd, arch, undefined, precision);
    const host = (n: string) => {
      const t = sd.get(n);
      if (!t) throw new Error(`decoder: checkpoint has no tensor '${n}'`);
      return tensorF32(t);
    };
    const p = "mask_decoder.";
    const iou = host(`${p}iou_token.weight`), masks = host(`${p}mask_tokens.weight`);
    this.outputTokens = new Float32Array(iou.length + masks.length);
    this.outputTokens.set(iou);
    this.outputTokens.set(masks, iou.length);
    const lin = (n: string): Lin => ({
      w: uploadWeight(ctx, sd, `${p}${n}.weight`),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`),
    });
    const matrix = (n: string): Lin => ({
      w: uploadMatrix(ctx, sd, `${p}${n}.weight`, precision),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`),
    });
    const packConvT = (n: string) => {
      const [cin, cout] = sd.get(`${p}${n}.weight`)?.shape ?? [];
      return packConvTranspose2d(
        ctx,
        host(`${p}${n}.weight`),
        host(`${p}${n}.bias`),
        cin,
        cout,
        `${p}${n}`,
      );
    };
    this.upscale0 = packConvT("output_upscaling.0");
    this.upscaleNorm = lin("output_upscaling.1");
    this.upscale3 = packConvT("output_upscaling.3");
    const D = this.dim, T = this.numMaskTokens;
    this.hyper = [];
    for (let j = 0; j < 3; j++) {
      const names = [...Array(T).keys()].map((i) =>
        `${p}output_hypernetworks_mlps.${i}.layers.${j}`
      );
      const shape = sd.get(`${names[0]}.weight`)?.shape;
      if (!shape) throw new Error(`decoder: checkpoint has no tensor '${names[0]}.weight'`);
      const [n, k] = shape;
      const bd = blockDiagonal(
        names.map((x) => host(`${x}.weight`)),
        names.map((x) => host(`${x}.bias`)),
        n,
        k,
      );
      this.hyper.push({
        w: (precision === "f16" ? tensorFromF16 : tensorFrom)(
          ctx,
          bd.w,
          [T * n, T * k],
          `hypernetworks.${j} (block diagonal)`,
        ),
        b: tensorFrom(ctx, bd.b, [T * n], `hypernetworks.${j}.bias`),
      });
    }
    this.iouHead = [];
    for (let j = 0; j < arch.iouHeadDepth; j++) {
      this.iouHead.push(matrix(`iou_prediction_head.layers.${j}`));
    }
    const hw = this.embedSize * this.embedSize;
    // Largest per-prompt tensor: the upscaled embedding (16 HW, D/8) = 2 HW D floats.
    const perPrompt = Math.max(2 * hw * D, 4 * 16 * hw, hw * 2 * D) * 4;
    const limit = ctx.device.limits.maxStorageBufferBindingSize;
    this.maxBatch = Math.max(1, Math.min(MAX_BATCH, Math.floor(limit / perPrompt)));
  }

  static create(
    ctx: GpuContext,
    sd: StateDict,
    arch: SamArch,
    precision: Precision = "f32",
  ): SamDecoder {
    return new SamDecoder(ctx, sd, arch, precision);
  }

  /** Side of the low-res masks (4s; 256 for the real models). */
  get lowResSize(): number {
    return 4 * this.embedSize;
  }

  /**
   * Decodes every prompt against `embedding` (1, D, s, s), NCHW, on the GPU. Prompts are in
   * original-image pixels (opts.originalSize = [h, w]); results come in prompt order.
   */
  async predict(
    embedding: Tensor,
    prompts: readonly DecoderPrompt[],
    opts: DecoderOptions,
  ): Promise<DecoderResult[]> {
    const D = this.dim, s = this.embedSize, hw = s * s;
    if (embedding.size !== D * hw) {
      throw new Error(
        `decoder: image embedding [${embedding.shape}] must be (1, ${D}, ${s}, ${s})`,
      );
    }
    if (opts.lowResOut || opts.iouOut) {
      const counts = new Set(
        prompts.map((p) =>
          opts.allTokens
            ? this.numMaskTokens
            : (p.multimask ?? opts.multimask ?? defaultMultimask(p))
            ? this.numMaskTokens - 1
            : 1
        ),
      );
      const c = counts.size === 1 ? [...counts][0] : -1;
      const need = prompts.length * c * this.lowResSize * this.lowResSize;
      if (opts.iouOut && (c < 0 || opts.iouOut.size !== prompts.length * c)) {
        throw new Error(
          `decoder: iouOut [${opts.iouOut.shape}] needs every prompt to return the same ` +
            `number of masks and (N=${prompts.length}, C) elements`,
        );
      }
      if (opts.lowResOut && (c < 0 || opts.lowResOut.size !== need)) {
        throw new Error(
          `decoder: lowResOut [${opts.lowResOut.shape}] needs every prompt to return the same ` +
            `number of masks and (N=${prompts.length}, C, ${this.lowResSize}, ${this.lowResSize}) elements`,
        );
      }
    }
    const frames = prompts.map((p, i) =>
      toFramePrompt(p, opts.originalSize, this.arch.imgSize, this.lowResSize, i)
    );
    // Groups of prompt indices sharing (mask input or not, sparse token count, multimask):
    // a pass without mask inputs runs on the shared image side.
    const groups = new Map<string, number[]>();
    prompts.forEach((p, i) => {
      const multi = p.multimask ?? opts.multimask ?? defaultMultimask(p);
      const mask = p.maskInput ? "mask" : "none";
      const key = `${mask}:${sparseTokenCount(frames[i])}:${opts.allTokens ? "all" : multi}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    if (prompts.length === 0) return [];
    const reuse = opts.reuseImage ?? true;
    // Per-prompt tensors come from the context's storage pool (no buffers made per warm call).
    const pin = this.images.acquire(
      embedding.buffer,
      reuse,
      () => this.ctx.pooled(() => this.makeImage(embedding)),
    );
    const entry = pin.entry;
    const results: DecoderResult[] = new Array(prompts.length);
    // Every pass is recorded first, its outputs copied into one staging buffer that is
    // mapped once at the end: one readback per call, whatever the number of passes.
    const passes: { key: string; chunk: number[] }[] = [];
    for (const [key, members] of groups) {
      for (let start = 0; start < members.length; start += this.maxBatch) {
        passes.push({ key, chunk: members.slice(start, start + this.maxBatch) });
      }
    }
    const output = opts.output ?? "masks";
    const T = this.numMaskTokens, low = this.lowResSize * this.lowResSize;
    let bytes = 0;
    for (const { key, chunk } of passes) {
      const count = key.endsWith("all") ? T : key.endsWith("true") ? T - 1 : 1;
      if (!opts.lowResOut) bytes += chunk.length * count * low * 4;
      if (!opts.iouOut) bytes += chunk.length * T * 4;
      if (output !== "none") {
        bytes += postprocessReadBytes(chunk.length * count, opts.originalSize, output);
      }
    }
    const rb = new Readback(this.ctx, bytes);
    try {
      const finishers = passes.map(({ key, chunk }) => {
        const multi = key.endsWith("true");
        const all = key.endsWith("all");
        const finish = this.ctx.pooled(() =>
          this.recordPass(
            chunk,
            chunk.map((i) => frames[i]),
            chunk.map((i) => prompts[i].maskInput),
            entry,
            reuse,
            all ? "all" : multi ? "multi" : "single",
            opts,
            rb,
          )
        );
        return { chunk, finish };
      });
      if (bytes === 0) {
        this.ctx.submit(); // the caller's readback observes it
        const data: ArrayBuffer[] = [];
        for (const { chunk, finish } of finishers) {
          finish(data).forEach((r, j) => results[chunk[j]] = r);
        }
      } else {
        const data = await rb.map();
        for (const { chunk, finish } of finishers) {
          finish(data).forEach((r, j) => results[chunk[j]] = r);
        }
      }
    } catch (err) {
      rb.discard();
      // Work of a failed call may be what filled the entry: never keep it.
      this.images.drop(pin);
      throw err;
    } finally {
      this.images.unpin(pin);
    }
    return results;
  }

  /**
   * The prompt-independent tensors of `embedding` (kept by `images`, at most
   * IMAGE_CACHE_ENTRIES embeddings, pinned while a call uses them).
   */
  private makeImage(embedding: Tensor): ImageEntry {
    const ctx = this.ctx, D = this.dim, hw = this.embedSize * this.embedSize;
    // (D, HW) -> (HW, D) image tokens.
    const imageTokens = stridedCopy(ctx, embedding, {
      offset: 0,
      shape: [hw, D],
      strides: [1, hw],
    });
    // (HW, D) + (D) no_mask_embed broadcast.
    const srcNoMask = add(ctx, imageTokens, this.promptEncoder.noMaskEmbedGpu());
    return {
      imageTokens,
      srcNoMask,
      layer0: null,
    };
  }

  private destroyImage(entry: ImageEntry): void {
    this.ctx.submit(); // recorded work may still read them
    entry.imageTokens.destroy();
    entry.srcNoMask.destroy();
    const l0 = entry.layer0;
    if (l0) { for (const x of [l0.k, l0.v, l0.q]) x.destroy(); }
    entry.layer0 = null;
  }

  /**
   * Forgets what was computed from `embedding` (call it before destroying the embedding or
   * rewriting its buffer in place; the predictor does). True when something was kept.
   */
  releaseEmbedding(embedding: Tensor): boolean {
    return this.images.release(embedding.buffer);
  }

  /** Whether the prompt-independent work of `embedding` is kept (for tests). */
  hasImageCached(embedding: Tensor): boolean {
    return this.images.has(embedding.buffer);
  }

  /** Number of image embeddings whose prompt-independent work is kept. */
  get cachedImages(): number {
    return this.images.size;
  }

  /**
   * Records one decoder pass over B prompts with the same token count, its outputs copied
   * into `rb`; the returned function makes the results from `rb`'s mapped ranges.
   */
  private recordPass(
    indices: number[],
    frames: FramePrompt[],
    maskInputs: (Float32Array | undefined)[],
    image: ImageEntry,
    reuse: boolean,
    mode: "single" | "multi" | "all",
    opts: DecoderOptions,
    rb: Readback,
  ): (data: ArrayBuffer[]) => DecoderResult[] {
    const ctx = this.ctx, D = this.dim, s = this.embedSize, hw = s * s;
    const T = this.numMaskTokens, B = frames.length;
    const scratch = new Scratch(ctx);
    const t = <X extends Tensor>(x: X) => scratch.t(x);
    try {
      // Tokens (B, Nt, D): iou token, mask tokens, sparse prompt embeddings.
      const nSparse = sparseTokenCount(frames[0]);
      const nt = 1 + T + nSparse;
      const tokens = new Float32Array(B * nt * D);
      frames.forEach((fp, b) => {
        tokens.set(this.outputTokens, b * nt * D);
        tokens.set(this.promptEncoder.sparse(fp), (b * nt + 1 + T) * D);
      });
      const queryPe = t(tensorFrom(ctx, tokens, [B, nt, D], "decoder.tokens"));
      // The dense PE (HW, D) is broadcast over the batch by `add`, never repeated.
      const pe = this.promptEncoder.densePeGpu(); // (HW, D)
      const forwardImage = transformerImage(
        ctx,
        scratch,
        { transformer: this.transformer, promptEncoder: this.promptEncoder, image, pe },
        maskInputs,
        { reuse, lowResSize: this.lowResSize, hw, dim: D, label: "decoder" },
      );
      const { queries, keys } = this.transformer.forward(queryPe, forwardImage, pe);
      t(queries);
      t(keys);
      // Output upscaling: (B, s, s, D) -> (B, 2s, 2s, D/4) -> LN2d, GELU -> (B, 4s, 4s, D/8), GELU,
      // as two GEMMs in block pixel order: every step is per pixel, so the pixels are put in
      // image order once, on the (much smaller) low-res masks below.
      const up1 = t(convTranspose2dGemm(ctx, keys.reshape([B, s, s, D]), this.upscale0, {
        pixelOrder: "blocks",
      })); // (B, s, s, 2, 2, D/4)
      const c4 = this.upscale0.cout;
      const up1n = t(layerNorm(ctx, up1, this.upscaleNorm.w, this.upscaleNorm.b, LN2D_EPS));
      const up1g = t(activation(ctx, up1n, "gelu")).reshape([B, 4 * hw, 1, c4]);
      const up2 = t(convTranspose2dGemm(ctx, up1g, this.upscale3, {
        activation: "gelu",
        pixelOrder: "blocks",
      })); // (B, 4 HW, 1, 2, 2, D/8) = (b, i, j, di, dj, di', dj', c)
      const c8 = this.upscale3.cout;
      // Hypernetworks: the T mask tokens' rows (B, T*D) through the block-diagonal MLP -> (B, T, D/8).
      let h = t(stridedCopy(ctx, queries, { offset: D, shape: [B, T * D], strides: [nt * D, 1] }));
      this.hyper.forEach((l, j) => {
        h = t(
          linear(ctx, h, l.w, l.b, { activation: j < this.hyper.length - 1 ? "relu" : "none" }),
        );
      });
      const low = 16 * hw;
      const blocks = t(matmul(ctx, h.reshape([B, T, c8]), up2.reshape([B, low, c8]), {
        transposeB: true,
      })); // (B, T, 16 HW), pixels in block order (i, j, di, dj, di', dj')
      // IoU head on the iou token (B, D) -> (B, T).
      let q = t(stridedCopy(ctx, queries, { offset: 0, shape: [B, D], strides: [nt * D, 1] }));
      this.iouHead.forEach((l, j) => {
        q = t(
          linear(ctx, q, l.w, l.b, { activation: j < this.iouHead.length - 1 ? "relu" : "none" }),
        );
      });
      // The returned tokens: 1..T-1 (multimask), 0 (single) or all.
      const [first, count] = mode === "multi" ? [1, T - 1] : mode === "single" ? [0, 1] : [0, T];
      const picked = count === T ? blocks : t(stridedCopy(ctx, blocks, {
        offset: first * low,
        shape: [B, count, low],
        strides: [T * low, low, 1],
      })); // (B, C, 16 HW)
      // Block order to image order, pixel (4i + 2di + di', 4j + 2dj + dj'): first
      // (p, i, j, di, dj, e) -> (p, i, di, j, dj, e) with e = (di', dj'), then within each row
      // (p, i, di): (j, dj, di', dj') -> (di', j, dj, dj').
      const planes = B * count;
      const rows = t(stridedCopy(ctx, picked, {
        offset: 0,
        shape: [planes * s, 2, s, 8],
        strides: [16 * s, 8, 16, 1],
      }));
      const selected = t(stridedCopy(ctx, rows, {
        offset: 0,
        shape: [planes * s * 2, 2, 2 * s, 2],
        strides: [8 * s, 2, 4, 1],
      })).reshape([B, count, low]);
      const planeBytes = count * low * 4;
      if (opts.lowResOut) {
        // Prompt b of this pass is prompt indices[b] of the call.
        indices.forEach((index, b) =>
          ctx.copy(
            selected.buffer,
            b * planeBytes,
            opts.lowResOut!.buffer,
            index * planeBytes,
            planeBytes,
          )
        );
      }
      if (opts.iouOut) {
        // Prompt b's IoUs are q[b, first..first+count) -> iouOut[indices[b], 0..count).
        indices.forEach((index, b) =>
          ctx.copy(q.buffer, (b * T + first) * 4, opts.iouOut!.buffer, index * count * 4, count * 4)
        );
      }
      const lowRange = opts.lowResOut ? -1 : rb.copy(selected.buffer, 0, B * planeBytes);
      const iouRange = opts.iouOut ? -1 : rb.copy(q.buffer, 0, B * T * 4);
      const output = opts.output ?? "masks";
      let finishPlanes: ReturnType<typeof samPostprocessRecord> | null = null;
      if (output !== "none") {
        const inputSize = preprocessShape(
          opts.originalSize[0],
          opts.originalSize[1],
          this.arch.imgSize,
        );
        const side = this.lowResSize;
        finishPlanes = samPostprocessRecord(
          ctx,
          selected.reshape([B, count, side, side]),
          { imgSize: this.arch.imgSize, inputSize, originalSize: opts.originalSize },
          output,
          rb,
        );
      }
      return (data) => {
        const lowRes = lowRange < 0 ? new Float32Array(0) : new Float32Array(data[lowRange]);
        const iouAll = iouRange < 0 ? null : new Float32Array(data[iouRange]);
        const results: DecoderResult[] = [];
        for (let b = 0; b < B; b++) {
          results.push({
            count,
            lowRes: lowRange < 0 ? lowRes : lowRes.slice(b * count * low, (b + 1) * count * low),
            iou: iouAll ? iouAll.slice(b * T + first, b * T + first + count) : new Float32Array(0),
          });
        }
        finishPlanes?.(data, (plane, masksOut, logitsOut) => {
          const r = results[Math.floor(plane / count)];
          if (masksOut) (r.masks ??= []).push(masksOut);
          if (logitsOut) {
            const [oh, ow] = opts.originalSize;
            r.logits ??= new Float32Array(count * oh * ow);
            r.logits.set(logitsOut, (plane % count) * oh * ow);
          }
        });
        return results;
      };
    } finally {
      scratch.flush();
    }
  }

  dispose(): void {
    this.images.clear();
    this.ctx.trimStoragePool();
    this.promptEncoder.dispose();
    this.transformer.dispose();
    for (const l of [this.upscaleNorm, ...this.hyper, ...this.iouHead]) {
      l.w.destroy();
      l.b.destroy();
    }
    for (const c of [this.upscale0, this.upscale3]) {
      c.weight.destroy();
      c.bias.destroy();
    }
  }
}
