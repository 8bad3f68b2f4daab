/**
 * SAM 2's prompt encoder and MaskDecoder (sam2/modeling/sam/{prompt_encoder,mask_decoder}.py)
 * as SAM2ImagePredictor._predict drives them: `Sam2Decoder.predict` takes prompts in
 * original-image pixels and the features the predictor keeps for an image (image_embed with
 * no_mem_embed added, high_res_feats_0/1 after conv_s0/conv_s1), and returns per prompt the
 * low-res logits clamped to [-32, 32], the sigmoid IoU, the object-score logit and, when
 * asked, masks or logits at the original size (bilinear from the unclamped low-res logits).
 *
 * Shared with SAM 1 (src/decoder): the prompt encoder (same module under the prefix
 * "sam_prompt_encoder."), the two-way transformer (prefix "sam_mask_decoder.transformer."),
 * the block-diagonal hypernetwork MLPs and every kernel. SAM 2's additions here:
 * - the object-score token ahead of the IoU token, and its head (an MLP of 3 layers);
 * - the high-res features added after each transposed conv of the upscaling (before the
 *   LayerNorm2d of the first, before the GELU of the second);
 * - the IoU head's sigmoid;
 * - single-mask output via stability: token 0 when its stability (area at logit > 0.05 over
 *   area at > -0.05) is >= 0.98, else the multimask token of highest IoU;
 * - prompts as SAM2Transforms maps them: x / w * S, y / h * S (a square input, no padding);
 *   a box as two points labelled 2 and 3 ahead of the clicks, and always a padding point.
 * - optional hole / sprinkle removal on the low-res masks before upscaling (max_hole_area,
 *   max_sprinkle_area: what SAM2AutomaticMaskGenerator sets from min_mask_region_area).
 *
 * Layout: token-major as SAM 1's decoder; the upscaling runs in image pixel order
 * (B, 2s, 2s, D/4), (B, 4s, 4s, D/8), so the high-res features are added as (pixels, C)
 * tokens, transposed once per image.
 */
import { type GpuContext, Readback } from "../gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom } from "../gpu/tensor.ts";
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
import { sigmoidAffine } from "../kernels/sigmoid_affine.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import { tensorF32 } from "../weights/host_tensor.ts";
import type { StateDict } from "../weights/types.ts";
import { blockDiagonal, type DecoderOptions, type DecoderResult } from "../decoder/mask_decoder.ts";
import { samPostprocessRead } from "../decoder/postprocess.ts";
import { PromptEncoder, uploadWeight } from "../decoder/prompt_encoder.ts";
import { type DecoderPrompt, defaultMultimask, toFramePrompt } from "../decoder/transforms.ts";
import { PinnedImageCache } from "../decoder/image_cache.ts";
import {
  type DecoderImage,
  Scratch,
  transformerImage,
  TwoWayTransformer,
} from "../decoder/two_way_transformer.ts";
import type { Sam2Arch } from "./arch.ts";
import type { Sam2Features } from "./image_encoder.ts";
import { removeSmallRegions } from "./regions.ts";

export type { Sam2Features } from "./image_encoder.ts";

const f = Math.fround;
/** LayerNorm2d's eps in output_upscaling. */
const LN2D_EPS = 1e-6;
/** Prompts per pass at most (as SAM 1's decoder). */
const MAX_BATCH = 16;
/** Image feature sets whose prompt-independent work is kept. */
const IMAGE_CACHE_ENTRIES = 2;
/** The image predictor's clamp of the low-res logits it returns. */
export const LOW_RES_CLAMP = 32;
/** The object-score logit of a decoder without an object-score head (the official default). */
const NO_OBJ_HEAD_SCORE = 10;

export interface Sam2DecoderOptions extends DecoderOptions {
  /**
   * Fill holes (connected background regions) of at most this many low-res pixels before
   * upscaling (SAM2Transforms max_hole_area; default 0: off, as the image predictor).
   */
  maxHoleArea?: number;
  /** Remove islands of at most this many low-res pixels (max_sprinkle_area; default 0). */
  maxSprinkleArea?: number;
  /** Also read back each result's `samOutputToken` (the video predictor's obj_ptr input). */
  samOutputToken?: boolean;
}

export interface Sam2DecoderResult extends DecoderResult {
  /** The decoder's object-score logit (> 0: object present); NaN with `iouOut` (not read back). */
  objScore: number;
  /** Per mask, the mask token it came from (0 single, 1..3 multimask). */
  tokens: number[];
  /**
   * With opts.samOutputToken: the decoder's output token (C) that sam2_base feeds obj_ptr_proj
   * (use_multimask_token_for_obj_ptr): the best-IoU multimask token when multimask, else
   * mask token 0, even where the stability fallback returned a multimask token's mask.
   */
  samOutputToken?: Float32Array;
}

interface Lin {
  w: Tensor;
  b: Tensor;
}

/** Prompt-independent work of one feature set, keyed by its image_embed buffer. */
interface ImageEntry extends DecoderImage {
  /** (4 HW, C/4) and (16 HW, C/8): the high-res features token-major. */
  highRes1: Tensor;
  highRes0: Tensor;
}

/** A prompt in the input frame, as SAM2ImagePredictor._predict hands it to the prompt encoder. */
interface Sam2FramePrompt {
  coords: Float32Array;
  /** Box corners 2, 3 first, then the clicks, then the padding point (-1); empty: none. */
  labels: Int32Array;
}

export class Sam2Decoder {
  readonly arch: Sam2Arch;
  readonly promptEncoder: PromptEncoder;
  readonly transformer: TwoWayTransformer;
  readonly embedSize: number;
  readonly dim: number;
  readonly numMaskTokens: number;
  readonly maxBatch: number;
  /** obj_score_token (when predObjScores), iou_token, mask_tokens: (nPre + T, C). */
  private readonly outputTokens: Float32Array;
  /** Output tokens before the mask tokens: 2 (object score, IoU) or 1 (IoU). */
  private readonly nPre: number;
  private readonly upscale0: PackedConvTranspose2d;
  private readonly upscaleNorm: Lin;
  private readonly upscale3: PackedConvTranspose2d;
  private readonly hyper: Lin[];
  private readonly iouHead: Lin[];
  private readonly objHead: Lin[];
  private readonly images = new PinnedImageCache<ImageEntry>(
    IMAGE_CACHE_ENTRIES,
    (entry) => this.destroyImage(entry),
  );

  private readonly dec: Sam2Arch["decoder"];

  private constructor(private readonly ctx: GpuContext, sd: StateDict, arch: Sam2Arch) {
    this.arch = arch;
    const dec = this.dec = arch.decoder;
    if (!dec.useHighResFeatures) {
      throw new Error(
        "sam2 decoder: no conv_s0 / conv_s1: models without high-res features are not supported",
      );
    }
    this.dim = arch.dModel;
    this.embedSize = arch.imgSize / arch.backboneStride;
    this.numMaskTokens = dec.numMultimaskOutputs + 1;
    // SAM 1's modules, under SAM 2's names and sizes.
    const shared = {
      imgSize: arch.imgSize,
      patchSize: arch.backboneStride,
      promptEmbedDim: arch.dModel,
      decoderDepth: dec.depth,
      decoderNumHeads: dec.numHeads,
    };
    this.promptEncoder = PromptEncoder.create(ctx, sd, shared, "sam_prompt_encoder.");
    const p = "sam_mask_decoder.";
    this.transformer = new TwoWayTransformer(ctx, sd, shared, `${p}transformer.`);
    const shapeOf = (n: string) => {
      const t = sd.get(n);
      if (!t) throw new Error(`sam2 decoder: checkpoint has no tensor '${n}'`);
      return t.shape;
    };
    const host = (n: string) => {
      const t = sd.get(n);
      if (!t) throw new Error(`sam2 decoder: checkpoint has no tensor '${n}'`);
      return tensorF32(t);
    };
    this.nPre = dec.predObjScores ? 2 : 1;
    const parts = [...(dec.predObjScores ? ["obj_score_token"] : []), "iou_token", "mask_tokens"]
      .map((n) => host(`${p}${n}.weight`));
    this.outputTokens = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of parts) {
      this.outputTokens.set(x, at);
      at += x.length;
    }
    const lin = (n: string): Lin => ({
      w: uploadWeight(ctx, sd, `${p}${n}.weight`),
      b: uploadWeight(ctx, sd, `${p}${n}.bias`),
    });
    const packConvT = (n: string) => {
      const [cin, cout] = shapeOf(`${p}${n}.weight`);
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
    const T = this.numMaskTokens;
    this.hyper = [];
    for (let j = 0; j < 3; j++) {
      const names = [...Array(T).keys()].map((i) =>
        `${p}output_hypernetworks_mlps.${i}.layers.${j}`
      );
      const [n, k] = shapeOf(`${names[0]}.weight`);
      const bd = blockDiagonal(
        names.map((x) => host(`${x}.weight`)),
        names.map((x) => host(`${x}.bias`)),
        n,
        k,
      );
      this.hyper.push({
        w: tensorFrom(ctx, bd.w, [T * n, T * k], `sam2 hypernetworks.${j} (block diagonal)`),
        b: tensorFrom(ctx, bd.b, [T * n], `sam2 hypernetworks.${j}.bias`),
      });
    }
    this.iouHead = [];
    for (let j = 0; j < dec.iouHeadDepth; j++) {
      this.iouHead.push(lin(`iou_prediction_head.layers.${j}`));
    }
    this.objHead = !dec.predObjScores
      ? []
      : dec.objScoreHeadDepth === 1
      ? [lin("pred_obj_score_head")]
      : [...Array(dec.objScoreHeadDepth).keys()].map((j) => lin(`pred_obj_score_head.layers.${j}`));
    const hw = this.embedSize * this.embedSize, D = this.dim;
    const perPrompt = Math.max(2 * hw * D, 4 * 16 * hw, hw * 2 * D) * 4;
    const limit = ctx.device.limits.maxStorageBufferBindingSize;
    this.maxBatch = Math.max(1, Math.min(MAX_BATCH, Math.floor(limit / perPrompt)));
  }

  static create(ctx: GpuContext, sd: StateDict, arch: Sam2Arch): Sam2Decoder {
    return new Sam2Decoder(ctx, sd, arch);
  }

  /** Side of the low-res masks (4s; 256 for the real models). */
  get lowResSize(): number {
    return 4 * this.embedSize;
  }

  /**
   * SAM2Transforms.transform_coords (normalize=True) of one prompt, with SAM 1's checks of
   * the prompt: x / w * S, y / h * S in float32, as the torch tensors compute them.
   */
  private toFrame(p: DecoderPrompt, originalSize: readonly [number, number], i: number) {
    // Validation (the mapping it computes is SAM 1's and not used).
    toFramePrompt(p, originalSize, this.arch.imgSize, this.lowResSize, i);
    const [h, w] = originalSize;
    const S = this.arch.imgSize;
    const coords: number[] = [];
    const labels: number[] = [];
    const push = (x: number, y: number, label: number) => {
      coords.push(f(f(f(x) / w) * S), f(f(f(y) / h) * S));
      labels.push(label);
    };
    if (p.box) {
      push(p.box[0], p.box[1], 2);
      push(p.box[2], p.box[3], 3);
    }
    const points = p.points ?? [];
    const pl = p.labels ?? points.map(() => 1);
    points.forEach((pt, k) => push(pt[0], pt[1], pl[k]));
    if (labels.length > 0) {
      coords.push(0, 0);
      labels.push(-1);
    }
    return { coords: Float32Array.from(coords), labels: Int32Array.from(labels) };
  }

  /** The sparse prompt embeddings (N, C) of one prompt, as the official prompt encoder. */
  sparseEmbeddings(p: DecoderPrompt, originalSize: readonly [number, number]): Float32Array {
    const frame = this.toFrame(p, originalSize, 0);
    return this.promptEncoder.embedPoints(frame.coords, frame.labels);
  }

  /**
   * Decodes every prompt against `features`. Prompts are in original-image pixels
   * (opts.originalSize = [h, w]); results come in prompt order. `lowResOut`, when given,
   * receives the unclamped low-res logits that the upscaling reads (after hole / sprinkle
   * removal when asked); each result's lowRes is then empty.
   */
  async predict(
    features: Sam2Features,
    prompts: readonly DecoderPrompt[],
    opts: Sam2DecoderOptions,
  ): Promise<Sam2DecoderResult[]> {
    const D = this.dim, s = this.embedSize;
    const expect = [
      [features.imageEmbed, D, s, "image_embed"],
      [features.highRes0, D / 8, 4 * s, "high_res_feats_0"],
      [features.highRes1, D / 4, 2 * s, "high_res_feats_1"],
    ] as const;
    for (const [t, c, side, name] of expect) {
      if (t.size !== c * side * side) {
        throw new Error(`sam2 decoder: ${name} [${t.shape}] must be (1, ${c}, ${side}, ${side})`);
      }
    }
    const modeOf = (p: DecoderPrompt) =>
      opts.allTokens
        ? "all"
        : (p.multimask ?? opts.multimask ?? defaultMultimask(p))
        ? "multi"
        : "single";
    if (opts.lowResOut || opts.iouOut) {
      const counts = new Set(prompts.map((p) => this.countOf(modeOf(p))));
      const c = counts.size === 1 ? [...counts][0] : -1;
      if (opts.iouOut && (c < 0 || opts.iouOut.size !== prompts.length * c)) {
        throw new Error(
          `sam2 decoder: iouOut [${opts.iouOut.shape}] needs every prompt to return the same ` +
            `number of masks and (N=${prompts.length}, C) elements`,
        );
      }
      const need = prompts.length * c * this.lowResSize * this.lowResSize;
      if (opts.lowResOut && (c < 0 || opts.lowResOut.size !== need)) {
        throw new Error(
          `sam2 decoder: lowResOut [${opts.lowResOut.shape}] needs every prompt to return the ` +
            `same number of masks and (N=${prompts.length}, C, ${this.lowResSize}, ${this.lowResSize}) elements`,
        );
      }
    }
    const frames = prompts.map((p, i) => this.toFrame(p, opts.originalSize, i));
    const groups = new Map<string, number[]>();
    prompts.forEach((p, i) => {
      const key = `${p.maskInput ? "mask" : "none"}:${frames[i].labels.length}:${modeOf(p)}`;
      const g = groups.get(key);
      if (g) g.push(i);
      else groups.set(key, [i]);
    });
    if (prompts.length === 0) return [];
    const reuse = opts.reuseImage ?? true;
    // Per-prompt tensors come from the context's storage pool (see GpuContext.pooled).
    const pin = this.images.acquire(
      features.imageEmbed.buffer,
      reuse,
      () => this.ctx.pooled(() => this.makeImage(features)),
    );
    const entry = pin.entry;
    const results: Sam2DecoderResult[] = new Array(prompts.length);
    try {
      for (const [key, members] of groups) {
        const mode = key.split(":")[2] as "single" | "multi" | "all";
        for (let start = 0; start < members.length; start += this.maxBatch) {
          const chunk = members.slice(start, start + this.maxBatch);
          // The pass's recording (up to its first wait) takes its tensors from the pool.
          const out = await this.ctx.pooled(() =>
            this.runPass(
              chunk,
              chunk.map((i) => frames[i]),
              chunk.map((i) => prompts[i].maskInput),
              entry,
              reuse,
              mode,
              opts,
            )
          );
          chunk.forEach((i, j) => results[i] = out[j]);
        }
      }
    } catch (err) {
      this.images.drop(pin);
      throw err;
    } finally {
      this.images.unpin(pin);
    }
    return results;
  }

  private countOf(mode: "single" | "multi" | "all"): number {
    return mode === "all" ? this.numMaskTokens : mode === "multi" ? this.numMaskTokens - 1 : 1;
  }

  private makeImage(features: Sam2Features): ImageEntry {
    const ctx = this.ctx, D = this.dim, hw = this.embedSize * this.embedSize;
    // (C, n) NCHW -> (n, C) token-major.
    const tokens = (x: Tensor, c: number, n: number) =>
      stridedCopy(ctx, x, { offset: 0, shape: [n, c], strides: [1, n] });
    const imageTokens = tokens(features.imageEmbed, D, hw);
    const srcNoMask = add(ctx, imageTokens, this.promptEncoder.noMaskEmbedGpu());
    return {
      imageTokens,
      srcNoMask,
      layer0: null,
      highRes1: tokens(features.highRes1, D / 4, 4 * hw),
      highRes0: tokens(features.highRes0, D / 8, 16 * hw),
    };
  }

  private destroyImage(entry: ImageEntry): void {
    this.ctx.submit(); // recorded work may still read them
    for (const x of [entry.imageTokens, entry.srcNoMask, entry.highRes0, entry.highRes1]) {
      x.destroy();
    }
    const l0 = entry.layer0;
    if (l0) { for (const x of [l0.k, l0.v, l0.q]) x.destroy(); }
    entry.layer0 = null;
  }

  /**
   * Forgets what was computed from the feature set whose image_embed is `imageEmbed` (call it
   * before destroying the features). True when something was kept.
   */
  releaseEmbedding(imageEmbed: Tensor): boolean {
    return this.images.release(imageEmbed.buffer);
  }

  hasImageCached(imageEmbed: Tensor): boolean {
    return this.images.has(imageEmbed.buffer);
  }

  get cachedImages(): number {
    return this.images.size;
  }

  /** (B, n) rows through an MLP of linears with ReLU between. */
  private mlp(scratch: Scratch, x: Tensor, layers: Lin[]): Tensor {
    let h = x;
    layers.forEach((l, j) => {
      h = scratch.t(linear(this.ctx, h, l.w, l.b, {
        activation: j < layers.length - 1 ? "relu" : "none",
      }));
    });
    return h;
  }

  private async runPass(
    indices: number[],
    frames: Sam2FramePrompt[],
    maskInputs: (Float32Array | undefined)[],
    image: ImageEntry,
    reuse: boolean,
    mode: "single" | "multi" | "all",
    opts: Sam2DecoderOptions,
  ): Promise<Sam2DecoderResult[]> {
    const ctx = this.ctx, D = this.dim, s = this.embedSize, hw = s * s;
    const T = this.numMaskTokens, B = frames.length;
    const scratch = new Scratch(ctx);
    const t = <X extends Tensor>(x: X) => scratch.t(x);
    try {
      // Tokens (B, Nt, C): obj_score, iou, mask tokens, sparse prompt embeddings.
      const pre = this.nPre, nOut = pre + T;
      const nt = nOut + frames[0].labels.length;
      const tokens = new Float32Array(B * nt * D);
      frames.forEach((fp, b) => {
        tokens.set(this.outputTokens, b * nt * D);
        tokens.set(this.promptEncoder.embedPoints(fp.coords, fp.labels), (b * nt + nOut) * D);
      });
      const queryPe = t(tensorFrom(ctx, tokens, [B, nt, D], "sam2 decoder.tokens"));
      const pe = this.promptEncoder.densePeGpu(); // (HW, C)
      const forwardImage = transformerImage(
        ctx,
        scratch,
        { transformer: this.transformer, promptEncoder: this.promptEncoder, image, pe },
        maskInputs,
        { reuse, lowResSize: this.lowResSize, hw, dim: D, label: "sam2 decoder" },
      );
      const { queries, keys } = this.transformer.forward(queryPe, forwardImage, pe);
      t(queries);
      t(keys);
      // Upscaling with the high-res features: act1(ln1(dc1(src) + feat_s1)), then
      // act2(dc2(.) + feat_s0). (B, s, s, C) -> (B, 2s, 2s, C/4) -> (B, 4s, 4s, C/8).
      const c4 = this.upscale0.cout, c8 = this.upscale3.cout;
      const dc1 = t(convTranspose2dGemm(ctx, keys.reshape([B, s, s, D]), this.upscale0, {
        temps: scratch.list,
      }));
      const sum1 = t(add(ctx, dc1.reshape([B, 4 * hw, c4]), image.highRes1)); // (B, 4 HW, C/4)
      const ln1 = t(layerNorm(ctx, sum1, this.upscaleNorm.w, this.upscaleNorm.b, LN2D_EPS));
      const act1 = t(activation(ctx, ln1, "gelu")).reshape([B, 2 * s, 2 * s, c4]);
      const dc2 = t(convTranspose2dGemm(ctx, act1, this.upscale3, { temps: scratch.list })); // (B, 4s, 4s, C/8)
      const sum2 = t(add(ctx, dc2.reshape([B, 16 * hw, c8]), image.highRes0));
      const up = t(activation(ctx, sum2, "gelu")); // (B, 16 HW, C/8)
      // Hypernetworks on the T mask tokens (rows pre .. pre+T) -> (B, T, C/8).
      const hIn = t(stridedCopy(ctx, queries, {
        offset: pre * D,
        shape: [B, T * D],
        strides: [nt * D, 1],
      }));
      const h = this.mlp(scratch, hIn, this.hyper);
      const low = 16 * hw;
      const all = t(matmul(ctx, h.reshape([B, T, c8]), up, { transposeB: true })); // (B, T, 16 HW)
      // IoU head on the token before the mask tokens, object-score head on token 0.
      const iouIn = t(
        stridedCopy(ctx, queries, { offset: (pre - 1) * D, shape: [B, D], strides: [nt * D, 1] }),
      );
      const iouLogits = this.mlp(scratch, iouIn, this.iouHead); // (B, T)
      const objLogits = this.objHead.length === 0 ? null : this.mlp(
        scratch,
        t(stridedCopy(ctx, queries, { offset: 0, shape: [B, D], strides: [nt * D, 1] })),
        this.objHead,
      ); // (B, 1)
      const count = this.countOf(mode);
      const clean = (opts.maxHoleArea ?? 0) > 0 || (opts.maxSprinkleArea ?? 0) > 0;
      // Single-mask output picks its token from the masks' stability and the IoUs, on the CPU.
      const stability = mode === "single" && this.dec.dynamicMultimaskViaStability;
      let objAll = new Float32Array(B).fill(NO_OBJ_HEAD_SCORE);
      let iouAll: Float32Array | null = null;
      let allRead: Float32Array | null = null;
      // The mask tokens after the transformer (B, T * C), for the video predictor's obj_ptr.
      let tokenRead: Float32Array | null = null;
      if (opts.iouOut && !stability) {
        // The IoUs stay on the GPU (sigmoid there) and nothing is read here: the caller's own
        // readback observes the work (the AMG reads them with its statistics).
        const iouProb = this.dec.iouUseSigmoid
          ? t(sigmoidAffine(ctx, iouLogits, { mode: "sigmoid", scale: 1, bias: 0 }))
          : iouLogits;
        const first = mode === "multi" ? 1 : 0;
        indices.forEach((index, b) =>
          ctx.copy(
            iouProb.buffer,
            (b * T + first) * 4,
            opts.iouOut!.buffer,
            index * count * 4,
            count * 4,
          )
        );
        if (objLogits) objAll = new Float32Array(B).fill(NaN);
      } else {
        // One readback: object scores, IoU logits and, where the choice or the cleaning needs
        // them, every token's low-res masks, and where asked the mask tokens themselves.
        const needAll = stability || clean;
        const tokenBytes = opts.samOutputToken ? B * T * D * 4 : 0;
        const rb = new Readback(
          ctx,
          (objLogits ? B * 4 : 0) + B * T * 4 + (needAll ? B * T * low * 4 : 0) + tokenBytes,
        );
        const objRange = objLogits ? rb.copy(objLogits.buffer, 0, B * 4) : -1;
        const iouRange = rb.copy(iouLogits.buffer, 0, B * T * 4);
        const allRange = needAll ? rb.copy(all.buffer, 0, B * T * low * 4) : -1;
        const tokenRange = tokenBytes > 0 ? rb.copy(hIn.buffer, 0, tokenBytes) : -1;
        const data = await rb.map();
        if (tokenRange >= 0) tokenRead = new Float32Array(data[tokenRange]);
        if (objRange >= 0) objAll = new Float32Array(data[objRange]);
        const iouRead = new Float32Array(data[iouRange]);
        iouAll = this.dec.iouUseSigmoid ? sigmoid(iouRead) : iouRead;
        if (allRange >= 0) allRead = new Float32Array(data[allRange]);
      }
      // Which token each returned mask is.
      let chosen: number[][];
      if (stability) {
        chosen = [];
        for (let b = 0; b < B; b++) {
          const single = allRead!.subarray(b * T * low, b * T * low + low);
          const stable = stabilityScore(single, this.dec.stabilityDelta) >=
            f(this.dec.stabilityThresh);
          if (stable) chosen.push([0]);
          else {
            let best = 1;
            for (let k = 2; k < T; k++) if (iouAll![b * T + k] > iouAll![b * T + best]) best = k;
            chosen.push([best]);
          }
        }
      } else {
        const first = mode === "multi" ? 1 : 0; // single without stability: token 0
        chosen = frames.map(() => [...Array(count).keys()].map((k) => first + k));
      }
      if (opts.iouOut && iouAll) {
        // Chosen on the CPU (stability): their IoUs go to iouOut from here.
        chosen.forEach((ks, b) =>
          ctx.device.queue.writeBuffer(
            opts.iouOut!.buffer,
            indices[b] * count * 4,
            Float32Array.from(ks, (k) => iouAll![b * T + k]),
          )
        );
      }
      // The selected planes (B, count, l, l), unclamped.
      const side = this.lowResSize;
      let selected: Tensor;
      let lowRes: Float32Array | null = null;
      if (clean) {
        // Hole / sprinkle removal runs on the CPU over the low-res planes.
        allRead ??= await all.read();
        lowRes = new Float32Array(B * count * low);
        chosen.forEach((ks, b) =>
          ks.forEach((k, j) =>
            lowRes!.set(
              allRead!.subarray((b * T + k) * low, (b * T + k + 1) * low),
              (b * count + j) * low,
            )
          )
        );
        for (let q = 0; q < B * count; q++) {
          removeSmallRegions(
            lowRes.subarray(q * low, (q + 1) * low),
            side,
            side,
            opts.maxHoleArea ?? 0,
            opts.maxSprinkleArea ?? 0,
          );
        }
        selected = t(tensorFrom(ctx, lowRes, [B, count, side, side], "sam2 decoder.low_res"));
      } else if (count === T) {
        selected = all.reshape([B, count, side, side]);
      } else {
        selected = t(emptyTensor(ctx, [B, count, side, side], "sam2 decoder.low_res"));
        chosen.forEach((ks, b) =>
          ks.forEach((k, j) =>
            ctx.copy(
              all.buffer,
              (b * T + k) * low * 4,
              selected.buffer,
              (b * count + j) * low * 4,
              low * 4,
            )
          )
        );
      }
      const planeBytes = count * low * 4;
      if (opts.lowResOut) {
        indices.forEach((index, b) =>
          ctx.copy(
            selected.buffer,
            b * planeBytes,
            opts.lowResOut!.buffer,
            index * planeBytes,
            planeBytes,
          )
        );
      } else {
        lowRes ??= await selected.read();
      }
      const results: Sam2DecoderResult[] = [];
      for (let b = 0; b < B; b++) {
        let planes = new Float32Array(0);
        if (!opts.lowResOut) {
          planes = lowRes!.slice(b * count * low, (b + 1) * count * low);
          for (let q = 0; q < planes.length; q++) {
            planes[q] = Math.min(LOW_RES_CLAMP, Math.max(-LOW_RES_CLAMP, planes[q]));
          }
        }
        results.push({
          count,
          lowRes: planes,
          iou: opts.iouOut
            ? new Float32Array(0)
            : Float32Array.from(chosen[b], (k) => iouAll![b * T + k]),
          objScore: objAll[b],
          tokens: chosen[b],
        });
        if (tokenRead) {
          // torch.argmax over the multimask IoUs (the first of equal maxima); else token 0.
          let k = 0;
          if (mode === "multi") {
            k = 1;
            for (let j = 2; j < T; j++) if (iouAll![b * T + j] > iouAll![b * T + k]) k = j;
          }
          results[b].samOutputToken = tokenRead.slice((b * T + k) * D, (b * T + k + 1) * D);
        }
      }
      const output = opts.output ?? "masks";
      if (output !== "none") {
        // One bilinear from the low-res side to the original size: the fused SAM
        // postprocess with an identity first stage (img size = input size = low-res side).
        await samPostprocessRead(
          ctx,
          selected,
          { imgSize: side, inputSize: [side, side], originalSize: opts.originalSize },
          output,
          (plane, masksOut, logitsOut) => {
            const r = results[Math.floor(plane / count)];
            if (masksOut) (r.masks ??= []).push(masksOut);
            if (logitsOut) {
              const [oh, ow] = opts.originalSize;
              r.logits ??= new Float32Array(count * oh * ow);
              r.logits.set(logitsOut, (plane % count) * oh * ow);
            }
          },
        );
      }
      return results;
    } finally {
      scratch.flush();
    }
  }

  dispose(): void {
    this.images.clear();
    this.ctx.trimStoragePool();
    this.promptEncoder.dispose();
    this.transformer.dispose();
    for (const l of [this.upscaleNorm, ...this.hyper, ...this.iouHead, ...this.objHead]) {
      l.w.destroy();
      l.b.destroy();
    }
    for (const c of [this.upscale0, this.upscale3]) {
      c.weight.destroy();
      c.bias.destroy();
    }
  }
}

/** torch.sigmoid in float32. */
function sigmoid(x: Float32Array): Float32Array {
  return x.map((v) => f(1 / (1 + Math.exp(-v))));
}

/**
 * MaskDecoder._get_stability_scores of one plane: (logits > delta) area over
 * (logits > -delta) area, 1 when the latter is empty, in float32.
 */
export function stabilityScore(logits: Float32Array, delta: number): number {
  const hi = f(delta), lo = f(-delta);
  let inter = 0, union = 0;
  for (let q = 0; q < logits.length; q++) {
    if (logits[q] > hi) inter++;
    if (logits[q] > lo) union++;
  }
  return union > 0 ? f(inter / union) : 1;
}
