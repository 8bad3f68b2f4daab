/**
 * SAM 2's image encoder (the official `modeling/backbones/image_encoder.py`: Hiera trunk + FPN
 * neck) and what SAM2ImagePredictor.set_image keeps of it, on our kernels:
 *
 *   trunk (hieradet.ts): four stage outputs, [S/4 .. S/32]^2 grids of E .. 8E channels
 *   FpnNeck, from the deepest level up: lateral_i = 1x1 conv_i(stage_i); levels in
 *     fpn_top_down_levels ([2, 3]) add the previous level upsampled 2x (nearest); the others
 *     are their lateral alone. Scalp 1 drops level 3 (it only feeds level 2).
 *   the predictor's features:
 *     image_embed = level 2 + no_mem_embed                         (1, C, S/16, S/16)
 *     high_res_feats_0 = sam_mask_decoder.conv_s0(level 0)         (1, C/8, S/4, S/4)
 *     high_res_feats_1 = sam_mask_decoder.conv_s1(level 1)         (1, C/4, S/8, S/8)
 *
 * Activations are token-major [H, W, C]; the three outputs are NCHW like the official tensors
 * (a transpose each). The neck's sine position encodings depend only on the grid size and are
 * not used by the image predictor: `visionPosEnc` computes one on the CPU when asked.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { add } from "../kernels/add.ts";
import { linear } from "../kernels/linear.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import { upsampleNearest2x } from "../kernels/upsample_nearest.ts";
import type { RgbImage } from "../types.ts";
import { tensorF32 } from "../weights/load.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2Arch } from "./arch.ts";
import { BufferSet } from "./buffers.ts";
import { HieraTrunk } from "./hieradet.ts";
import { positionEmbeddingSine } from "./position_encoding.ts";
import { sam2Transform } from "./transforms.ts";

/** What the SAM 2 image predictor keeps of an image: NCHW tensors owned by the caller. */
export interface Sam2Features {
  /** (1, C, S/16, S/16): FPN level 2 + no_mem_embed. */
  imageEmbed: Tensor;
  /** (1, C/8, S/4, S/4): conv_s0 of FPN level 0. */
  highRes0: Tensor;
  /** (1, C/4, S/8, S/8): conv_s1 of FPN level 1. */
  highRes1: Tensor;
}

/** Frees the three tensors. */
export function disposeSam2Features(f: Sam2Features): void {
  f.imageEmbed.destroy();
  f.highRes0.destroy();
  f.highRes1.destroy();
}

/** Bytes of one image's features. */
export function sam2FeatureBytes(arch: Sam2Arch): number {
  const S = arch.imgSize, C = arch.dModel;
  return 4 * (C * (S / 16) ** 2 + (C / 8) * (S / 4) ** 2 + (C / 4) * (S / 8) ** 2);
}

/** Stage names reported to `onStage`, matching the fixture files. */
export type Sam2EncoderStage =
  | `act_trunk_stage${number}`
  | `backbone_fpn_${number}`
  | "image_embed"
  | "high_res_feats_0"
  | "high_res_feats_1";

export interface Sam2EncodeOptions {
  /**
   * Called right after each stage is recorded with its output: act_trunk_stage{k} and
   * backbone_fpn_{k} token-major [H, W, C] (the goldens are NCHW), the three features NCHW.
   * Buffers are reused by later stages: record a copy to keep one.
   */
  onStage?: (stage: Sam2EncoderStage, t: Tensor) => void;
}

export type NeckBuffer =
  | "stage0"
  | "stage1"
  | "stage2"
  | "stage3"
  | "lat"
  | "fpn0"
  | "fpn1"
  | "fpn2"
  | "prev"
  | "out";

/**
 * Elements of the neck's buffers: the four kept stage outputs, the FPN levels, and one for the
 * features before their NCHW transpose.
 */
export function neckBufferSizes(arch: Sam2Arch): Record<NeckBuffer, number> {
  const S = arch.imgSize, C = arch.dModel;
  const sides = [S / 4, S / 8, S / 16, S / 32];
  const ch = arch.trunk.stageDims;
  return {
    stage0: sides[0] ** 2 * ch[0],
    stage1: sides[1] ** 2 * ch[1],
    stage2: sides[2] ** 2 * ch[2],
    stage3: sides[3] ** 2 * ch[3],
    lat: sides[2] ** 2 * C,
    fpn0: sides[0] ** 2 * C,
    fpn1: sides[1] ** 2 * C,
    fpn2: sides[2] ** 2 * C,
    prev: sides[3] ** 2 * C,
    // image_embed + no_mem_embed, or a conv_s output, before the NCHW transpose.
    out: Math.max(
      sides[2] ** 2 * C,
      sides[0] ** 2 * (C / 8),
      sides[1] ** 2 * (C / 4),
    ),
  };
}

export interface Sam2EncoderOptions {
  /**
   * The storage binding limit the activations are planned for (default: the device's); a
   * smaller one slices the largest MLP hidden layers (tests use it to exercise that path).
   */
  maxBindingBytes?: number;
}

/** The SAM 2 image encoder of one model: weights on the GPU and its activation buffers. */
export class Sam2ImageEncoder {
  readonly trunk: HieraTrunk;
  private readonly neck: BufferSet<NeckBuffer>;
  private readonly weights: Tensor[] = [];
  /** neck.convs.{i}: i = 0 is the deepest level. [Cout, Cin] 1x1 weights and biases. */
  private readonly convs: [Tensor, Tensor][] = [];
  private readonly convS0: [Tensor, Tensor];
  private readonly convS1: [Tensor, Tensor];
  private readonly noMemEmbed: Tensor;
  /** Grid side of each trunk level (S/4 .. S/32). */
  private readonly sides: number[];
  private readonly posEncCache = new Map<number, Float32Array>();
  private disposed = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly arch: Sam2Arch,
    sd: StateDict,
    opts: Sam2EncoderOptions,
  ) {
    const levels = arch.trunk.stages.length;
    if (levels !== 4 || arch.neck.scalp !== 1) {
      throw new Error(
        `Sam2ImageEncoder: ${levels} levels with scalp ${arch.neck.scalp}; expected 4 and 1`,
      );
    }
    const top = arch.neck.fpnTopDownLevels;
    if (top.some((l) => l < 2 || l > 3)) {
      // Levels 0 and 1 take their lateral features alone in every official config.
      throw new Error(
        `Sam2ImageEncoder: top-down levels [${top}] other than 2, 3 are not supported`,
      );
    }
    const C = arch.dModel;
    if (C % 8 !== 0) throw new Error(`Sam2ImageEncoder: d_model ${C} is not a multiple of 8`);
    this.trunk = new HieraTrunk(ctx, arch, sd, opts.maxBindingBytes);
    const get = (name: string, shape?: number[]): Tensor => {
      const host = sd.get(name);
      if (!host) throw new Error(`Sam2ImageEncoder: checkpoint has no tensor '${name}'`);
      const t = tensorFrom(ctx, tensorF32(host), shape ?? host.shape, name);
      this.weights.push(t);
      return t;
    };
    // 1x1 convs as linears: [Cout, Cin, 1, 1] -> [Cout, Cin].
    const conv = (name: string): [Tensor, Tensor] => {
      const w = sd.get(`${name}.weight`);
      if (!w) throw new Error(`Sam2ImageEncoder: checkpoint has no tensor '${name}.weight'`);
      return [get(`${name}.weight`, [w.shape[0], w.shape[1]]), get(`${name}.bias`)];
    };
    for (let i = 0; i < levels; i++) this.convs.push(conv(`image_encoder.neck.convs.${i}.conv`));
    this.convS0 = conv("sam_mask_decoder.conv_s0");
    this.convS1 = conv("sam_mask_decoder.conv_s1");
    this.noMemEmbed = get("no_mem_embed", [C]);
    const S = arch.imgSize;
    this.sides = [S / 4, S / 8, S / 16, S / 32];
    this.neck = new BufferSet(ctx, "sam2_neck", neckBufferSizes(arch));
  }

  /** Uploads the encoder's weights of a SAM 2 state dict (as loadSam2 returns it). */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: Sam2Arch,
    opts: Sam2EncoderOptions = {},
  ): Sam2ImageEncoder {
    return new Sam2ImageEncoder(ctx, arch, sd, opts);
  }

  /** Bytes of the activation buffers (trunk and neck) one pass uses. */
  get activationBytes(): number {
    return this.trunk.buffers.bytes + this.neck.bytes;
  }

  /** Frees the weights and activation buffers; the encoder cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.ctx.submit();
    for (const t of this.weights) t.destroy();
    this.trunk.dispose();
    this.neck.release();
  }

  /** Frees only the activation buffers (reallocated by the next encode). */
  releaseBuffers(): void {
    this.trunk.buffers.release();
    this.neck.release();
  }

  /**
   * The neck's PositionEmbeddingSine of `level` (0..2 after scalp), (C, side, side), computed
   * on the CPU once per level (vision_pos_enc; the memory attention reads level 2).
   */
  visionPosEnc(level: number): Float32Array {
    const side = this.sides[level];
    if (side === undefined || level > 2) throw new Error(`visionPosEnc: no level ${level}`);
    let pe = this.posEncCache.get(level);
    if (!pe) {
      pe = positionEmbeddingSine(this.arch.dModel, side, side);
      this.posEncCache.set(level, pe);
    }
    return pe;
  }

  /**
   * Records the encoder on the (3, S, S) tensor sam2Transform makes ((1, 3, S, S) accepted).
   * Returns three new tensors owned by the caller (disposeSam2Features).
   */
  encode(input: Tensor | Float32Array, opts: Sam2EncodeOptions = {}): Sam2Features {
    if (this.disposed) throw new Error("Sam2ImageEncoder: used after dispose()");
    const ctx = this.ctx, S = this.arch.imgSize, C = this.arch.dModel;
    const hook = opts.onStage ?? (() => {});
    let image: Tensor;
    if (input instanceof Float32Array) {
      if (input.length !== 3 * S * S) {
        throw new Error(`encode: input has ${input.length} values, need 3 x ${S} x ${S}`);
      }
      image = this.trunk.inputView();
      // Queue writes run before the next submit: flush earlier work that may read this buffer.
      ctx.submit();
      ctx.device.queue.writeBuffer(image.buffer, 0, input as Float32Array<ArrayBuffer>);
    } else {
      if (input.size !== 3 * S * S) {
        throw new Error(`encode: input [${input.shape}] must be (3, ${S}, ${S})`);
      }
      image = input.reshape([3, S, S]);
    }
    const n = this.neck;
    const stages: Tensor[] = [];
    this.trunk.forward(image, (k, x) => {
      // Keep each stage's output for the neck (the trunk reuses x's buffer).
      const kept = n.view(`stage${k}` as NeckBuffer, x.shape);
      ctx.copy(x.buffer, 0, kept.buffer, 0, x.size * 4);
      stages.push(kept);
      hook(`act_trunk_stage${k}`, kept);
    });

    // FPN, deepest level first: convs[3 - i] reads stage i.
    const [s0, s1, s2, s3] = this.sides;
    const lateral = (i: number, out: Tensor) =>
      linear(ctx, stages[i], ...this.convs[3 - i], { out }).reshape(out.shape);
    const top = this.arch.neck.fpnTopDownLevels;
    const prev = lateral(3, n.view("prev", [s3, s3, C]));
    const fpn2 = top.includes(2)
      ? upsampleNearest2x(ctx, prev, {
        addend: lateral(2, n.view("lat", [s2, s2, C])),
        out: n.view("fpn2", [s2, s2, C]),
      })
      : lateral(2, n.view("fpn2", [s2, s2, C]));
    const fpn1 = lateral(1, n.view("fpn1", [s1, s1, C]));
    const fpn0 = lateral(0, n.view("fpn0", [s0, s0, C]));
    hook("backbone_fpn_0", fpn0);
    hook("backbone_fpn_1", fpn1);
    hook("backbone_fpn_2", fpn2);

    // [side, side, c] tokens -> (1, c, side, side) NCHW into a new tensor.
    const toNchw = (x: Tensor, side: number, c: number, label: string) => {
      const out = emptyTensor(ctx, [1, c, side, side], label);
      stridedCopy(ctx, x, { offset: 0, shape: [c, side * side], strides: [1, c] }, out);
      return out;
    };
    const embedded = add(ctx, fpn2, this.noMemEmbed, n.view("out", [s2, s2, C]));
    const imageEmbed = toNchw(embedded, s2, C, "image_embed");
    hook("image_embed", imageEmbed);
    const hr1 = linear(ctx, fpn1, ...this.convS1, { out: n.view("out", [s1, s1, C / 4]) });
    const highRes1 = toNchw(hr1, s1, C / 4, "high_res_feats_1");
    hook("high_res_feats_1", highRes1);
    const hr0 = linear(ctx, fpn0, ...this.convS0, { out: n.view("out", [s0, s0, C / 8]) });
    const highRes0 = toNchw(hr0, s0, C / 8, "high_res_feats_0");
    hook("high_res_feats_0", highRes0);
    return { imageEmbed, highRes0, highRes1 };
  }
}

/** The result of encodeImageSam2: the features and the original size the decoder needs. */
export interface Sam2EncodedImage {
  features: Sam2Features;
  /** [height, width] of the original image. */
  originalSize: [number, number];
}

/**
 * SAM2ImagePredictor.set_image: SAM2Transforms on the pixels (RGB or RGBA, alpha ignored) and
 * the encoder pass, recorded (same GpuContext as the decoder).
 */
export function encodeImageSam2(
  encoder: Sam2ImageEncoder,
  image: RgbImage,
  opts: Sam2EncodeOptions = {},
): Sam2EncodedImage {
  const tensor = sam2Transform(image, encoder.arch.imgSize);
  const features = encoder.encode(tensor, opts);
  return { features, originalSize: [image.height, image.width] };
}
