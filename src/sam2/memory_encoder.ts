/**
 * SAM 2's MemoryEncoder (`modeling/memory_encoder.py`) on token-major maps: a frame's image
 * features fused with its predicted mask into one memory.
 *
 *   mask [S, S, 1] -> MaskDownSampler: (conv k s2 -> LayerNorm2d -> GELU) x L, conv 1x1
 *                  -> [S/16, S/16, inDim]
 *   x = pix_feat_proj(pix_feat) + mask          (1x1 conv, the add fused as the residual)
 *   x = Fuser(x): CXBlocks  x + gamma * pwconv2(GELU(pwconv1(LN(dwconv7x7(x)))))
 *   x = out_proj(x)                             (1x1 conv inDim -> outDim)
 *   pos = PositionEmbeddingSine(outDim) of the s x s grid   (CPU, per grid size)
 *
 * The mask is taken as the official forward receives it with skip_mask_sigmoid=True: already
 * sigmoid-ed (or binarized) and scaled (`sigmoidAffine`), as `_encode_new_memory` prepares it.
 */
import type { GpuContext } from "../gpu/context.ts";
import { type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { activation } from "../kernels/activation.ts";
import { conv2d } from "../kernels/conv2d.ts";
import { depthwiseConv2d } from "../kernels/depthwise_conv2d.ts";
import { layerNorm } from "../kernels/layer_norm.ts";
import { linear } from "../kernels/linear.ts";
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2MemoryArch } from "./memory_arch.ts";
import { positionEmbeddingSine } from "./position_encoding.ts";

/** LayerNorm2d's default eps in sam2_utils, also the CXBlock's. */
const LN2D_EPS = 1e-6;

interface CXBlockWeights {
  dwWeight: Tensor;
  dwBias: Tensor;
  normWeight: Tensor;
  normBias: Tensor;
  pw1Weight: Tensor;
  pw1Bias: Tensor;
  /** pwconv2 with the layer scale gamma folded into its rows and bias. */
  pw2Weight: Tensor;
  pw2Bias: Tensor;
}

export interface MemoryEncoderOutput {
  /** vision_features: [s, s, outDim] token-major. */
  features: Tensor;
  /** vision_pos_enc: [s * s, outDim] token-major, float32 on the CPU (same for every frame). */
  posEnc: Float32Array;
}

export class MemoryEncoder {
  private readonly weights: Tensor[] = [];
  private readonly down: { w: Tensor; b: Tensor; lnW: Tensor; lnB: Tensor }[] = [];
  private readonly downOut: { w: Tensor; b: Tensor };
  private readonly pixFeatProj: { w: Tensor; b: Tensor };
  private readonly fuser: CXBlockWeights[] = [];
  private readonly outProj: { w: Tensor; b: Tensor } | null;
  private readonly posCache = new Map<number, Float32Array>();

  constructor(
    private readonly ctx: GpuContext,
    sd: StateDict,
    readonly arch: Sam2MemoryArch,
  ) {
    const me = "memory_encoder.";
    const host = (name: string) => {
      const t = sd.get(me + name);
      if (!t) throw new Error(`MemoryEncoder: checkpoint has no tensor '${me}${name}'`);
      return t;
    };
    const upload = (data: Float32Array, shape: number[], name: string): Tensor => {
      const t = tensorFrom(ctx, data, shape, me + name);
      this.weights.push(t);
      return t;
    };
    const get = (name: string, shape?: number[]) => {
      const h = host(name);
      return upload(tensorF32(h), shape ?? h.shape, name);
    };
    // 1x1 convs as linears: [Cout, Cin, 1, 1] -> [Cout, Cin].
    const conv1x1 = (name: string) => {
      const [cout, cin] = host(`${name}.weight`).shape;
      return { w: get(`${name}.weight`, [cout, cin]), b: get(`${name}.bias`) };
    };
    const a = arch.memoryEncoder;
    const ds = "mask_downsampler.encoder.";
    for (let i = 0; i < a.downsampleLayers; i++) {
      this.down.push({
        w: get(`${ds}${3 * i}.weight`),
        b: get(`${ds}${3 * i}.bias`),
        lnW: get(`${ds}${3 * i + 1}.weight`),
        lnB: get(`${ds}${3 * i + 1}.bias`),
      });
    }
    this.downOut = conv1x1(`${ds}${3 * a.downsampleLayers}`);
    this.pixFeatProj = conv1x1("pix_feat_proj");
    for (let i = 0; i < a.fuserLayers; i++) {
      const p = `fuser.layers.${i}.`;
      const w2 = host(`${p}pwconv2.weight`), b2 = host(`${p}pwconv2.bias`);
      // Copies: tensorF32 may view the state dict's own bytes, which must stay unscaled.
      const pw2w = tensorF32(w2).slice(), pw2b = tensorF32(b2).slice();
      if (a.fuserLayerScale) {
        // gamma * (W h + b) = (gamma (.) W) h + gamma (.) b: one linear, no extra pass.
        const gamma = tensorF32(host(`${p}gamma`));
        const [cout, cin] = w2.shape;
        for (let o = 0; o < cout; o++) {
          for (let c = 0; c < cin; c++) pw2w[o * cin + c] *= gamma[o];
          pw2b[o] *= gamma[o];
        }
      }
      this.fuser.push({
        dwWeight: get(`${p}dwconv.weight`),
        dwBias: get(`${p}dwconv.bias`),
        normWeight: get(`${p}norm.weight`),
        normBias: get(`${p}norm.bias`),
        pw1Weight: get(`${p}pwconv1.weight`),
        pw1Bias: get(`${p}pwconv1.bias`),
        pw2Weight: upload(pw2w, w2.shape, `${p}pwconv2.weight*gamma`),
        pw2Bias: upload(pw2b, b2.shape, `${p}pwconv2.bias*gamma`),
      });
    }
    this.outProj = sd.has(`${me}out_proj.weight`) ? conv1x1("out_proj") : null;
  }

  /**
   * pixFeat: [s, s, inDim] token-major (the frame's top-level backbone features, without
   * no_mem_embed); mask: [S, S] (or [S, S, 1]) prepared by sigmoidAffine, S = 16 s.
   * Records the work into the context; the caller owns `features`.
   */
  encode(
    pixFeat: Tensor,
    mask: Tensor,
    opts: { onStage?: (name: string, t: Tensor) => void } = {},
  ): MemoryEncoderOutput {
    // Staged tensors are handed over to onStage's caller (who destroys them), not freed here.
    const staged = new Set<Tensor>();
    const stage = (name: string, t: Tensor) => {
      if (opts.onStage) (staged.add(t), opts.onStage(name, t));
    };
    const a = this.arch.memoryEncoder;
    const pf = pixFeat.shape.length === 4 && pixFeat.shape[0] === 1
      ? pixFeat.shape.slice(1)
      : pixFeat.shape;
    if (pf.length !== 3 || pf[0] !== pf[1] || pf[2] !== a.inDim) {
      throw new Error(`MemoryEncoder: pixFeat must be [s, s, ${a.inDim}], got [${pixFeat.shape}]`);
    }
    const s = pf[0];
    const S = s * a.downsampleStride ** a.downsampleLayers;
    if (mask.size !== S * S) {
      throw new Error(
        `MemoryEncoder: mask must be [${S}, ${S}] for ${s}x${s} features, got [${mask.shape}]`,
      );
    }
    const temps: Tensor[] = [];
    const temp = (t: Tensor) => (temps.push(t), t);
    // MaskDownSampler, channels last: [S, S, 1] -> ... -> [s, s, 4^L] -> 1x1 -> [s, s, inDim].
    let m = mask.reshape([S, S, 1]);
    for (const l of this.down) {
      m = temp(conv2d(this.ctx, m, "hwc", l.w, l.b, {
        stride: a.downsampleStride,
        padding: a.downsamplePadding,
        temps,
      }));
      m = temp(layerNorm(this.ctx, m, l.lnW, l.lnB, LN2D_EPS)); // LayerNorm2d = LN over channels
      m = temp(activation(this.ctx, m, "gelu"));
    }
    m = temp(linear(this.ctx, m, this.downOut.w, this.downOut.b)); // [s, s, inDim]
    stage("mask_downsampler", m);
    // x = pix_feat_proj(pix_feat) + masks
    let x = linear(
      this.ctx,
      pixFeat.reshape([s, s, a.inDim]),
      this.pixFeatProj.w,
      this.pixFeatProj.b,
      {
        residual: m,
      },
    );
    stage("fuser_input", x);
    for (const b of this.fuser) {
      temps.push(x);
      const pad = (a.fuserKernel - 1) / 2;
      const dw = temp(
        depthwiseConv2d(this.ctx, x, b.dwWeight, b.dwBias, { stride: 1, padding: pad }),
      );
      const n = temp(layerNorm(this.ctx, dw, b.normWeight, b.normBias, LN2D_EPS));
      const h = temp(linear(this.ctx, n, b.pw1Weight, b.pw1Bias, { activation: "gelu" }));
      x = linear(this.ctx, h, b.pw2Weight, b.pw2Bias, { residual: x }); // [s, s, inDim]
    }
    if (this.outProj) {
      temps.push(x);
      x = linear(this.ctx, x, this.outProj.w, this.outProj.b); // [s, s, outDim]
    }
    this.ctx.submit();
    for (const t of temps) if (!staged.has(t)) t.destroy();
    return { features: x.reshape([s, s, a.outDim]), posEnc: this.posEnc(s) };
  }

  /** PositionEmbeddingSine(outDim) of the s x s grid as [s * s, outDim] tokens, cached. */
  posEnc(s: number): Float32Array {
    let pe = this.posCache.get(s);
    if (!pe) {
      const C = this.arch.memoryEncoder.outDim;
      const chw = positionEmbeddingSine(C, s, s);
      pe = new Float32Array(chw.length);
      for (let c = 0; c < C; c++) {
        for (let p = 0; p < s * s; p++) pe[p * C + c] = chw[c * s * s + p];
      }
      this.posCache.set(s, pe);
    }
    return pe;
  }

  dispose(): void {
    this.ctx.submit();
    for (const t of this.weights) t.destroy();
    this.weights.length = 0;
  }
}
