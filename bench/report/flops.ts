/**
 * FLOP counts of each case, as the official code computes it (a multiply-add = 2 FLOPs,
 * matrix products and convolutions only). GFLOP/s in the table is these FLOPs per second, so
 * implementations that skip work (padding rows) are compared on the same count. Pure.
 */
import type { TinyVitArch } from "../../src/mobile_sam/arch.ts";
import type { Sam2Arch } from "../../src/sam2/arch.ts";
import type { SamArch } from "../../src/weights/types.ts";

/**
 * FLOPs of one forward pass of SAM's image encoder (ImageEncoderViT) as the official code
 * computes it, counting a multiply-add as 2 FLOPs and only the matrix products: patch
 * embedding conv, per block qkv / attention scores / attention-weighted values / the decomposed
 * relative-position terms (einsum of q with Rh and Rw) / output projection / MLP, and the neck's
 * 1x1 and 3x3 convs. Not counted: LayerNorm, GELU, softmax, adds, pos_embed, padding copies
 * (all linear in the activation size, a few percent at most).
 *
 * Windowed blocks: the official code partitions before the attention module, so qkv,
 * attention and the output projection run on the zero-padded windows (64 -> 70 for window
 * 14: 25 windows of 196 tokens = 4900 rows instead of 4096). An implementation that skips the
 * padded rows of the projection (ours does) does less work than counted here; GFLOP/s is then
 * "official FLOPs per second", comparable across implementations.
 */
export function flopsEncoder(arch: SamArch): number {
  const s = arch.imgSize / arch.patchSize; // token grid side
  const T = s * s;
  const C = arch.embedDim;
  const M = arch.encoderMlpDim;
  const D = arch.promptEmbedDim;
  let f = 2 * T * C * 3 * arch.patchSize * arch.patchSize; // patch embed (conv k=p, stride p)
  for (let i = 0; i < arch.depth; i++) {
    const global = arch.globalAttnIndexes.includes(i) || arch.windowSize === 0;
    const span = global ? s : arch.windowSize; // attention side (tokens per row of a window)
    const padded = global ? s : Math.ceil(s / span) * span;
    const nWin = (padded / span) ** 2;
    const L = span * span; // tokens per window
    const rows = nWin * L; // rows through qkv and proj (padding included)
    f += 2 * rows * C * 3 * C; // qkv
    f += 2 * 2 * nWin * L * L * C; // q k^T and attn @ v, all heads (heads * headDim = C)
    f += 2 * 2 * nWin * L * span * C; // rel_h and rel_w: per query, span keys, headDim each
    f += 2 * rows * C * C; // proj
    f += 2 * 2 * T * C * M; // mlp lin1 + lin2
  }
  f += 2 * T * C * D; // neck 1x1 conv
  f += 2 * T * D * D * 9; // neck 3x3 conv
  return f;
}

export interface DecoderFlopsOptions {
  /** Prompts decoded (each a full pass of the two-way transformer). */
  prompts: number;
  /** Sparse prompt tokens per prompt: points (+1 padding point when there is no box) + 2 per box. */
  sparseTokens: number;
}

/**
 * FLOPs of SAM's mask decoder for `prompts` prompts as the official code computes them (the
 * image embedding is repeated per prompt, so the whole two-way transformer runs per prompt),
 * a multiply-add = 2 FLOPs, matrix products only: every attention's q/k/v/out projections and
 * its two products (two layers of token self-attention, token->image, MLP, image->token; the
 * final token->image attention), the two transposed convs of the upscaling, the hypernetwork
 * MLPs of all 4 mask tokens, the mask product and the IoU head. Not counted: the prompt
 * encoder (a few hundred FLOPs per point), norms, activations, adds, and the resampling of the
 * masks to the original image size (bilinear, memory-bound; the two sides resample a different
 * number of masks: the official ONNX export all 4, the predictor the 1 or 3 it returns).
 */
export function flopsDecoder(arch: SamArch, opts: DecoderFlopsOptions): number {
  const D = arch.promptEmbedDim;
  const Di = arch.decoderCrossAttnDim;
  const s = arch.imgSize / arch.patchSize;
  const N = s * s; // image tokens
  const masks = arch.numMultimaskOutputs + 1;
  const Nt = 1 + masks + opts.sparseTokens; // iou token + mask tokens + sparse prompt tokens
  // Attention(embedding D, internal dim dInt): q from nq rows, k and v from nk rows.
  const attn = (nq: number, nk: number, dInt: number) =>
    2 * nq * D * dInt + 2 * 2 * nk * D * dInt + 2 * 2 * nq * nk * dInt + 2 * nq * dInt * D;
  let f = 0;
  for (let l = 0; l < arch.decoderDepth; l++) {
    f += attn(Nt, Nt, D); // token self-attention
    f += attn(Nt, N, Di); // tokens -> image
    f += 2 * 2 * Nt * D * arch.decoderMlpDim; // token MLP
    f += attn(N, Nt, Di); // image -> tokens
  }
  f += attn(Nt, N, Di); // final tokens -> image
  // Upscaling: ConvTranspose2d k2 s2 (each output pixel: Cin MACs per output channel).
  f += 2 * (2 * s) ** 2 * (D / 4) * D;
  f += 2 * (4 * s) ** 2 * (D / 8) * (D / 4);
  f += masks * 2 * (D * D + D * D + D * (D / 8)); // hypernetwork MLPs (3 layers)
  f += 2 * masks * (D / 8) * (4 * s) ** 2; // hyper_in @ upscaled embedding
  const H = arch.iouHeadHiddenDim; // IoU head: D -> H -> H -> masks
  f += 2 * (D * H + H * H + H * masks);
  return f * opts.prompts;
}

/**
 * FLOPs of SAM 2's mask decoder, counted as flopsDecoder counts SAM's (same two-way transformer,
 * upscaling, hypernetworks, IoU head) with one more output token (the object-score token) and
 * its 3-layer MLP head. Not counted beyond SAM's: the adds of the high-res features (one add a
 * pixel) and the stability score of single-mask outputs (a comparison a pixel).
 */
export function flopsSam2Decoder(arch: Sam2Arch, opts: DecoderFlopsOptions): number {
  const d = arch.decoder, D = arch.dModel;
  const asSam = {
    promptEmbedDim: D,
    decoderCrossAttnDim: d.crossAttnDim,
    imgSize: arch.imgSize,
    patchSize: arch.backboneStride,
    numMultimaskOutputs: d.numMultimaskOutputs,
    decoderDepth: d.depth,
    decoderMlpDim: d.mlpDim,
    iouHeadHiddenDim: d.iouHeadHiddenDim,
  } as SamArch;
  const objToken = d.predObjScores ? 1 : 0;
  const objHead = d.objScoreHeadDepth === 3 ? 2 * (D * D + D * D + D) : 2 * D * objToken;
  return flopsDecoder(asSam, { ...opts, sparseTokens: opts.sparseTokens + objToken }) +
    objHead * opts.prompts;
}

/**
 * FLOPs of SamAutomaticMaskGenerator with one crop layer (the whole image) and a grid of
 * pointsPerSide^2 single-point prompts: one encoder pass plus the decoder per point (one point
 * and the padding point = 2 sparse tokens). Not counted: mask resampling, stability scores,
 * NMS, RLE (see flopsDecoder).
 */
export function flopsAmg(arch: SamArch, pointsPerSide: number): number {
  return flopsEncoder(arch) +
    flopsDecoder(arch, { prompts: pointsPerSide ** 2, sparseTokens: 2 });
}

/**
 * FLOPs of MobileSAM's TinyViT encoder and SAM's neck as the official code runs them: the
 * stem's two 3x3 convs, each MBConv (1x1 expand, depthwise 3x3, 1x1), per attention block qkv /
 * scores / weighted values / proj on the zero-padded windows, the depthwise 3x3 local conv and
 * the MLP, each PatchMerging (1x1, depthwise 3x3, 1x1), and the neck. Not counted: BatchNorm
 * (folded at load), norms, GELU, softmax, the attention-bias gather, adds.
 */
export function flopsTinyVit(tv: TinyVitArch): number {
  const S = tv.imgSize, h1 = S / 2, g0 = S / 4;
  let f = 2 * h1 * h1 * tv.stemDim * 27 + 2 * g0 * g0 * tv.stages[0].dim * 9 * tv.stemDim;
  for (const s of tv.stages) {
    const T = s.grid * s.grid, C = s.dim;
    if (s.mbconvHidden) f += s.depth * (2 * T * (2 * C * s.mbconvHidden + 9 * s.mbconvHidden));
    if (s.heads) {
      const padded = Math.ceil(s.grid / s.window) * s.window;
      const rows = padded * padded, L = s.window * s.window;
      const perBlock = 2 * rows * C * 3 * C + // qkv on the padded windows
        2 * 2 * rows * L * C + // q k^T and attn @ v
        2 * rows * C * C + // proj
        2 * T * C * s.localConv * s.localConv + // local conv
        2 * 2 * T * C * s.mlpDim; // fc1 + fc2
      f += s.depth * perBlock;
    }
    if (s.downsample) {
      const o = s.downsample.outDim, To = s.downsample.outGrid ** 2;
      f += 2 * T * C * o + 2 * To * o * 9 + 2 * To * o * o;
    }
  }
  const last = tv.stages[tv.stages.length - 1].dim, T = tv.outGrid ** 2, D = tv.neckDim;
  return f + 2 * T * last * D + 2 * T * D * D * 9;
}
