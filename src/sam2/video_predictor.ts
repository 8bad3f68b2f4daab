/**
 * SAM 2.1 video tracking, per object as the official SAM2VideoPredictor
 * (`sam2_video_predictor.py`, `modeling/sam2_base.py`). Frames are added one at a time
 * (`addFrame`), also while a propagation runs, so a live stream needs no whole video up front.
 *
 * Per object and frame (track_step):
 * - a prompt on a frame the object was never tracked on makes an initial conditioning frame:
 *   the frame's features + no_mem_embed, no memory read;
 * - every other frame (propagation, or a correction on a tracked frame) reads memory: the
 *   memory attention over the conditioning frames' and the last num_maskmem - 1 tracked
 *   frames' spatial memories and up to 16 object pointers (memory_bank.ts), its output
 *   replacing the image embedding for the SAM heads;
 * - the SAM heads: multimask (best IoU kept) for 0 or 1 clicks (tracking sends none), else one
 *   mask with the stability fallback; masks set to NO_OBJ_SCORE where the object score is
 *   <= 0; the object pointer from the SAM output token (no_obj_ptr when absent);
 * - propagation encodes each tracked frame's memory from the gated mask (sigmoid); prompted
 *   frames are encoded when the next propagation starts (binarized), from the hole-filled mask;
 * - fill_hole_area (8) on the low-res logits, then one bilinear resize to the frame's size.
 *
 * Conditioning frames stay conditioning (add_all_frames_to_correct_as_cond = False); a
 * correction on a tracked frame is a non-conditioning output that replaces the tracked one.
 * The official's num_frames (it caps the object pointers read and scales their temporal
 * encoding, up to 16 frames) is the number of frames added so far: to replay an offline video
 * exactly, add all its frames first, as the official loads them.
 *
 * Memory is bounded: only the last frame's image features stay on the GPU; per object the
 * conditioning outputs, and the tracked outputs within `historyFrames` (at least the 15 frames
 * the model reads back) of the last tracked frame, stay in CPU memory (memories as bfloat16, as
 * the official); frame pixels are dropped outside that window and that of the newest frame.
 */
import type { GpuContext } from "../gpu/context.ts";
import { emptyTensor, type Tensor, tensorFrom } from "../gpu/tensor.ts";
import { resizeBilinear } from "../kernels/resize_bilinear.ts";
import { stridedCopy } from "../kernels/strided_copy.ts";
import type { RgbImage } from "../types.ts";
import type { StateDict } from "../weights/types.ts";
import type { Sam2Arch } from "./arch.ts";
import { disposeSam2Features, Sam2ImageEncoder } from "./image_encoder.ts";
import { LOW_RES_CLAMP, Sam2Decoder, type Sam2Features } from "./mask_decoder.ts";
import { assembleMemory, planMemory } from "./memory_bank.ts";
import { fillHolesInMaskScores } from "./video_postprocess.ts";
import { videoFrameTensor } from "./video_frames.ts";
import { encodeNewMemory, type FrameMemory, fromBf16 } from "./video_memory.ts";
import {
  createSam2VideoModules,
  hasSam2VideoWeights,
  MAX_OBJ_PTRS_IN_ENCODER,
  type Sam2VideoModules,
} from "./video_model.ts";

/** sam2_base NO_OBJ_SCORE: the logit of every pixel of an object judged absent. */
export const NO_OBJ_SCORE = -1024;
/** build_sam2_video_predictor's fill_hole_area. */
export const DEFAULT_FILL_HOLE_AREA = 8;
/** Frames kept behind the newest / last tracked frame by default. */
export const DEFAULT_HISTORY_FRAMES = 16;

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
  /** Every object, in the order they were first prompted. */
  objIds: number[];
  /** Per object, mask logits at the frame's size (height x width, > 0 is the mask). */
  maskLogits: Float32Array[];
  /** Per object, the object-score logit (NaN: the object has no output on this frame). */
  objScores: number[];
}

export interface PropagateOptions {
  /** First frame (default: the earliest conditioning frame of any object). */
  startFrameIdx?: number;
  /** Track backwards in time (from startFrameIdx down to frame 0). */
  reverse?: boolean;
  /**
   * Frames after the start at most (max_frame_num_to_track; default: all, and forward
   * tracking also takes the frames added while it runs).
   */
  maxFrames?: number;
}

/** One object's output on one frame (the official's compact_current_out). */
interface FrameOutput {
  /** Low-res mask logits (4s x 4s) after gating and hole filling, unclamped. */
  lowRes: Float32Array;
  objScore: number;
  /** obj_ptr [C]. */
  ptr: Float32Array;
  /** maskmem_features; null until encoded (prompted outputs wait for the next propagation). */
  mem: FrameMemory | null;
}

interface ObjectState {
  id: number;
  /** output_dict: conditioning outputs in the order they were added (Python dict order). */
  cond: Map<number, FrameOutput>;
  nonCond: Map<number, FrameOutput>;
  /** temp_output_dict: prompted outputs not yet consolidated by a propagation. */
  tempCond: Map<number, FrameOutput>;
  tempNonCond: Map<number, FrameOutput>;
  /** frames_tracked_per_obj: frame -> tracked in reverse. */
  tracked: Map<number, boolean>;
}

export interface SamVideoPredictorOptions {
  /** Holes of at most this many low-res pixels are filled (default 8, as the official builder). */
  fillHoleArea?: number;
  /**
   * Frames kept behind the newest and the last tracked frame (pixels and tracked outputs) for
   * corrections and reverse tracking (default 16; at least the 15 the model reads back are
   * always kept). `Infinity` keeps every frame: an offline video that is tracked in any order.
   */
  historyFrames?: number;
}

/** What the predictor holds, for memory checks. */
export interface VideoMemoryUsage {
  /** Frames whose pixels are kept. */
  framesKept: number;
  pixelBytes: number;
  /** Per-object outputs kept (conditioning, tracked, pending) and their bytes. */
  outputsKept: number;
  outputBytes: number;
  /** GPU bytes of the cached frame features (one frame's). */
  featureGpuBytes: number;
}

interface CachedFrame {
  frameIdx: number;
  /** image_embed (with no_mem_embed) and the high-res features. */
  features: Sam2Features;
  /** [s, s, C] backbone level 2 without no_mem_embed (pix_feat). */
  pixFeat: Tensor;
}

function newObject(id: number): ObjectState {
  return {
    id,
    cond: new Map(),
    nonCond: new Map(),
    tempCond: new Map(),
    tempNonCond: new Map(),
    tracked: new Map(),
  };
}

export class SamVideoPredictor {
  private readonly frames: (RgbImage | null)[] = [];
  /** Indices of the frames whose pixels are kept (so dropping scans only those). */
  private readonly keptFrames = new Set<number>();
  private cached: CachedFrame | null = null;
  private readonly objects: ObjectState[] = [];
  private size: [number, number] | null = null;
  private currPos: Tensor | null = null;
  /** The last frame a propagation processed, and the forward tracking front. */
  private lastTracked = -1;
  private forwardFront = -1;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  readonly fillHoleArea: number;
  readonly historyFrames: number;
  private readonly m: Sam2VideoModules;
  private ownsModules = false;

  /**
   * A tracker over a loaded SAM 2.1 model (`await SamModel.load("sam2.1_hiera_tiny")`); it
   * shares the model's GPU weights (dispose the model after the predictor).
   */
  constructor(
    model: { family: string; name?: string; sam2Video?: Sam2VideoModules } | Sam2VideoModules,
    opts: SamVideoPredictorOptions = {},
  ) {
    if ("memoryAttention" in model) {
      this.m = model;
    } else {
      if (model.family !== "sam2") {
        throw new Error(
          `SamVideoPredictor needs a SAM 2.1 model; ${
            model.name ? `'${model.name}'` : "this model"
          } is family '${model.family}'`,
        );
      }
      if (!model.sam2Video) {
        throw new Error(
          "SamVideoPredictor: this SAM 2 checkpoint has no memory encoder / memory attention " +
            "weights (an image-only export?)",
        );
      }
      this.m = model.sam2Video;
    }
    const fill = opts.fillHoleArea ?? DEFAULT_FILL_HOLE_AREA;
    if (!(fill >= 0)) throw new Error(`SamVideoPredictor: fillHoleArea ${fill} must be >= 0`);
    this.fillHoleArea = fill;
    const hist = opts.historyFrames ?? DEFAULT_HISTORY_FRAMES;
    if (!(hist >= 0) || (Number.isFinite(hist) && !Number.isInteger(hist))) {
      throw new Error(
        `SamVideoPredictor: historyFrames ${hist} must be an integer >= 0 or Infinity`,
      );
    }
    this.historyFrames = hist;
  }

  /** A predictor over a SAM 2 state dict (as loadSam2 returns it) that owns its modules. */
  static fromStateDict(
    ctx: GpuContext,
    sd: StateDict,
    arch: Sam2Arch,
    opts: SamVideoPredictorOptions = {},
  ): SamVideoPredictor {
    if (!hasSam2VideoWeights(sd)) {
      throw new Error("SamVideoPredictor: the state dict has no SAM 2 memory weights");
    }
    const encoder = Sam2ImageEncoder.fromStateDict(ctx, sd, arch);
    let decoder: Sam2Decoder | undefined;
    try {
      decoder = Sam2Decoder.create(ctx, sd, arch);
      const m = createSam2VideoModules(ctx, sd, arch, encoder, decoder);
      const p = new SamVideoPredictor(m, opts);
      p.ownsModules = true;
      return p;
    } catch (err) {
      encoder.dispose();
      decoder?.dispose();
      throw err;
    }
  }

  get arch(): Sam2Arch {
    return this.m.arch;
  }

  private get ctx(): GpuContext {
    return this.m.ctx;
  }

  /** Frames added so far (the official's num_frames). */
  get numFrames(): number {
    return this.frames.length;
  }

  /** Object ids in the order they were first prompted. */
  get objIds(): number[] {
    return this.objects.map((o) => o.id);
  }

  /** Runs `fn` after every earlier call (GPU work and state changes never interleave). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.disposed) throw new Error("SamVideoPredictor: used after dispose()");
      return fn();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Appends a frame (all frames must have the first one's size); returns its index. */
  addFrame(image: RgbImage): number {
    if (this.disposed) throw new Error("SamVideoPredictor: used after dispose()");
    if (!image || !(image.width > 0) || !(image.height > 0) || !image.data) {
      throw new Error("addFrame: not an image (need width, height and RGB(A) data)");
    }
    if (this.size && (image.height !== this.size[0] || image.width !== this.size[1])) {
      throw new Error(
        `addFrame: frame is ${image.width}x${image.height}, the video is ${this.size[1]}x${
          this.size[0]
        }`,
      );
    }
    this.size ??= [image.height, image.width];
    this.frames.push(image);
    this.keptFrames.add(this.frames.length - 1);
    this.dropOldFrames();
    return this.frames.length - 1;
  }

  private checkFrame(frameIdx: number, where: string): void {
    if (!Number.isInteger(frameIdx) || frameIdx < 0 || frameIdx >= this.frames.length) {
      throw new Error(
        `${where}: frameIdx ${frameIdx} is not a frame (${
          this.frames.length === 0 ? "no frames added yet" : `0..${this.frames.length - 1}`
        })`,
      );
    }
  }

  /**
   * The frame's features: image_embed (+ no_mem_embed), high-res features and pix_feat. Only
   * the last encoded frame's are kept, as the official `cached_features`.
   */
  private frameFeatures(frameIdx: number): CachedFrame {
    if (this.cached?.frameIdx === frameIdx) return this.cached;
    const image = this.frames[frameIdx];
    if (!image) {
      throw new Error(
        `frame ${frameIdx} was dropped (more than historyFrames=${this.historyFrames} behind); ` +
          "create the predictor with a larger historyFrames (Infinity: keep every frame)",
      );
    }
    this.releaseCached();
    const ctx = this.ctx, C = this.arch.dModel;
    let pixFeat: Tensor | null = null;
    const features = this.m.encoder.encode(videoFrameTensor(image, this.arch.imgSize), {
      onStage: (stage, t) => {
        if (stage !== "backbone_fpn_2") return;
        // The neck reuses this buffer: copy it now (recorded in order).
        pixFeat = emptyTensor(ctx, t.shape, "video.pix_feat");
        ctx.copy(t.buffer, 0, pixFeat.buffer, 0, t.size * 4);
      },
    });
    if (!pixFeat) throw new Error("SamVideoPredictor: the encoder reported no backbone_fpn_2");
    const pf = pixFeat as Tensor;
    if (!this.currPos) {
      // vision_pos_enc of the top level, (C, s, s) -> [s * s, C].
      const pe = this.m.encoder.visionPosEnc(2);
      const n = pe.length / C, tok = new Float32Array(pe.length);
      for (let c = 0; c < C; c++) for (let p = 0; p < n; p++) tok[p * C + c] = pe[c * n + p];
      this.currPos = tensorFrom(ctx, tok, [n, C], "video.curr_pos");
    }
    this.cached = { frameIdx, features, pixFeat: pf };
    return this.cached;
  }

  private releaseCached(): void {
    const old = this.cached;
    if (!old) return;
    this.cached = null;
    this.ctx.submit();
    this.m.decoder.releaseEmbedding(old.features.imageEmbed);
    disposeSam2Features(old.features);
    old.pixFeat.destroy();
  }

  /**
   * Clicks and / or a box for one object on one frame (replacing that object's earlier
   * prompts there); resolves to every object's mask on that frame. On a frame the object was
   * tracked on, this is a correction read against its memory. Bad input rejects.
   */
  async addNewPointsOrBox(p: VideoPrompt): Promise<VideoFrameResult> {
    if (!p || typeof p !== "object") {
      throw new Error("addNewPointsOrBox: expected {frameIdx, objId, ...}");
    }
    const { frameIdx, objId } = p;
    this.checkFrame(frameIdx, "addNewPointsOrBox");
    if (!Number.isInteger(objId)) {
      throw new Error(`addNewPointsOrBox: objId ${objId} is not an integer`);
    }
    if ((p.points === undefined) !== (p.labels === undefined)) {
      throw new Error("addNewPointsOrBox: points and labels must be given together");
    }
    const points = p.points ?? [];
    const labels = p.labels ?? [];
    if (!Array.isArray(points) || !Array.isArray(labels) || points.length !== labels.length) {
      throw new Error(
        `addNewPointsOrBox: ${points.length} points but ${labels.length} labels (one label per point)`,
      );
    }
    points.forEach((pt, i) => {
      if (
        !Array.isArray(pt) || pt.length !== 2 || !pt.every((v) => Number.isFinite(v))
      ) throw new Error(`addNewPointsOrBox: point ${i} is not a finite [x, y] pair`);
      if (labels[i] !== 0 && labels[i] !== 1) {
        throw new Error(`addNewPointsOrBox: label ${i} is ${labels[i]}; use 1 (object) or 0`);
      }
    });
    if (p.box !== undefined) {
      const b = p.box;
      if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => Number.isFinite(v))) {
        throw new Error("addNewPointsOrBox: box must be [x0, y0, x1, y1], finite numbers");
      }
    }
    if (points.length === 0 && !p.box) {
      throw new Error("addNewPointsOrBox: give at least one point or a box");
    }
    return await this.exclusive(async () => {
      // A new object joins only once its first prompt succeeded.
      const obj = this.objects.find((x) => x.id === objId) ?? newObject(objId);
      const isInitCond = !obj.tracked.has(frameIdx);
      const reverse = isInitCond ? false : obj.tracked.get(frameIdx)!;
      const temp = isInitCond ? obj.tempCond : obj.tempNonCond;
      const prev = temp.get(frameIdx) ?? obj.cond.get(frameIdx) ?? obj.nonCond.get(frameIdx);
      const out = await this.trackStep(obj, frameIdx, {
        isInitCond,
        reverse,
        points,
        labels,
        box: p.box,
        prevLowRes: prev?.lowRes,
        runMemEncoder: false,
      });
      temp.set(frameIdx, out);
      if (!this.objects.includes(obj)) this.objects.push(obj);
      return await this.frameResult(frameIdx, isInitCond);
    });
  }

  /**
   * sam2_base track_step for one object on one frame: memory-conditioned features (unless an
   * initial conditioning frame), the SAM heads, the object pointer and, when asked, the memory.
   */
  private async trackStep(
    obj: ObjectState,
    frameIdx: number,
    q: {
      isInitCond: boolean;
      reverse: boolean;
      points: ReadonlyArray<readonly [number, number]>;
      labels: readonly number[];
      box?: readonly [number, number, number, number];
      prevLowRes?: Float32Array;
      runMemEncoder: boolean;
    },
  ): Promise<FrameOutput> {
    const ctx = this.ctx, m = this.m, C = this.arch.dModel;
    const frame = this.frameFeatures(frameIdx);
    const temps: Tensor[] = [];
    try {
      let features = frame.features;
      if (!q.isInitCond) {
        const plan = planMemory(frameIdx, [...obj.cond.keys()], new Set(obj.nonCond.keys()), {
          numMaskmem: m.memArch.numMaskmem,
          maxObjPtrs: MAX_OBJ_PTRS_IN_ENCODER,
          numFrames: this.frames.length,
          reverse: q.reverse,
        });
        const outOf = (f: number) => {
          const o = obj.cond.get(f) ?? obj.nonCond.get(f);
          if (!o?.mem) throw new Error(`SamVideoPredictor: frame ${f} has no memory`);
          return o as FrameOutput & { mem: FrameMemory };
        };
        const mem = assembleMemory(
          plan,
          m.memoryWeights,
          (f) => fromBf16(outOf(f).mem.features),
          (f) => outOf(f).mem.posEnc,
          (f) => (obj.cond.get(f) ?? obj.nonCond.get(f))!.ptr,
        );
        const md = m.memoryWeights.memDim;
        const M = mem.memory.length / md;
        const memT = tensorFrom(ctx, mem.memory, [M, md], "video.memory");
        const posT = tensorFrom(ctx, mem.memoryPos, [M, md], "video.memory_pos");
        temps.push(memT, posT);
        const n = frame.pixFeat.size / C;
        const x = m.memoryAttention.forward(
          frame.pixFeat.reshape([n, C]),
          this.currPos!,
          memT,
          posT,
          mem.numObjPtrTokens,
        );
        temps.push(x);
        // [s * s, C] -> (1, C, s, s): the decoder takes NCHW features.
        const s = Math.round(Math.sqrt(n));
        const embed = emptyTensor(ctx, [1, C, s, s], "video.pix_feat_with_mem");
        stridedCopy(ctx, x, { offset: 0, shape: [C, n], strides: [1, C] }, embed);
        temps.push(embed);
        features = { ...frame.features, imageEmbed: embed };
      }
      // _use_multimask: 0 or 1 points (box corners count), first clicks and tracking alike.
      const numPts = q.points.length + (q.box ? 2 : 0);
      const multimask = numPts <= 1;
      const count = multimask ? 3 : 1;
      const l = m.decoder.lowResSize;
      const maskInput = q.prevLowRes?.map((v) =>
        Math.min(Math.max(v, -LOW_RES_CLAMP), LOW_RES_CLAMP)
      );
      const lowResOut = emptyTensor(ctx, [1, count, l, l], "video.low_res");
      temps.push(lowResOut);
      // No prompt (tracking): one padding point (label -1), as sam2_base pads, plus the
      // prompt encoder's own padding point.
      const prompt = numPts > 0
        ? { points: q.points, labels: q.labels, box: q.box }
        : { points: [[0, 0]] as [number, number][], labels: [-1] };
      const [r] = await m.decoder.predict(features, [{ ...prompt, multimask, maskInput }], {
        originalSize: this.size!,
        output: "none",
        lowResOut,
        samOutputToken: true,
        // Memory-conditioned features are new every call: nothing to keep from them.
        reuseImage: q.isInitCond,
      });
      const planes = await lowResOut.read();
      // The best IoU of the multimask outputs (torch.argmax: the first of equal maxima).
      let best = 0;
      for (let k = 1; k < count; k++) if (r.iou[k] > r.iou[best]) best = k;
      const lowRes = planes.slice(best * l * l, (best + 1) * l * l);
      if (!(r.objScore > 0)) lowRes.fill(NO_OBJ_SCORE);
      const ptr = m.pointerHead.pointer(r.samOutputToken!, r.objScore);
      let mem: FrameMemory | null = null;
      if (q.runMemEncoder) {
        // From the gated mask before hole filling; from clicks: binarized, else sigmoid.
        mem = await this.encodeMemory(frame, lowRes, r.objScore, numPts > 0);
      }
      if (this.fillHoleArea > 0) fillHolesInMaskScores(lowRes, l, l, this.fillHoleArea);
      return { lowRes, objScore: r.objScore, ptr, mem };
    } finally {
      ctx.submit();
      for (const t of temps) t.destroy();
    }
  }

  private encodeMemory(
    frame: CachedFrame,
    lowRes: Float32Array,
    objScore: number,
    fromPoints: boolean,
  ): Promise<FrameMemory> {
    const s = this.arch.imgSize / 16;
    return encodeNewMemory(
      this.ctx,
      this.m.memoryEncoder,
      this.m.noObjEmbedSpatial,
      this.arch.imgSize,
      {
        pixFeat: frame.pixFeat.reshape([s, s, this.arch.dModel]),
        lowRes,
        objScore,
        fromPoints,
      },
    );
  }

  /**
   * _consolidate_temp_output_across_obj at video resolution + _get_orig_video_res_output:
   * per object its pending output of the call's kind, else its stored one, else NO_OBJ_SCORE.
   */
  private async frameResult(frameIdx: number, isCond: boolean): Promise<VideoFrameResult> {
    const outs = this.objects.map((o) =>
      (isCond ? o.tempCond : o.tempNonCond).get(frameIdx) ?? o.cond.get(frameIdx) ??
        o.nonCond.get(frameIdx)
    );
    return await this.resultOf(frameIdx, outs);
  }

  private async resultOf(
    frameIdx: number,
    outs: (FrameOutput | undefined)[],
  ): Promise<VideoFrameResult> {
    const [H, W] = this.size!;
    const l = this.m.decoder.lowResSize;
    const present = outs.filter((o): o is FrameOutput => !!o);
    let resized: Float32Array = new Float32Array(0);
    if (present.length > 0) {
      const low = new Float32Array(present.length * l * l);
      present.forEach((o, i) => low.set(o.lowRes, i * l * l));
      const lowT = tensorFrom(this.ctx, low, [present.length, l, l], "video.low_res");
      const up: Tensor = resizeBilinear(this.ctx, lowT, H, W);
      try {
        resized = await up.read();
      } finally {
        lowT.destroy();
        up.destroy();
      }
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

  /**
   * propagate_in_video_preflight: prompted outputs get their memory (binarized masks) and join
   * the stored outputs; a conditioning frame's tracked output is dropped.
   */
  private async preflight(): Promise<void> {
    if (this.objects.length === 0) {
      throw new Error("propagateInVideo: no object has prompts yet; add points or a box first");
    }
    for (const o of this.objects) {
      for (const [temp, store] of [[o.tempNonCond, o.nonCond], [o.tempCond, o.cond]] as const) {
        for (const [frameIdx, out] of temp) {
          if (!out.mem) {
            const frame = this.frameFeatures(frameIdx);
            out.mem = await this.encodeMemory(frame, out.lowRes, out.objScore, true);
          }
          store.set(frameIdx, out);
        }
        temp.clear();
      }
      if (o.cond.size === 0) {
        throw new Error(
          `propagateInVideo: object ${o.id} has no prompt on a frame it was not tracked on`,
        );
      }
      for (const f of o.cond.keys()) o.nonCond.delete(f);
    }
  }

  /**
   * Tracks every object through the frames, one result per frame in order: conditioning
   * frames give their stored outputs, the others are tracked from memory. Forward tracking
   * also takes frames added while it runs (a live stream) and ends at the newest frame.
   */
  async *propagateInVideo(opts: PropagateOptions = {}): AsyncGenerator<VideoFrameResult> {
    const reverse = opts.reverse ?? false;
    const maxFrames = opts.maxFrames ?? Infinity;
    if (!(maxFrames >= 0) || (Number.isFinite(maxFrames) && !Number.isInteger(maxFrames))) {
      throw new Error(`propagateInVideo: maxFrames ${maxFrames} must be an integer >= 0`);
    }
    if (opts.startFrameIdx !== undefined) {
      this.checkFrame(opts.startFrameIdx, "propagateInVideo (startFrameIdx)");
    }
    const start = await this.exclusive(async () => {
      await this.preflight();
      return opts.startFrameIdx ??
        Math.min(...this.objects.flatMap((o) => [...o.cond.keys()]));
    });
    if (reverse) {
      // As the official: nothing when starting from frame 0.
      if (start === 0) return;
      const end = Math.max(start - maxFrames, 0);
      for (let f = start; f >= end; f--) yield await this.exclusive(() => this.trackFrame(f, true));
    } else {
      for (let f = start; f <= Math.min(start + maxFrames, this.frames.length - 1); f++) {
        yield await this.exclusive(() => this.trackFrame(f, false));
      }
    }
  }

  /** One frame of propagate_in_video for every object. */
  private async trackFrame(frameIdx: number, reverse: boolean): Promise<VideoFrameResult> {
    const outs: (FrameOutput | undefined)[] = [];
    for (const o of this.objects) {
      if (o.cond.size === 0) {
        // Prompted during this propagation: it joins at the next propagateInVideo (preflight).
        outs.push(undefined);
        continue;
      }
      let out = o.cond.get(frameIdx);
      if (!out) {
        out = await this.trackStep(o, frameIdx, {
          isInitCond: false,
          reverse,
          points: [],
          labels: [],
          runMemEncoder: true,
        });
        o.nonCond.set(frameIdx, out);
      }
      o.tracked.set(frameIdx, reverse);
      outs.push(out);
    }
    this.lastTracked = frameIdx;
    if (!reverse) this.forwardFront = Math.max(this.forwardFront, frameIdx);
    const result = await this.resultOf(frameIdx, outs);
    this.dropOldOutputs();
    this.dropOldFrames();
    return result;
  }

  /** Frames within this distance of the last tracked frame keep their tracked outputs. */
  private get outputWindow(): number {
    return Math.max(this.historyFrames, MAX_OBJ_PTRS_IN_ENCODER - 1, this.m.memArch.numMaskmem - 1);
  }

  /** Tracked outputs the model can no longer read (outside the window) are dropped. */
  private dropOldOutputs(): void {
    if (!Number.isFinite(this.historyFrames)) return;
    const w = this.outputWindow, at = this.lastTracked;
    for (const o of this.objects) {
      for (const f of o.nonCond.keys()) if (Math.abs(f - at) > w) o.nonCond.delete(f);
    }
  }

  /**
   * Pixels are kept for frames within historyFrames of the newest frame or of the last tracked
   * frame, for frames ahead of the forward tracking front (once an object is prompted: they
   * wait for a propagation) and for prompted frames not yet
   * encoded into memory; the others go (with their
   * "tracked" marks: a prompt there would need the pixels anyway).
   */
  private dropOldFrames(): void {
    if (!Number.isFinite(this.historyFrames)) return;
    const h = this.historyFrames, newest = this.frames.length - 1;
    // Forward tracking starts at the earliest prompted frame (none: nothing waits for it).
    let firstPrompt = Infinity;
    for (const o of this.objects) {
      for (const m of [o.cond, o.tempCond, o.tempNonCond]) {
        for (const f of m.keys()) firstPrompt = Math.min(firstPrompt, f);
      }
    }
    for (const f of this.keptFrames) {
      // A prompt not yet consolidated still needs its frame's features for its memory.
      const pending = this.objects.some((o) => o.tempCond.has(f) || o.tempNonCond.has(f));
      const keep = pending || newest - f <= h ||
        (this.lastTracked >= 0 && Math.abs(f - this.lastTracked) <= h) ||
        // Not yet reached by forward tracking, once there is something to track.
        (f >= firstPrompt && f > this.forwardFront);
      if (keep) continue;
      this.frames[f] = null;
      this.keptFrames.delete(f);
      for (const o of this.objects) o.tracked.delete(f);
    }
  }

  /** Forgets one object (its prompts and outputs); resolves to the remaining object ids. */
  removeObject(objId: number): Promise<number[]> {
    return this.exclusive(() => {
      const i = this.objects.findIndex((o) => o.id === objId);
      if (i < 0) {
        return Promise.reject(
          new Error(`removeObject: no object ${objId} (objects: ${this.objIds.join(", ")})`),
        );
      }
      this.objects.splice(i, 1);
      return Promise.resolve(this.objIds);
    });
  }

  /** Forgets every object, prompt and tracked output (reset_state); frames stay. */
  reset(): Promise<void> {
    return this.exclusive(() => {
      this.objects.length = 0;
      this.lastTracked = -1;
      this.forwardFront = -1;
      return Promise.resolve();
    });
  }

  /** What the predictor holds now (bounded however long the stream). */
  memoryUsage(): VideoMemoryUsage {
    let framesKept = 0, pixelBytes = 0;
    for (const i of this.keptFrames) (framesKept++, pixelBytes += this.frames[i]!.data.byteLength);
    let outputsKept = 0, outputBytes = 0;
    const posEncs = new Set<Float32Array>();
    for (const o of this.objects) {
      for (const map of [o.cond, o.nonCond, o.tempCond, o.tempNonCond]) {
        for (const out of map.values()) {
          outputsKept++;
          outputBytes += out.lowRes.byteLength + out.ptr.byteLength +
            (out.mem?.features.byteLength ?? 0);
          if (out.mem) posEncs.add(out.mem.posEnc);
        }
      }
    }
    for (const p of posEncs) outputBytes += p.byteLength;
    const c = this.cached;
    const featureGpuBytes = c
      ? 4 * (c.features.imageEmbed.size + c.features.highRes0.size + c.features.highRes1.size +
        c.pixFeat.size)
      : 0;
    return { framesKept, pixelBytes, outputsKept, outputBytes, featureGpuBytes };
  }

  /** Frees the cached features (and the modules when made by fromStateDict). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.releaseCached();
    this.currPos?.destroy();
    this.currPos = null;
    if (this.ownsModules) {
      this.m.dispose();
      this.m.encoder.dispose();
      this.m.decoder.dispose();
    }
  }
}
