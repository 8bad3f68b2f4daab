/**
 * SAM 2.1 video tracking, per object as the official SAM2VideoPredictor
 * (`sam2_video_predictor.py`, `modeling/sam2_base.py`). Frames are added one at a time
 * (`addFrame`), so a stream needs no whole video up front.
 *
 * Implemented so far: prompts on a frame the object has not been tracked on (an initial
 * conditioning frame): the frame's features with no_mem_embed added (directly_add_no_mem_embed,
 * no memory read), the SAM heads with the clicks / box (multimask for at most one point, the
 * best IoU kept; single mask with the decoder's stability fallback), masks set to NO_OBJ_SCORE
 * where the object score is <= 0, fill_holes_in_mask_scores on the low-res logits, then one
 * bilinear resize to the frame's size. A repeated prompt on the same conditioning frame feeds
 * the previous low-res logits (clamped to +-32) as the mask input, as the official does.
 * Not yet wired here: propagation (memory attention over planMemory's memories, encodeNewMemory,
 * ObjectPointerHead; the pointer needs the decoder's mask-token output), hence no tracked
 * frames yet; a prompt on a tracked frame (a correction) will be refused until that exists.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { resizeBilinear } from "../kernels/resize_bilinear.ts";
import type { RgbImage } from "../types.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2Arch } from "./arch.ts";
import { disposeSam2Features, Sam2ImageEncoder } from "./image_encoder.ts";
import { LOW_RES_CLAMP, Sam2Decoder, type Sam2Features } from "./mask_decoder.ts";
import { fillHolesInMaskScores } from "./video_postprocess.ts";
import { videoFrameTensor } from "./video_frames.ts";

/** sam2_base NO_OBJ_SCORE: the logit of every pixel of an object judged absent. */
export const NO_OBJ_SCORE = -1024;
/** build_sam2_video_predictor's fill_hole_area. */
export const DEFAULT_FILL_HOLE_AREA = 8;

export interface VideoPrompt {
  frameIdx: number;
  objId: number;
  /** Clicks in the frame's pixels, [x, y] each, with `labels` (1 foreground, 0 background). */
  points?: ReadonlyArray<readonly [number, number]>;
  labels?: readonly number[];
  /** [x0, y0, x1, y1] in the frame's pixels. */
  box?: readonly [number, number, number, number];
}

export interface VideoFrameResult {
  frameIdx: number;
  /** Every object so far, in the order they were first prompted. */
  objIds: number[];
  /** Per object, mask logits at the frame's size (height x width, > 0 is the mask). */
  maskLogits: Float32Array[];
  /** Per object, the object-score logit (NaN: the object has no output on this frame). */
  objScores: number[];
}

/** One object's output on one frame (the official's compact_current_out, so far). */
interface FrameOutput {
  /** Low-res mask logits (4s x 4s) after gating and hole filling, unclamped. */
  lowRes: Float32Array;
  objScore: number;
}

interface ObjectState {
  id: number;
  /** Outputs of conditioning frames (frames with prompts). */
  cond: Map<number, FrameOutput>;
  /** Frames tracked by propagation (none until propagation exists). */
  tracked: Set<number>;
}

export interface SamVideoPredictorOptions {
  /** Holes of at most this many low-res pixels are filled (default 8, as the official builder). */
  fillHoleArea?: number;
}

export class SamVideoPredictor {
  private readonly frames: RgbImage[] = [];
  private readonly features = new Map<number, Sam2Features>();
  private readonly objects: ObjectState[] = [];
  private size: [number, number] | null = null;
  readonly fillHoleArea: number;

  private constructor(
    private readonly ctx: GpuContext,
    readonly arch: Sam2Arch,
    private readonly encoder: Sam2ImageEncoder,
    private readonly decoder: Sam2Decoder,
    opts: SamVideoPredictorOptions,
  ) {
    this.fillHoleArea = opts.fillHoleArea ?? DEFAULT_FILL_HOLE_AREA;
  }

  /** A predictor over a SAM 2 state dict (as loadSam2 returns it). */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: Sam2Arch,
    opts: SamVideoPredictorOptions = {},
  ): SamVideoPredictor {
    const encoder = Sam2ImageEncoder.fromStateDict(ctx, sd, arch);
    let decoder: Sam2Decoder;
    try {
      decoder = Sam2Decoder.create(ctx, sd, arch);
    } catch (err) {
      encoder.dispose();
      throw err;
    }
    return new SamVideoPredictor(ctx, arch, encoder, decoder, opts);
  }

  get numFrames(): number {
    return this.frames.length;
  }

  /** Appends a frame (all frames must have the first one's size); returns its index. */
  addFrame(image: RgbImage): number {
    if (this.size && (image.height !== this.size[0] || image.width !== this.size[1])) {
      throw new Error(
        `addFrame: frame is ${image.width}x${image.height}, the video is ${this.size[1]}x${
          this.size[0]
        }`,
      );
    }
    this.size ??= [image.height, image.width];
    this.frames.push(image);
    return this.frames.length - 1;
  }

  /**
   * The frame's features (image_embed with no_mem_embed, high-res features). Only the last
   * encoded frame's are kept, as the official `cached_features`: GPU memory stays at one
   * frame's features however long the video.
   */
  private frameFeatures(frameIdx: number): Sam2Features {
    let f = this.features.get(frameIdx);
    if (!f) {
      for (const old of this.features.values()) {
        this.decoder.releaseEmbedding(old.imageEmbed); // its cached image side goes too
        disposeSam2Features(old);
      }
      this.features.clear();
      f = this.encoder.encode(videoFrameTensor(this.frames[frameIdx], this.arch.imgSize));
      this.features.set(frameIdx, f);
    }
    return f;
  }

  private objectFor(objId: number): ObjectState {
    let o = this.objects.find((x) => x.id === objId);
    if (!o) {
      o = { id: objId, cond: new Map(), tracked: new Set() };
      this.objects.push(o);
    }
    return o;
  }

  /**
   * Clicks and / or a box for one object on one frame (replacing that object's earlier
   * prompts there); resolves to every object's mask on that frame.
   */
  async addNewPointsOrBox(p: VideoPrompt): Promise<VideoFrameResult> {
    const { frameIdx, objId } = p;
    if (!Number.isInteger(frameIdx) || frameIdx < 0 || frameIdx >= this.frames.length) {
      throw new Error(
        `addNewPointsOrBox: frameIdx ${frameIdx} is not a frame (0..${this.frames.length - 1})`,
      );
    }
    if (!Number.isInteger(objId)) {
      throw new Error(`addNewPointsOrBox: objId ${objId} is not an integer`);
    }
    const points = p.points ?? [];
    if ((p.points === undefined) !== (p.labels === undefined)) {
      throw new Error("addNewPointsOrBox: points and labels must be given together");
    }
    if (points.length !== (p.labels?.length ?? 0)) {
      throw new Error(`addNewPointsOrBox: ${points.length} points but ${p.labels?.length} labels`);
    }
    if (points.length === 0 && !p.box) {
      throw new Error("addNewPointsOrBox: give at least one point or a box");
    }
    const obj = this.objectFor(objId);
    if (obj.tracked.has(frameIdx)) {
      throw new Error(
        "addNewPointsOrBox: corrections on a tracked frame need the memory path, not implemented yet",
      );
    }
    const prev = obj.cond.get(frameIdx);
    const out = await this.runSamHeads(frameIdx, {
      points,
      labels: p.labels ?? [],
      box: p.box,
      prevLowRes: prev?.lowRes,
    });
    obj.cond.set(frameIdx, out);
    return await this.frameResult(frameIdx);
  }

  /** track_step on an initial conditioning frame: no memory, the SAM heads on the prompts. */
  private async runSamHeads(
    frameIdx: number,
    q: {
      points: ReadonlyArray<readonly [number, number]>;
      labels: readonly number[];
      box?: readonly [number, number, number, number];
      prevLowRes?: Float32Array;
    },
  ): Promise<FrameOutput> {
    const features = this.frameFeatures(frameIdx);
    // _use_multimask: 0 to 1 points (box corners count as points), tracking or not.
    const numPts = q.points.length + (q.box ? 2 : 0);
    const multimask = numPts <= 1;
    const count = multimask ? 3 : 1;
    const l = this.decoder.lowResSize;
    const maskInput = q.prevLowRes?.map((v) =>
      Math.min(Math.max(v, -LOW_RES_CLAMP), LOW_RES_CLAMP)
    );
    const lowResOut = emptyTensor(this.ctx, [1, count, l, l], "video.low_res");
    try {
      const [r] = await this.decoder.predict(features, [{
        points: q.points,
        labels: q.labels,
        box: q.box,
        multimask,
        maskInput,
      }], { originalSize: this.size!, output: "none", lowResOut });
      const planes = await lowResOut.read();
      // The best IoU of the multimask outputs (torch.argmax: the first of equal maxima).
      let best = 0;
      for (let k = 1; k < count; k++) if (r.iou[k] > r.iou[best]) best = k;
      const lowRes = planes.slice(best * l * l, (best + 1) * l * l);
      if (!(r.objScore > 0)) lowRes.fill(NO_OBJ_SCORE);
      if (this.fillHoleArea > 0) fillHolesInMaskScores(lowRes, l, l, this.fillHoleArea);
      return { lowRes, objScore: r.objScore };
    } finally {
      lowResOut.destroy();
    }
  }

  /** _consolidate_temp_output_across_obj at video resolution + _get_orig_video_res_output. */
  private async frameResult(frameIdx: number): Promise<VideoFrameResult> {
    const [H, W] = this.size!;
    const l = this.decoder.lowResSize;
    const outs = this.objects.map((o) => o.cond.get(frameIdx));
    const present = outs.filter((o): o is FrameOutput => !!o);
    let resized: Float32Array = new Float32Array(0);
    if (present.length > 0) {
      const low = new Float32Array(present.length * l * l);
      present.forEach((o, i) => low.set(o.lowRes, i * l * l));
      const lowT = tensorFrom(this.ctx, low, [present.length, l, l], "video.low_res");
      const up: Tensor = resizeBilinear(this.ctx, lowT, H, W);
      resized = await up.read();
      lowT.destroy();
      up.destroy();
    }
    let j = 0;
    const maskLogits = outs.map((o) =>
      o ? resized.slice(j * H * W, ++j * H * W) : new Float32Array(H * W).fill(NO_OBJ_SCORE)
    );
    return {
      frameIdx,
      objIds: this.objects.map((o) => o.id),
      maskLogits,
      objScores: outs.map((o) => (o ? o.objScore : NaN)),
    };
  }

  /** Forgets every object and prompt (frames and their features stay). */
  reset(): void {
    this.objects.length = 0;
  }

  dispose(): void {
    for (const f of this.features.values()) disposeSam2Features(f);
    this.features.clear();
    this.encoder.dispose();
    this.decoder.dispose();
  }
}
