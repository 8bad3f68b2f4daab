/**
 * SAM's TwoWayTransformer (segment_anything/modeling/transformer.py) on the GPU, for a batch
 * of B prompts with the same number of tokens:
 *   queries (B, Nt, D): output tokens + sparse prompt tokens (query_pe = their initial value)
 *   keys    (B, HW, D): image embedding + dense prompt embedding, token-major
 *   key_pe  (HW, D): the dense PE, broadcast over the prompts
 * Each layer: self attention of the tokens (layer 0 without the PE add and without the
 * residual, as the official), token->image cross attention, ReLU MLP, image->token cross
 * attention, LayerNorms (eps 1e-5) after each. Then a final token->image attention and
 * norm_final_attn. The cross attentions project to the downsampled internal width.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, Tensor, tensorFrom } from "../gpu/tensor.ts";
import { add } from "../kernels/add.ts";
import { addLayerNorm } from "../kernels/add_layer_norm.ts";
import { attention } from "../kernels/attention.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import type { SamArch, StateDict } from "../weights/types.ts";
import { uploadMatrix, uploadWeight } from "./prompt_encoder.ts";
import type { Precision } from "../precision.ts";

const LN_EPS = 1e-5;

interface Lin {
  w: Tensor;
  b: Tensor;
}
interface Norm {
  w: Tensor;
  b: Tensor;
}
interface AttnWeights {
  q: Lin;
  k: Lin;
  v: Lin;
  out: Lin;
  /** Internal width (D for self attention, D / downsample for cross attention). */
  internal: number;
}
interface LayerWeights {
  selfAttn: AttnWeights;
  norm1: Norm;
  tokenToImage: AttnWeights;
  norm2: Norm;
  mlp1: Lin;
  mlp2: Lin;
  norm3: Norm;
  norm4: Norm;
  imageToToken: AttnWeights;
}

/** An attention input: a tensor to project, or its projection already made. */
type AttnInput = Tensor | { projected: Tensor };

/**
 * Layer 0's image side when every prompt's keys are the same src (no mask inputs): it is
 * prompt-independent, so it is projected once per image embedding (not per prompt).
 */
export interface SharedImage {
  /** (HW, D): image embedding + no_mask_embed, the keys of every prompt. */
  src: Tensor;
  /** (HW, I): token->image k_proj(src + key_pe). */
  k: Tensor;
  /** (HW, I): token->image v_proj(src). */
  v: Tensor;
  /** (HW, I): image->token q_proj(src + key_pe). */
  q: Tensor;
}

/** Collects a pass's intermediate tensors; `flush` submits the work, then frees them. */
export class Scratch {
  private readonly tensors: Tensor[] = [];
  constructor(private readonly ctx: GpuContext) {}
  /** Registers a temporary and returns it. */
  t<T extends Tensor>(x: T): T {
    this.tensors.push(x);
    return x;
  }
  get list(): Tensor[] {
    return this.tensors;
  }
  /** Submits what was recorded; the buffers are freed once the GPU is done with them. */
  flush(): void {
    this.ctx.submit();
    for (const x of this.tensors.splice(0)) x.destroy();
  }
}

/** An image embedding's prompt-independent tensors, as both decoders keep them per image. */
export interface DecoderImage {
  /** (HW, D): the image embedding's tokens. */
  imageTokens: Tensor;
  /** (HW, D): imageTokens + no_mask_embed, every unmasked prompt's keys. */
  srcNoMask: Tensor;
  /** Layer 0's image projections of srcNoMask; made by the first pass that needs them. */
  layer0: SharedImage | null;
}

/**
 * The transformer's image side for a batch of B prompts: with no mask inputs (and `reuse`),
 * layer 0's projections shared by every prompt (made once per image); else the keys
 * (B, HW, D), each prompt's image tokens plus its dense prompt embedding (its embedded mask
 * input, or no_mask_embed). Temporaries go to `scratch`.
 */
export function transformerImage(
  ctx: GpuContext,
  scratch: Scratch,
  parts: {
    transformer: TwoWayTransformer;
    promptEncoder: { embedMask(mask: Tensor, temps: Tensor[]): Tensor };
    image: DecoderImage;
    /** (HW, D): the dense positional encoding. */
    pe: Tensor;
  },
  maskInputs: (Float32Array | undefined)[],
  opts: { reuse: boolean; lowResSize: number; hw: number; dim: number; label: string },
): { keys: Tensor } | { shared: SharedImage } {
  const { transformer, promptEncoder, image, pe } = parts;
  const { hw, dim: D, label } = opts;
  if (opts.reuse && maskInputs.every((m) => m === undefined)) {
    image.layer0 ??= transformer.projectSharedImage(image.srcNoMask, pe);
    return { shared: image.layer0 };
  }
  const t = <X extends Tensor>(x: X) => scratch.t(x);
  const src = t(emptyTensor(ctx, [maskInputs.length, hw, D], `${label}.src`)); // (B, HW, D)
  maskInputs.forEach((m, b) => {
    let row = image.srcNoMask;
    if (m) {
      const side = opts.lowResSize;
      const mask = t(tensorFrom(ctx, m, [1, side, side], `${label}.mask_input`));
      const dense = t(promptEncoder.embedMask(mask, scratch.list)); // (HW, D)
      row = t(add(ctx, image.imageTokens, dense));
    }
    ctx.copy(row.buffer, 0, src.buffer, b * hw * D * 4, hw * D * 4);
  });
  return { keys: src };
}

export class TwoWayTransformer {
  private readonly layers: LayerWeights[];
  private readonly finalAttn: AttnWeights;
  private readonly normFinal: Norm;
  readonly heads: number;
  readonly dim: number;

  constructor(
    private readonly ctx: GpuContext,
    sd: StateDict,
    arch: Pick<SamArch, "promptEmbedDim" | "decoderDepth" | "decoderNumHeads">,
    /** Tensor name prefix: SAM's, or SAM 2's "sam_mask_decoder.transformer.". */
    p = "mask_decoder.transformer.",
    /** "f16": the projections' and MLPs' weights stored as f16 (norms stay f32). */
    precision: Precision = "f32",
  ) {
    const up = (n: string) => uploadWeight(ctx, sd, `${p}${n}`);
    const lin = (n: string): Lin => ({ w: up(`${n}.weight`), b: up(`${n}.bias`) });
    const matrix = (n: string): Lin => ({
      w: uploadMatrix(ctx, sd, `${p}${n}.weight`, precision),
      b: up(`${n}.bias`),
    });
    const attn = (n: string): AttnWeights => {
      const q = matrix(`${n}.q_proj`);
      return {
        q,
        k: matrix(`${n}.k_proj`),
        v: matrix(`${n}.v_proj`),
        out: matrix(`${n}.out_proj`),
        internal: q.w.shape[0],
      };
    };
    this.heads = arch.decoderNumHeads;
    this.dim = arch.promptEmbedDim;
    this.layers = [];
    for (let i = 0; i < arch.decoderDepth; i++) {
      const l = `layers.${i}.`;
      // SAM names the MLP's linears lin1 / lin2; SAM 2 (its generic MLP) layers.0 / layers.1.
      const sam2Mlp = sd.has(`${p}${l}mlp.layers.0.weight`);
      this.layers.push({
        selfAttn: attn(`${l}self_attn`),
        norm1: lin(`${l}norm1`),
        tokenToImage: attn(`${l}cross_attn_token_to_image`),
        norm2: lin(`${l}norm2`),
        mlp1: matrix(sam2Mlp ? `${l}mlp.layers.0` : `${l}mlp.lin1`),
        mlp2: matrix(sam2Mlp ? `${l}mlp.layers.1` : `${l}mlp.lin2`),
        norm3: lin(`${l}norm3`),
        norm4: lin(`${l}norm4`),
        imageToToken: attn(`${l}cross_attn_image_to_token`),
      });
    }
    this.finalAttn = attn("final_attn_token_to_image");
    this.normFinal = lin("norm_final_attn");
  }

  /**
   * Attention(q, k, v) of SAM's decoder: projections, multi-head attention, out_proj, with
   * `residual` added to the output when given. q: (B, Nq, D), k and v: (B, Nk, D); an input
   * given as `{ projected }` (B, N, I) was already projected (shared image side) and is used
   * as is.
   */
  private attend(
    s: Scratch,
    w: AttnWeights,
    q: AttnInput,
    k: AttnInput,
    v: AttnInput,
    residual?: Tensor,
  ): Tensor {
    const ctx = this.ctx;
    const proj = (x: AttnInput, l: Lin) =>
      x instanceof Tensor ? s.t(linear(ctx, x, l.w, l.b)) : x.projected;
    const qp = proj(q, w.q); // (B, Nq, I)
    const kp = proj(k, w.k); // (B, Nk, I)
    const vp = proj(v, w.v); // (B, Nk, I)
    const [batch, nq] = qp.shape, nk = kp.shape[1];
    const I = w.internal;
    const o = s.t(attention(
      ctx,
      { tensor: qp, offset: 0, rowStride: I },
      { tensor: kp, offset: 0, rowStride: I },
      { tensor: vp, offset: 0, rowStride: I },
      { batch, heads: this.heads, headDim: I / this.heads, nq, nk },
    )); // (B, Nq, I)
    return linear(ctx, o, w.out.w, w.out.b, residual ? { residual } : {}); // (B, Nq, D)
  }

  /**
   * Layer 0's image side for keys = `src` (HW, D) in every prompt: token->image k and v,
   * image->token q, each (HW, I). The caller owns the result (not `src`).
   */
  projectSharedImage(src: Tensor, keyPe: Tensor): SharedImage {
    const ctx = this.ctx, L = this.layers[0];
    const kPe = add(ctx, src, keyPe); // (HW, D): keys + key_pe
    try {
      const a = L.tokenToImage, b = L.imageToToken;
      return {
        src,
        k: linear(ctx, kPe, a.k.w, a.k.b),
        v: linear(ctx, src, a.v.w, a.v.b),
        q: linear(ctx, kPe, b.q.w, b.q.b),
      };
    } finally {
      // Freed once the recorded work is submitted.
      this.ctx.submit();
      kPe.destroy();
    }
  }

  /**
   * Runs the transformer on B prompts. queryPe: (B, Nt, D) (the initial tokens); the image
   * side is either `keys` (B, HW, D), one src per prompt, or `shared`: the same src for every
   * prompt with layer 0's image projections done once (projectSharedImage). keyPe: (HW, D),
   * the same for every prompt (broadcast by `add`). Returns the processed tokens (B, Nt, D)
   * and image tokens (B, HW, D); the caller owns both (and its own inputs).
   */
  forward(
    queryPe: Tensor,
    image: { keys: Tensor } | { shared: SharedImage },
    keyPe: Tensor,
  ): { queries: Tensor; keys: Tensor } {
    const ctx = this.ctx;
    const batch = queryPe.shape[0];
    // (HW, I) -> (B, HW, I); a batch of 1 is a view of the shared tensor, not a copy.
    const repeat = (s: Scratch, x: Tensor) =>
      batch === 1
        ? x.reshape([1, ...x.shape])
        : s.t(stridedCopy(ctx, x, { offset: 0, shape: [batch, x.size], strides: [0, 1] }))
          .reshape([batch, ...x.shape]);
    const shared = "shared" in image ? image.shared : null;
    const keys0 = "keys" in image ? image.keys : null;
    let queries = queryPe;
    let keys = keys0;
    // queries + query_pe and keys + key_pe as the LayerNorm before made them (fused), for the
    // next attention; null before the first.
    let queriesPe: Tensor | null = null;
    let keysPe: Tensor | null = null;
    for (let i = 0; i < this.layers.length; i++) {
      const L = this.layers[i];
      const s = new Scratch(ctx);
      // The previous layer's outputs are this layer's temporaries (never the caller's inputs).
      if (queries !== queryPe) s.t(queries);
      if (keys && keys !== keys0) s.t(keys);
      if (queriesPe) s.t(queriesPe);
      if (keysPe) s.t(keysPe);
      // (1) self attention of the tokens.
      let attnOut: Tensor;
      if (i === 0) {
        // skip_first_layer_pe: queries = self_attn(q=queries, k=queries, v=queries), no residual.
        attnOut = s.t(this.attendSelf(s, L.selfAttn, queries, queries, null));
      } else {
        // q = queries + query_pe (B, Nt, D), made by the previous layer's norm3.
        attnOut = s.t(this.attendSelf(s, L.selfAttn, queriesPe!, queries, queries));
      }
      // norm1, and queries + query_pe for (2).
      const n1 = addLayerNorm(ctx, attnOut, L.norm1.w, L.norm1.b, LN_EPS, { pe: queryPe });
      queries = s.t(n1.y);
      const qPe = s.t(n1.yPe!); // (B, Nt, D)
      // (2) tokens attend to the image.
      // Layer 0 on a shared src: its projections are repeated per prompt, never recomputed.
      const sh = keys ? null : shared!;
      // keys + key_pe; on a shared src only its image->token q projection is ever needed.
      const kPe: AttnInput = sh
        ? { projected: repeat(s, sh.q) } // (B, HW, I)
        : keysPe ?? s.t(add(ctx, keys!, keyPe)); // (B, HW, D) + (HW, D) broadcast
      const cross = s.t(this.attend(
        s,
        L.tokenToImage,
        qPe,
        sh ? { projected: repeat(s, sh.k) } : kPe,
        sh ? { projected: repeat(s, sh.v) } : keys!,
        queries,
      ));
      queries = s.t(layerNorm(ctx, cross, L.norm2.w, L.norm2.b, LN_EPS));
      // (3) MLP on the tokens (ReLU), residual fused into lin2.
      const hidden = s.t(linear(ctx, queries, L.mlp1.w, L.mlp1.b, { activation: "relu" }));
      const mlp = s.t(linear(ctx, hidden, L.mlp2.w, L.mlp2.b, { residual: queries }));
      // norm3 (queries, kept: the next layer's input), and queries + query_pe for (4), the
      // next layer's self attention and the final attention.
      const n3 = addLayerNorm(ctx, mlp, L.norm3.w, L.norm3.b, LN_EPS, { pe: queryPe });
      queries = n3.y;
      queriesPe = n3.yPe!;
      // (4) the image attends to the tokens: q = keys + key_pe, k = queries + query_pe, v = queries.
      const back = s.t(this.attend(s, L.imageToToken, kPe, queriesPe, queries, keys ?? undefined));
      // norm4 (keys, kept) and keys + key_pe for the next cross attentions. The shared src is
      // (HW, D): added as the norm's residual, broadcast over the batch rather than repeated.
      const n4 = addLayerNorm(ctx, back, L.norm4.w, L.norm4.b, LN_EPS, {
        residual: sh ? sh.src : undefined,
        pe: keyPe,
      });
      keys = n4.y; // (B, HW, D)
      keysPe = n4.yPe!;
      s.flush();
    }
    const s = new Scratch(ctx);
    if (queries !== queryPe) s.t(queries);
    if (queriesPe) s.t(queriesPe);
    if (keysPe) s.t(keysPe);
    const qPe = queriesPe ?? s.t(add(ctx, queries, queryPe));
    const kPe = keysPe ?? s.t(add(ctx, keys!, keyPe));
    const fin = s.t(this.attend(s, this.finalAttn, qPe, kPe, keys!, queries));
    const out = layerNorm(ctx, fin, this.normFinal.w, this.normFinal.b, LN_EPS);
    s.flush();
    return { queries: out, keys: keys! };
  }

  /** Self attention where q and k are the same tensor (projected separately), v another. */
  private attendSelf(
    s: Scratch,
    w: AttnWeights,
    qk: Tensor,
    v: Tensor,
    residual: Tensor | null,
  ): Tensor {
    const ctx = this.ctx;
    const [batch, n] = qk.shape;
    const qp = s.t(linear(ctx, qk, w.q.w, w.q.b));
    const kp = s.t(linear(ctx, qk, w.k.w, w.k.b));
    const vp = s.t(linear(ctx, v, w.v.w, w.v.b));
    const I = w.internal;
    const o = s.t(attention(
      ctx,
      { tensor: qp, offset: 0, rowStride: I },
      { tensor: kp, offset: 0, rowStride: I },
      { tensor: vp, offset: 0, rowStride: I },
      { batch, heads: this.heads, headDim: I / this.heads, nq: n, nk: n },
    ));
    return linear(ctx, o, w.out.w, w.out.b, residual ? { residual } : {});
  }

  dispose(): void {
    const all: Lin[] = [];
    const attn = (a: AttnWeights) => all.push(a.q, a.k, a.v, a.out);
    for (const L of this.layers) {
      attn(L.selfAttn);
      attn(L.tokenToImage);
      attn(L.imageToToken);
      all.push(L.norm1, L.norm2, L.norm3, L.norm4, L.mlp1, L.mlp2);
    }
    attn(this.finalAttn);
    all.push(this.normFinal);
    for (const x of all) {
      x.w.destroy();
      x.b.destroy();
    }
  }
}
