/**
 * MobileSAM's image encoder architecture (TinyViT, mobile_sam/modeling/tiny_vit_sam.py), read
 * from a checkpoint's tensor shapes, and the table of encoder tensors it implies, so that a
 * checkpoint is validated name by name and shape by shape before any weight is used.
 *
 * Read from shapes: stage widths (each stage's first conv / norm), depths (block indices),
 * MBConv expansion (conv1's width), heads (attention_biases.shape[0]), window
 * (sqrt(attention_biases.shape[1])), MLP widths (fc1), local conv size. Not in any shape,
 * so taken from the official code: the input side (1024: `forward_features` views the last
 * stage as 64x64), BatchNorm eps 1e-5, and PatchMerging's stride (1 when the output width is
 * 320, 448 or 576, else 2).
 *
 * The prompt encoder and mask decoder are SAM's: their part of SamArch comes from the shared
 * SAM code (inferArch / validateStateDict) run on a view of the checkpoint whose image
 * encoder is replaced by a one-block ViT of the same output grid and neck.
 */
import {
  expectedShapes,
  inferArch,
  type TensorShapes,
  validateStateDict,
} from "../weights/arch.ts";
import type { DType, SamArch } from "../weights/types.ts";

const P = "image_encoder.";

/** TinyViT's input side; its `forward_features` hard-codes the 64x64 output grid. */
export const TINYVIT_IMG_SIZE = 1024;
/** The output grid the official encoder views its last stage as. */
export const TINYVIT_OUT_GRID = 64;

/** One TinyViT stage. Stage 0 is MBConvs (heads 0), the others TinyViT blocks. */
export interface TinyVitStage {
  dim: number;
  depth: number;
  /** Grid side the stage's blocks see. */
  grid: number;
  /** MBConv hidden width (stage 0 only, else 0). */
  mbconvHidden: number;
  /** Attention heads, window side, MLP width and local conv size (stages >= 1, else 0). */
  heads: number;
  window: number;
  mlpDim: number;
  localConv: number;
  /** The PatchMerging after the stage (all but the last). */
  downsample: { outDim: number; stride: number; outGrid: number } | null;
}

export interface TinyVitArch {
  imgSize: number;
  /** Width of the stem's first conv (embed_dims[0] / 2). */
  stemDim: number;
  stages: TinyVitStage[];
  /** Neck output width (SAM's prompt embedding width). */
  neckDim: number;
  /** Final grid side (64). */
  outGrid: number;
}

/** Does this checkpoint hold a TinyViT image encoder (MobileSAM)? */
export function isTinyVitCheckpoint(sd: TensorShapes): boolean {
  return sd.has(`${P}patch_embed.seq.0.c.weight`);
}

function shape(sd: TensorShapes, name: string, rank: number): readonly number[] {
  const t = sd.get(P + name);
  if (!t) throw new Error(`MobileSAM: no tensor '${P}${name}': not a TinyViT checkpoint?`);
  if (t.shape.length !== rank) {
    throw new Error(
      `MobileSAM: tensor '${P}${name}' has shape [${t.shape}], expected rank ${rank}`,
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

/** The official PatchMerging stride rule (tiny_vit_sam.py: out_dim 320, 448, 576 keep the grid). */
export function patchMergingStride(outDim: number): number {
  return outDim === 320 || outDim === 448 || outDim === 576 ? 1 : 2;
}

/** Reads TinyViT's architecture from tensor shapes (no tensor data is touched). */
export function inferTinyVitArch(sd: TensorShapes): TinyVitArch {
  const [stemDim, inChans, k0] = shape(sd, "patch_embed.seq.0.c.weight", 4);
  if (inChans !== 3 || k0 !== 3) {
    throw new Error(
      `MobileSAM: patch_embed.seq.0 must be a 3x3 conv on RGB, got [${stemDim}, ${inChans}, ${k0}]`,
    );
  }
  const embed0 = shape(sd, "patch_embed.seq.2.c.weight", 4)[0];
  const numLayers = countIndexed(sd, `${P}layers.`);
  if (numLayers !== 4) {
    // The official encoder's grids (patches / 2^(i-1 if i == 3 else i)) assume four stages.
    throw new Error(`MobileSAM: TinyViT has ${numLayers} stages; the official encoder has 4`);
  }
  const base = TINYVIT_IMG_SIZE / 4; // the stem's two stride-2 convs
  const stages: TinyVitStage[] = [];
  let dim = embed0;
  let grid = base;
  for (let i = 0; i < numLayers; i++) {
    const L = `layers.${i}.`;
    const depth = countIndexed(sd, `${P}${L}blocks.`);
    if (depth === 0) throw new Error(`MobileSAM: stage ${i} has no blocks`);
    // The official input resolution of stage i; our strides must arrive there.
    const official = base / 2 ** (i === 3 ? i - 1 : i);
    if (grid !== official) {
      throw new Error(
        `MobileSAM: stage ${i} would see a ${grid}x${grid} grid, the official encoder builds ` +
          `it for ${official}x${official} (widths that break the PatchMerging stride rule?)`,
      );
    }
    const stage: TinyVitStage = {
      dim,
      depth,
      grid,
      mbconvHidden: 0,
      heads: 0,
      window: 0,
      mlpDim: 0,
      localConv: 0,
      downsample: null,
    };
    if (i === 0) {
      stage.mbconvHidden = shape(sd, `${L}blocks.0.conv1.c.weight`, 4)[0];
    } else {
      const [heads, offsets] = shape(sd, `${L}blocks.0.attn.attention_biases`, 2);
      const window = Math.round(Math.sqrt(offsets));
      if (window * window !== offsets || heads < 1 || dim % heads !== 0) {
        throw new Error(
          `MobileSAM: stage ${i} attention_biases [${heads}, ${offsets}]: need heads dividing ` +
            `${dim} and a square number of offsets`,
        );
      }
      stage.heads = heads;
      stage.window = window;
      stage.mlpDim = shape(sd, `${L}blocks.0.mlp.fc1.weight`, 2)[0];
      stage.localConv = shape(sd, `${L}blocks.0.local_conv.c.weight`, 4)[2];
      if (stage.localConv % 2 !== 1) {
        throw new Error(`MobileSAM: stage ${i} local conv ${stage.localConv} is not odd`);
      }
    }
    if (i < numLayers - 1) {
      const outDim = shape(sd, `${L}downsample.conv1.c.weight`, 4)[0];
      const stride = patchMergingStride(outDim);
      const outGrid = Math.floor((grid + 2 - 3) / stride) + 1;
      stage.downsample = { outDim, stride, outGrid };
      dim = outDim;
      grid = outGrid;
    }
    stages.push(stage);
  }
  if (grid !== TINYVIT_OUT_GRID) {
    throw new Error(`MobileSAM: last stage grid ${grid}, the official encoder needs 64`);
  }
  return {
    imgSize: TINYVIT_IMG_SIZE,
    stemDim,
    stages,
    neckDim: shape(sd, "neck.0.weight", 4)[0],
    outGrid: grid,
  };
}

/** Every image_encoder tensor of the official TinyViT for `arch`, name -> shape and dtype. */
export function tinyVitExpectedShapes(
  arch: TinyVitArch,
): Map<string, { shape: number[]; dtype?: DType }> {
  const out = new Map<string, { shape: number[]; dtype?: DType }>();
  const add = (name: string, shape: number[], dtype?: DType) => out.set(P + name, { shape, dtype });
  const convBn = (name: string, cout: number, cinPerGroup: number, k: number) => {
    add(`${name}.c.weight`, [cout, cinPerGroup, k, k]);
    for (const p of ["weight", "bias", "running_mean", "running_var"]) {
      add(`${name}.bn.${p}`, [cout]);
    }
    add(`${name}.bn.num_batches_tracked`, [], "int64");
  };
  const linear = (name: string, outDim: number, inDim: number) => {
    add(`${name}.weight`, [outDim, inDim]);
    add(`${name}.bias`, [outDim]);
  };
  const norm = (name: string, dim: number) => {
    add(`${name}.weight`, [dim]);
    add(`${name}.bias`, [dim]);
  };
  const e0 = arch.stages[0].dim;
  convBn("patch_embed.seq.0", arch.stemDim, 3, 3);
  convBn("patch_embed.seq.2", e0, arch.stemDim, 3);
  arch.stages.forEach((s, i) => {
    const L = `layers.${i}.`;
    for (let b = 0; b < s.depth; b++) {
      const B = `${L}blocks.${b}.`;
      if (i === 0) {
        convBn(`${B}conv1`, s.mbconvHidden, s.dim, 1);
        convBn(`${B}conv2`, s.mbconvHidden, 1, 3);
        convBn(`${B}conv3`, s.dim, s.mbconvHidden, 1);
      } else {
        add(`${B}attn.attention_biases`, [s.heads, s.window * s.window]);
        norm(`${B}attn.norm`, s.dim);
        linear(`${B}attn.qkv`, 3 * s.dim, s.dim);
        linear(`${B}attn.proj`, s.dim, s.dim);
        norm(`${B}mlp.norm`, s.dim);
        linear(`${B}mlp.fc1`, s.mlpDim, s.dim);
        linear(`${B}mlp.fc2`, s.dim, s.mlpDim);
        convBn(`${B}local_conv`, s.dim, 1, s.localConv);
      }
    }
    if (s.downsample) {
      const o = s.downsample.outDim;
      convBn(`${L}downsample.conv1`, o, s.dim, 1);
      convBn(`${L}downsample.conv2`, o, 1, 3);
      convBn(`${L}downsample.conv3`, o, o, 1);
    }
  });
  // The ImageNet classifier TinyViT keeps (never used by SAM): accepted at any class count.
  const last = arch.stages[arch.stages.length - 1].dim;
  norm("norm_head", last);
  return out;
}

const FLOAT = new Set<DType>(["float32", "float16", "bfloat16", "float64"]);

/** The SAM neck, prompt encoder and decoder part: a view with a one-block ViT encoder. */
function samView(sd: TensorShapes, tv: TinyVitArch): TensorShapes {
  const last = tv.stages[tv.stages.length - 1];
  const headDim = last.dim / last.heads;
  // A global one-block ViT on the same output grid (patch 16 on 1024) and width.
  const proxy: SamArch = {
    imgSize: tv.imgSize,
    patchSize: tv.imgSize / tv.outGrid,
    embedDim: last.dim,
    depth: 1,
    numHeads: last.dim / headDim,
    encoderMlpDim: last.mlpDim,
    windowSize: 0,
    globalAttnIndexes: [0],
    // Decoder fields are not used for the encoder entries below.
    promptEmbedDim: tv.neckDim,
    decoderMlpDim: 0,
    decoderDepth: 0,
    decoderNumHeads: 0,
    decoderCrossAttnDim: 0,
    iouHeadHiddenDim: 0,
    iouHeadDepth: 0,
    numMultimaskOutputs: 0,
  };
  const view = new Map<string, { shape: readonly number[]; dtype?: DType }>();
  for (const [name, s] of expectedShapes(proxy)) {
    if (name.startsWith(P) && !name.startsWith(`${P}neck.`)) {
      view.set(name, { shape: s, dtype: "float32" });
    }
  }
  for (const [name, t] of sd) {
    if (!name.startsWith(P) || name.startsWith(`${P}neck.`)) view.set(name, t);
  }
  return view;
}

/**
 * MobileSAM's SamArch (decoder fields from SAM's inference; the ViT fields describe TinyViT's
 * last stage: its width, heads, window and MLP, all blocks counted as depth, no global
 * blocks) and its TinyViT architecture, after validating every tensor.
 */
export function inferMobileSamArch(sd: TensorShapes): { arch: SamArch; tinyVit: TinyVitArch } {
  const tinyVit = inferTinyVitArch(sd);
  const view = samView(sd, tinyVit);
  const sam = inferArch(view);
  validateStateDict(view, sam);
  validateTinyVit(sd, tinyVit);
  const last = tinyVit.stages[tinyVit.stages.length - 1];
  const arch: SamArch = {
    ...sam,
    embedDim: last.dim,
    depth: tinyVit.stages.reduce((n, s) => n + s.depth, 0),
    numHeads: last.heads,
    encoderMlpDim: last.mlpDim,
    windowSize: last.window,
    globalAttnIndexes: [],
  };
  return { arch, tinyVit };
}

/** Checks the image encoder's tensors against the table (the neck is checked as SAM's). */
export function validateTinyVit(sd: TensorShapes, arch: TinyVitArch): void {
  const expected = tinyVitExpectedShapes(arch);
  const problems: string[] = [];
  for (const [name, want] of expected) {
    const t = sd.get(name);
    // BatchNorm's step counter is never read; conversions drop it.
    if (!t && name.endsWith(".num_batches_tracked")) continue;
    if (!t) problems.push(`missing tensor '${name}' (expected shape [${want.shape}])`);
    else if (t.shape.length !== want.shape.length || t.shape.some((v, i) => v !== want.shape[i])) {
      problems.push(`tensor '${name}' has shape [${t.shape}], expected [${want.shape}]`);
    } else if (want.dtype === undefined && t.dtype && !FLOAT.has(t.dtype)) {
      problems.push(`tensor '${name}' has dtype ${t.dtype}, expected a floating-point type`);
    }
  }
  const last = arch.stages[arch.stages.length - 1].dim;
  for (const [name, t] of sd) {
    if (!name.startsWith(P) || name.startsWith(`${P}neck.`) || expected.has(name)) continue;
    // head: Linear(last, classes) at any class count; attention_bias_idxs: the official
    // non-persistent index buffer, in case a checkpoint kept it (we rebuild it).
    if (name === `${P}head.weight` && t.shape.length === 2 && t.shape[1] === last) continue;
    if (name === `${P}head.bias` && t.shape.length === 1) continue;
    if (name.endsWith(".attn.attention_bias_idxs")) continue;
    problems.push(`unknown tensor '${name}' of shape [${t.shape}]`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join("\n  ");
    const more = problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : "";
    throw new Error(
      `checkpoint does not match the inferred TinyViT (MobileSAM) architecture ` +
        `(${problems.length} problem${problems.length > 1 ? "s" : ""}):\n  ${shown}${more}`,
    );
  }
}
