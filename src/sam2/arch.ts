/**
 * The SAM 2 / 2.1 architecture (official `SAM2Base` with a Hiera trunk, FPN neck and the SAM 2
 * mask decoder), read from a checkpoint's tensor names and shapes.
 *
 * What the shapes tell: Hiera's width, blocks per stage and the width of every stage (from the
 * blocks that carry a dim-changing `proj`), the MLP ratio, the first window size (the shape of
 * `pos_embed_window`), the background pos-embed size, the FPN width and channel list, and the
 * decoder's sizes. What they cannot tell (no tensor depends on it): the image size, the number
 * of heads, the window sizes of stages 2..4, the global-attention blocks and the number of
 * q-pooling stage changes. Those come from `hints`, else from the official sam2.1 config whose
 * (embed_dim, stages) the checkpoint matches (tiny / small / base_plus / large); a checkpoint
 * matching none needs hints, and loading says which.
 */
import type { TensorShapes } from "../weights/arch.ts";

/** Hiera (`modeling/backbones/hieradet.py`). */
export interface Sam2TrunkArch {
  /** Width of stage 1 (patch embed output). */
  embedDim: number;
  /** Heads of stage 1; doubled at every stage change (head_mul 2). */
  numHeads: number;
  /** Blocks per stage. */
  stages: number[];
  /** Width of each stage (embedDim * 2^k in the official builds). */
  stageDims: number[];
  /** Heads of each stage. */
  stageHeads: number[];
  /** Stage changes that q-pool (the official q_pool = 3: every one of them). */
  qPool: number;
  /** Blocks that pool their queries 2x2 (the first block of stages 2..qPool+1). */
  qPoolBlocks: number[];
  /** Window side per stage when not global. */
  windowSpec: number[];
  globalAttBlocks: number[];
  /**
   * The window each block attends in (0 = global). As officially, the first block of a stage
   * keeps the previous stage's window (it partitions its input before pooling).
   */
  blockWindowSizes: number[];
  /** Size of the background pos_embed, interpolated bicubically to the token grid. */
  posEmbedBkg: [number, number];
  /** MLP hidden width / block width (4 officially). */
  mlpRatio: number;
  /** Output channels of the stages, deepest first (the official `channel_list`). */
  channelList: number[];
}

/** FpnNeck (`modeling/backbones/image_encoder.py`), sam2.1 configs. */
export interface Sam2NeckArch {
  /** Trunk channels per level, deepest first (must equal the trunk's channelList). */
  backboneChannelList: number[];
  /** Levels that receive the top-down (nearest 2x) sum: [2, 3] in every official config. */
  fpnTopDownLevels: number[];
  /** Lowest-resolution levels dropped after the neck (1 officially). */
  scalp: number;
}

/** The SAM 2 mask decoder's sizes and the image predictor's fixed options. */
export interface Sam2DecoderArch {
  depth: number;
  mlpDim: number;
  /** Not in any tensor shape; 8 in SAM2Base. */
  numHeads: number;
  /** Width of the cross attentions (dModel / 2 officially). */
  crossAttnDim: number;
  iouHeadHiddenDim: number;
  iouHeadDepth: number;
  numMultimaskOutputs: number;
  /** An object-score token and head (`obj_score_token`, `pred_obj_score_head`). */
  predObjScores: boolean;
  /** Linear layers of pred_obj_score_head (3: the MLP head; 1: a single Linear; 0: none). */
  objScoreHeadDepth: number;
  /** conv_s0 / conv_s1 present. */
  useHighResFeatures: boolean;
  /** From the sam2.1 configs (not in the tensors). */
  iouUseSigmoid: boolean;
  /** build_sam2's post-processing overrides (not in the tensors). */
  dynamicMultimaskViaStability: boolean;
  stabilityDelta: number;
  stabilityThresh: number;
}

export interface Sam2Arch {
  family: "sam2";
  /** Square encoder input side S (not in any tensor shape). */
  imgSize: number;
  /** FPN width C = the decoder's transformer_dim. */
  dModel: number;
  /** S / 16: side of image_embed. */
  backboneStride: number;
  trunk: Sam2TrunkArch;
  neck: Sam2NeckArch;
  decoder: Sam2DecoderArch;
}

/** What the tensors cannot tell; see the module comment. */
export interface Sam2ArchHints {
  imgSize?: number;
  numHeads?: number;
  windowSpec?: number[];
  globalAttBlocks?: number[];
  qPool?: number;
}

/** One released sam2.1 trunk config (configs/sam2.1/*.yaml, Hiera's defaults where omitted). */
export interface OfficialSam2Config {
  embedDim: number;
  stages: number[];
  numHeads: number;
  globalAttBlocks: number[];
  windowSpec: number[];
  posEmbedBkg: [number, number];
  imgSize: number;
  qPool: number;
}

export const OFFICIAL_SAM2_CONFIGS: Readonly<Record<string, OfficialSam2Config>> = {
  hiera_t: {
    embedDim: 96,
    stages: [1, 2, 7, 2],
    numHeads: 1,
    globalAttBlocks: [5, 7, 9],
    windowSpec: [8, 4, 14, 7],
    posEmbedBkg: [7, 7],
    imgSize: 1024,
    qPool: 3,
  },
  hiera_s: {
    embedDim: 96,
    stages: [1, 2, 11, 2],
    numHeads: 1,
    globalAttBlocks: [7, 10, 13],
    windowSpec: [8, 4, 14, 7],
    posEmbedBkg: [7, 7],
    imgSize: 1024,
    qPool: 3,
  },
  // base_plus leaves stages, global blocks, windows and the background size at Hiera's defaults.
  hiera_b_plus: {
    embedDim: 112,
    stages: [2, 3, 16, 3],
    numHeads: 2,
    globalAttBlocks: [12, 16, 20],
    windowSpec: [8, 4, 14, 7],
    posEmbedBkg: [14, 14],
    imgSize: 1024,
    qPool: 3,
  },
  hiera_l: {
    embedDim: 144,
    stages: [2, 6, 36, 4],
    numHeads: 2,
    globalAttBlocks: [23, 33, 43],
    windowSpec: [8, 4, 16, 8],
    posEmbedBkg: [7, 7],
    imgSize: 1024,
    qPool: 3,
  },
};

/** SAM2Base's mask decoder heads (hard-coded there). */
export const SAM2_DECODER_NUM_HEADS = 8;
const TRUNK = "image_encoder.trunk.";

/** True when the tensor names are SAM 2's (a Hiera trunk under image_encoder.trunk). */
export function isSam2Checkpoint(shapes: TensorShapes): boolean {
  return shapes.has(`${TRUNK}patch_embed.proj.weight`);
}

function shapeOf(sd: TensorShapes, name: string, rank: number): readonly number[] {
  const t = sd.get(name);
  if (!t) throw new Error(`inferSam2Arch: no tensor '${name}': not a SAM 2 checkpoint?`);
  if (t.shape.length !== rank) {
    throw new Error(
      `inferSam2Arch: tensor '${name}' has shape [${t.shape}], expected rank ${rank}`,
    );
  }
  return t.shape;
}

function countIndexed(sd: TensorShapes, prefix: string): number {
  let count = 0;
  for (const name of sd.keys()) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(name.slice(prefix.length));
    if (m) count = Math.max(count, Number(m[1]) + 1);
  }
  return count;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Per-block windows as Hiera.__init__ assigns them: block i of stage k uses windowSpec[k],
 * except that the first block of a stage still uses the previous stage's window, and global
 * blocks use 0.
 */
export function blockWindowSizes(
  stages: readonly number[],
  windowSpec: readonly number[],
  globalAttBlocks: readonly number[],
): number[] {
  const stageEnds = stageEndsOf(stages);
  const depth = stageEnds[stageEnds.length - 1] + 1;
  const out: number[] = [];
  let cur = 1;
  for (let i = 0; i < depth; i++) {
    // Read before cur advances: the official loop's lag of one block.
    out.push(globalAttBlocks.includes(i) ? 0 : windowSpec[cur - 1]);
    if (stageEnds.includes(i - 1)) cur++;
  }
  return out;
}

/** Index of the last block of each stage. */
export function stageEndsOf(stages: readonly number[]): number[] {
  let sum = 0;
  return stages.map((n) => (sum += n) - 1);
}

/** Reads the SAM 2 architecture from tensor names and shapes (no tensor data is touched). */
export function inferSam2Arch(shapes: TensorShapes, hints: Sam2ArchHints = {}): Sam2Arch {
  if (!isSam2Checkpoint(shapes)) {
    throw new Error("inferSam2Arch: no image_encoder.trunk tensors: not a SAM 2 checkpoint");
  }
  const [embedDim, inChans, kh, kw] = shapeOf(shapes, `${TRUNK}patch_embed.proj.weight`, 4);
  if (inChans !== 3 || kh !== 7 || kw !== 7) {
    throw new Error(
      `inferSam2Arch: patch_embed.proj.weight is [${embedDim},${inChans},${kh},${kw}], expected 7x7 over 3 channels`,
    );
  }
  const [, peDim, bkgH, bkgW] = shapeOf(shapes, `${TRUNK}pos_embed`, 4);
  const [, pwDim, win0, win0w] = shapeOf(shapes, `${TRUNK}pos_embed_window`, 4);
  if (peDim !== embedDim || pwDim !== embedDim || win0 !== win0w) {
    throw new Error(`inferSam2Arch: pos_embed / pos_embed_window do not match width ${embedDim}`);
  }
  const depth = countIndexed(shapes, `${TRUNK}blocks.`);
  if (depth === 0) throw new Error("inferSam2Arch: no trunk blocks");
  // A block that changes the width carries `proj` and starts a new stage.
  const stages: number[] = [];
  const stageDims: number[] = [];
  let width = embedDim;
  let mlpRatio = 0;
  for (let i = 0; i < depth; i++) {
    const b = `${TRUNK}blocks.${i}.`;
    const [dimOut] = shapeOf(shapes, `${b}norm2.weight`, 1);
    const [dimIn] = shapeOf(shapes, `${b}norm1.weight`, 1);
    if (dimIn !== width) {
      throw new Error(
        `inferSam2Arch: block ${i} takes width ${dimIn}, the previous gives ${width}`,
      );
    }
    const hasProj = shapes.has(`${b}proj.weight`);
    if (hasProj !== (dimOut !== dimIn)) {
      throw new Error(
        `inferSam2Arch: block ${i} (${dimIn} -> ${dimOut}) ${hasProj ? "has" : "lacks"} proj`,
      );
    }
    if (i === 0 || dimOut !== dimIn) {
      stages.push(0);
      stageDims.push(dimOut);
    }
    stages[stages.length - 1]++;
    const [hidden] = shapeOf(shapes, `${b}mlp.layers.0.weight`, 2);
    const ratio = hidden / dimOut;
    if (i === 0) mlpRatio = ratio;
    else if (ratio !== mlpRatio) {
      throw new Error(`inferSam2Arch: block ${i} has MLP ratio ${ratio}, block 0 has ${mlpRatio}`);
    }
    width = dimOut;
  }
  if (stageDims[0] !== embedDim) {
    throw new Error(`inferSam2Arch: block 0 changes the width (${embedDim} -> ${stageDims[0]})`);
  }

  const official = Object.values(OFFICIAL_SAM2_CONFIGS).find((c) =>
    c.embedDim === embedDim && sameList(c.stages, stages)
  );
  const pick = <K extends keyof Sam2ArchHints>(key: K): NonNullable<Sam2ArchHints[K]> => {
    const v = hints[key] ?? (official as Record<string, unknown> | undefined)?.[key];
    if (v === undefined) {
      throw new Error(
        `SAM 2 checkpoint (Hiera width ${embedDim}, stages [${stages}]) matches no official ` +
          `sam2.1 config, and its '${key}' is not in any tensor shape: pass it as a hint ` +
          `(imgSize, numHeads, windowSpec, globalAttBlocks, qPool)`,
      );
    }
    // Hints come from callers and stored metadata: whole numbers, or lists of them.
    const isCount = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
    const ok = Array.isArray(v) ? v.every(isCount) : isCount(v);
    if (!ok || (key === "windowSpec" || key === "globalAttBlocks") !== Array.isArray(v)) {
      throw new Error(`SAM 2: hint '${key}' = ${JSON.stringify(v)} is not valid`);
    }
    return v as NonNullable<Sam2ArchHints[K]>;
  };
  const imgSize = pick("imgSize");
  const numHeads = pick("numHeads");
  const windowSpec = [...pick("windowSpec")];
  const globalAttBlocks = [...pick("globalAttBlocks")];
  const qPool = pick("qPool");
  if (numHeads < 1) throw new Error(`SAM 2: numHeads ${numHeads} must be at least 1`);
  if (windowSpec.length !== stages.length) {
    throw new Error(
      `SAM 2: window_spec [${windowSpec}] has not one entry per stage (${stages.length})`,
    );
  }
  if (windowSpec[0] !== win0) {
    throw new Error(
      `SAM 2: window_spec[0] = ${windowSpec[0]} but pos_embed_window is ${win0}x${win0}`,
    );
  }
  if (!(Number.isInteger(qPool) && qPool >= 0 && qPool <= stages.length - 1)) {
    throw new Error(`SAM 2: q_pool ${qPool} must be in 0..${stages.length - 1}`);
  }
  const stageEnds = stageEndsOf(stages);
  const qPoolBlocks = stageEnds.slice(0, -1).map((e) => e + 1).slice(0, qPool);
  const stageHeads = stages.map((_, k) => numHeads * 2 ** k);
  stageDims.forEach((d, k) => {
    if (d % stageHeads[k] !== 0) {
      throw new Error(
        `SAM 2: stage ${k} width ${d} is not divisible by its ${stageHeads[k]} heads`,
      );
    }
  });
  if (!Number.isInteger(imgSize) || imgSize <= 0 || imgSize % 32 !== 0) {
    throw new Error(`SAM 2: image size ${imgSize} must be a positive multiple of 32`);
  }
  if ((imgSize / 4) % win0 !== 0) {
    throw new Error(
      `SAM 2: the ${imgSize / 4}-token grid is not tiled by the ${win0}x${win0} window pos embed`,
    );
  }

  const channelList = [...stageDims].reverse();
  const convs = countIndexed(shapes, "image_encoder.neck.convs.");
  const backboneChannelList: number[] = [];
  for (let i = 0; i < convs; i++) {
    backboneChannelList.push(shapeOf(shapes, `image_encoder.neck.convs.${i}.conv.weight`, 4)[1]);
  }
  if (!sameList(backboneChannelList, channelList)) {
    throw new Error(
      `SAM 2: neck channels [${backboneChannelList}] != trunk channels [${channelList}]`,
    );
  }
  const [dModel] = shapeOf(shapes, "image_encoder.neck.convs.0.conv.weight", 4);

  const md = "sam_mask_decoder.";
  const layer0 = `${md}transformer.layers.0.`;
  const objHead = countIndexed(shapes, `${md}pred_obj_score_head.layers.`);
  const predObjScores = shapes.has(`${md}obj_score_token.weight`);
  return {
    family: "sam2",
    imgSize,
    dModel,
    backboneStride: 16,
    trunk: {
      embedDim,
      numHeads,
      stages,
      stageDims,
      stageHeads,
      qPool,
      qPoolBlocks,
      windowSpec,
      globalAttBlocks,
      blockWindowSizes: blockWindowSizes(stages, windowSpec, globalAttBlocks),
      posEmbedBkg: [bkgH, bkgW],
      mlpRatio,
      channelList,
    },
    neck: { backboneChannelList, fpnTopDownLevels: [2, 3], scalp: 1 },
    decoder: {
      depth: countIndexed(shapes, `${md}transformer.layers.`),
      mlpDim: shapeOf(shapes, `${layer0}mlp.layers.0.weight`, 2)[0],
      numHeads: SAM2_DECODER_NUM_HEADS,
      crossAttnDim: shapeOf(shapes, `${layer0}cross_attn_token_to_image.q_proj.weight`, 2)[0],
      iouHeadHiddenDim: shapeOf(shapes, `${md}iou_prediction_head.layers.0.weight`, 2)[0],
      iouHeadDepth: countIndexed(shapes, `${md}iou_prediction_head.layers.`),
      numMultimaskOutputs: shapeOf(shapes, `${md}mask_tokens.weight`, 2)[0] - 1,
      predObjScores,
      objScoreHeadDepth: predObjScores
        ? (objHead > 0 ? objHead : shapes.has(`${md}pred_obj_score_head.weight`) ? 1 : 0)
        : 0,
      useHighResFeatures: shapes.has(`${md}conv_s0.weight`),
      iouUseSigmoid: true,
      dynamicMultimaskViaStability: true,
      stabilityDelta: 0.05,
      stabilityThresh: 0.98,
    },
  };
}

/**
 * Hints from a fixture's fixture.json `architecture` (the tools/make_sam2_fixtures.py
 * layout): what a test model was built with beyond its tensor shapes.
 */
export function sam2HintsFromFixture(architecture: {
  image_size: number;
  trunk: {
    num_heads: number;
    window_spec: number[];
    global_att_blocks: number[];
    q_pool_blocks: number[];
  };
}): Sam2ArchHints {
  return {
    imgSize: architecture.image_size,
    numHeads: architecture.trunk.num_heads,
    windowSpec: architecture.trunk.window_spec,
    globalAttBlocks: architecture.trunk.global_att_blocks,
    qPool: architecture.trunk.q_pool_blocks.length,
  };
}

/** The four released sam2.1 models' architectures (configs/sam2.1/*.yaml, build_sam2). */
export function officialSam2Arch(name: keyof typeof OFFICIAL_SAM2_CONFIGS): Sam2Arch {
  const c = OFFICIAL_SAM2_CONFIGS[name];
  if (!c) throw new Error(`officialSam2Arch: no official config '${name}'`);
  const stageDims = c.stages.map((_, k) => c.embedDim * 2 ** k);
  const stageEnds = stageEndsOf(c.stages);
  return {
    family: "sam2",
    imgSize: c.imgSize,
    dModel: 256,
    backboneStride: 16,
    trunk: {
      embedDim: c.embedDim,
      numHeads: c.numHeads,
      stages: [...c.stages],
      stageDims,
      stageHeads: c.stages.map((_, k) => c.numHeads * 2 ** k),
      qPool: c.qPool,
      qPoolBlocks: stageEnds.slice(0, -1).map((e) => e + 1).slice(0, c.qPool),
      windowSpec: [...c.windowSpec],
      globalAttBlocks: [...c.globalAttBlocks],
      blockWindowSizes: blockWindowSizes(c.stages, c.windowSpec, c.globalAttBlocks),
      posEmbedBkg: [...c.posEmbedBkg],
      mlpRatio: 4,
      channelList: [...stageDims].reverse(),
    },
    neck: { backboneChannelList: [...stageDims].reverse(), fpnTopDownLevels: [2, 3], scalp: 1 },
    decoder: {
      depth: 2,
      mlpDim: 2048,
      numHeads: SAM2_DECODER_NUM_HEADS,
      crossAttnDim: 128,
      iouHeadHiddenDim: 256,
      iouHeadDepth: 3,
      numMultimaskOutputs: 3,
      predObjScores: true,
      objScoreHeadDepth: 3,
      useHighResFeatures: true,
      iouUseSigmoid: true,
      dynamicMultimaskViaStability: true,
      stabilityDelta: 0.05,
      stabilityThresh: 0.98,
    },
  };
}
