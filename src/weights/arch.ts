/**
 * The SAM architecture read from a checkpoint's tensor names and shapes, and the full table
 * of tensors (name -> shape) that architecture implies, in the official state-dict order.
 * Validation compares a checkpoint against that table, tensor by tensor, the way ggml's
 * sam.cpp loader checks every name and shape before using any weight.
 *
 * Both functions work from shapes alone, so a test can check ViT-H's table without its
 * 2.5 GB of weights.
 */
import type { DType, SamArch } from "./types.ts";

/** Anything that maps tensor names to shapes (a StateDict qualifies). */
export type TensorShapes = ReadonlyMap<
  string,
  { readonly shape: readonly number[]; readonly dtype?: DType }
>;

/**
 * Heads of the mask decoder's attentions. No tensor shape depends on it, so it cannot be
 * inferred; every official SAM uses 8.
 */
export const DECODER_NUM_HEADS = 8;

/**
 * Hidden channels of the prompt encoder's mask downscaling (the official constant); the
 * table requires it, so a checkpoint built with another value is refused by validation.
 */
export const MASK_IN_CHANS = 16;

/** Non-persistent buffers of the official `Sam` module, accepted when a checkpoint has them. */
export const OPTIONAL_TENSORS: ReadonlyMap<string, number[]> = new Map([
  ["pixel_mean", [3, 1, 1]],
  ["pixel_std", [3, 1, 1]],
]);

const FLOAT_DTYPES = new Set<DType>(["float32", "float16", "bfloat16", "float64"]);

function shapeOf(sd: TensorShapes, name: string): readonly number[] {
  const t = sd.get(name);
  if (!t) throw new Error(`inferArch: no tensor '${name}': not a SAM checkpoint?`);
  return t.shape;
}

function dims(sd: TensorShapes, name: string, rank: number): readonly number[] {
  const shape = shapeOf(sd, name);
  if (shape.length !== rank) {
    throw new Error(`inferArch: tensor '${name}' has shape [${shape}], expected rank ${rank}`);
  }
  return shape;
}

/** Number of modules `<prefix><i>.` for i = 0, 1, ... (highest index seen, plus one). */
function countIndexed(sd: TensorShapes, prefix: string): number {
  let count = 0;
  for (const name of sd.keys()) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(name.slice(prefix.length));
    if (m) count = Math.max(count, Number(m[1]) + 1);
  }
  return count;
}

/** Reads the SAM architecture from tensor names and shapes (no tensor data is touched). */
export function inferArch(sd: TensorShapes): SamArch {
  if (sd.has("image_encoder.trunk.patch_embed.proj.weight")) {
    throw new Error(
      "inferArch: this is a SAM 2 checkpoint (image_encoder.trunk.*); load it with loadSam2 " +
        "(src/sam2/load.ts)",
    );
  }
  const [, grid, gridW, embedDim] = dims(sd, "image_encoder.pos_embed", 4);
  if (grid !== gridW) throw new Error(`inferArch: pos_embed grid ${grid}x${gridW} is not square`);
  const [, inChans, patchSize, patchW] = dims(sd, "image_encoder.patch_embed.proj.weight", 4);
  if (inChans !== 3 || patchSize !== patchW) {
    throw new Error(`inferArch: unexpected patch_embed.proj.weight shape`);
  }
  const depth = countIndexed(sd, "image_encoder.blocks.");
  if (depth === 0) throw new Error("inferArch: no image_encoder.blocks: not a SAM checkpoint?");
  const headDim = dims(sd, "image_encoder.blocks.0.attn.rel_pos_h", 2)[1];
  if (headDim <= 0 || embedDim % headDim !== 0) {
    throw new Error(`inferArch: head dim ${headDim} does not divide embed dim ${embedDim}`);
  }
  // A block attends globally when its relative positions span the whole grid (2*grid - 1).
  const globalAttnIndexes: number[] = [];
  let windowSize = 0;
  for (let i = 0; i < depth; i++) {
    const name = `image_encoder.blocks.${i}.attn.rel_pos_h`;
    const length = dims(sd, name, 2)[0];
    if (length % 2 !== 1) throw new Error(`inferArch: '${name}' has even length ${length}`);
    const span = (length + 1) / 2;
    if (span === grid) {
      globalAttnIndexes.push(i);
    } else if (windowSize === 0 || windowSize === span) {
      windowSize = span;
    } else {
      throw new Error(
        `inferArch: block ${i} has window ${span}, an earlier block has ${windowSize}`,
      );
    }
  }
  const promptEmbedDim = dims(sd, "image_encoder.neck.0.weight", 4)[0];
  const layer0 = "mask_decoder.transformer.layers.0.";
  const iouHeadDepth = countIndexed(sd, "mask_decoder.iou_prediction_head.layers.");
  const decoderCrossAttnDim = dims(sd, `${layer0}cross_attn_token_to_image.q_proj.weight`, 2)[0];
  if (decoderCrossAttnDim % DECODER_NUM_HEADS !== 0 || promptEmbedDim % DECODER_NUM_HEADS) {
    throw new Error(
      `inferArch: decoder widths ${promptEmbedDim}/${decoderCrossAttnDim} are not divisible ` +
        `by its ${DECODER_NUM_HEADS} heads`,
    );
  }
  if (iouHeadDepth < 2) throw new Error(`inferArch: IoU head depth ${iouHeadDepth} < 2`);
  return validateArch({
    imgSize: grid * patchSize,
    patchSize,
    embedDim,
    depth,
    numHeads: embedDim / headDim,
    encoderMlpDim: dims(sd, "image_encoder.blocks.0.mlp.lin1.weight", 2)[0],
    windowSize,
    globalAttnIndexes,
    promptEmbedDim,
    decoderMlpDim: dims(sd, `${layer0}mlp.lin1.weight`, 2)[0],
    decoderDepth: countIndexed(sd, "mask_decoder.transformer.layers."),
    decoderNumHeads: DECODER_NUM_HEADS,
    decoderCrossAttnDim,
    iouHeadHiddenDim: dims(sd, "mask_decoder.iou_prediction_head.layers.0.weight", 2)[0],
    iouHeadDepth,
    numMultimaskOutputs: dims(sd, "mask_decoder.mask_tokens.weight", 2)[0] - 1,
  });
}

/** Where each width or count of SamArch is read from, for the messages of validateArch. */
const ARCH_SOURCES: ReadonlyMap<keyof SamArch, string> = new Map<keyof SamArch, string>([
  ["imgSize", "the image size, pos_embed grid x patch size"],
  ["patchSize", "the patch size, from image_encoder.patch_embed.proj.weight"],
  ["embedDim", "the image encoder's width, from image_encoder.pos_embed"],
  ["depth", "the number of image_encoder.blocks"],
  ["numHeads", "the image encoder's attention heads"],
  ["encoderMlpDim", "the image encoder's MLP width, from image_encoder.blocks.0.mlp.lin1.weight"],
  ["promptEmbedDim", "the prompt embedding width, from image_encoder.neck.0.weight"],
  [
    "decoderMlpDim",
    "the mask decoder's MLP width, from mask_decoder.transformer.layers.0.mlp.lin1.weight",
  ],
  ["decoderDepth", "the number of mask_decoder.transformer.layers"],
  ["decoderNumHeads", "the mask decoder's attention heads"],
  [
    "decoderCrossAttnDim",
    "the mask decoder's cross-attention width, from its cross_attn_token_to_image.q_proj.weight",
  ],
  [
    "iouHeadHiddenDim",
    "the IoU head's width, from mask_decoder.iou_prediction_head.layers.0.weight",
  ],
  ["iouHeadDepth", "the number of mask_decoder.iou_prediction_head.layers"],
  [
    "numMultimaskOutputs",
    "the multimask outputs, rows of mask_decoder.mask_tokens.weight minus one",
  ],
]);

/**
 * Refuses an architecture that could not run: every width and count a positive integer (a
 * width of 0 made zero-sized GPU buffers, a panic, and a [1, D] mask_tokens gave multimask no
 * masks), widths divisible by the heads that split them, the prompt width by 8 (the mask
 * upscaling's D/4 and D/8 channels), and global blocks within the encoder. Returns `arch`.
 */
export function validateArch(arch: SamArch): SamArch {
  const problems: string[] = [];
  for (const [field, what] of ARCH_SOURCES) {
    const v = arch[field] as number;
    if (!Number.isSafeInteger(v) || v < 1) problems.push(`${what} is ${v}, expected at least 1`);
  }
  if (!Number.isSafeInteger(arch.windowSize) || arch.windowSize < 0) {
    problems.push(`the window size is ${arch.windowSize}`);
  }
  const divides = (what: string, width: number, by: number, byWhat: string) => {
    if (width >= 1 && by >= 1 && width % by !== 0) {
      problems.push(`${what} ${width} is not divisible by ${byWhat} ${by}`);
    }
  };
  divides("the image encoder's width", arch.embedDim, arch.numHeads, "its heads");
  divides("the image size", arch.imgSize, arch.patchSize, "the patch size");
  divides("the prompt embedding width", arch.promptEmbedDim, 8, "8 (mask upscaling channels)");
  divides("the prompt embedding width", arch.promptEmbedDim, arch.decoderNumHeads, "heads");
  divides("the cross-attention width", arch.decoderCrossAttnDim, arch.decoderNumHeads, "heads");
  for (const i of arch.globalAttnIndexes) {
    if (!Number.isSafeInteger(i) || i < 0 || i >= arch.depth) {
      problems.push(`global attention block ${i} is outside the encoder's ${arch.depth} blocks`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`inferArch: degenerate SAM architecture: ${problems.join("; ")}`);
  }
  return arch;
}

/** Every tensor of the official model for `arch`, name -> shape, in state-dict order. */
export function expectedShapes(arch: SamArch): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const add = (name: string, shape: number[]) => out.set(name, shape);
  const linear = (name: string, outDim: number, inDim: number) => {
    add(`${name}.weight`, [outDim, inDim]);
    add(`${name}.bias`, [outDim]);
  };
  const norm = (name: string, dim: number) => {
    add(`${name}.weight`, [dim]);
    add(`${name}.bias`, [dim]);
  };
  const C = arch.embedDim;
  const grid = arch.imgSize / arch.patchSize;
  const headDim = C / arch.numHeads;

  // Image encoder: ViT with windowed / global blocks, then the neck.
  add("image_encoder.pos_embed", [1, grid, grid, C]);
  add("image_encoder.patch_embed.proj.weight", [C, 3, arch.patchSize, arch.patchSize]);
  add("image_encoder.patch_embed.proj.bias", [C]);
  for (let i = 0; i < arch.depth; i++) {
    const b = `image_encoder.blocks.${i}`;
    // Global blocks (and every block when windowSize is 0) span the whole grid.
    const global = arch.globalAttnIndexes.includes(i) || arch.windowSize === 0;
    const span = global ? grid : arch.windowSize;
    norm(`${b}.norm1`, C);
    add(`${b}.attn.rel_pos_h`, [2 * span - 1, headDim]);
    add(`${b}.attn.rel_pos_w`, [2 * span - 1, headDim]);
    linear(`${b}.attn.qkv`, 3 * C, C);
    linear(`${b}.attn.proj`, C, C);
    norm(`${b}.norm2`, C);
    linear(`${b}.mlp.lin1`, arch.encoderMlpDim, C);
    linear(`${b}.mlp.lin2`, C, arch.encoderMlpDim);
  }
  const D = arch.promptEmbedDim;
  add("image_encoder.neck.0.weight", [D, C, 1, 1]);
  norm("image_encoder.neck.1", D);
  add("image_encoder.neck.2.weight", [D, D, 3, 3]);
  norm("image_encoder.neck.3", D);

  // Prompt encoder.
  const m = MASK_IN_CHANS;
  add("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", [2, D / 2]);
  for (let i = 0; i < 4; i++) add(`prompt_encoder.point_embeddings.${i}.weight`, [1, D]);
  add("prompt_encoder.not_a_point_embed.weight", [1, D]);
  add("prompt_encoder.mask_downscaling.0.weight", [m / 4, 1, 2, 2]);
  add("prompt_encoder.mask_downscaling.0.bias", [m / 4]);
  norm("prompt_encoder.mask_downscaling.1", m / 4);
  add("prompt_encoder.mask_downscaling.3.weight", [m, m / 4, 2, 2]);
  add("prompt_encoder.mask_downscaling.3.bias", [m]);
  norm("prompt_encoder.mask_downscaling.4", m);
  add("prompt_encoder.mask_downscaling.6.weight", [D, m, 1, 1]);
  add("prompt_encoder.mask_downscaling.6.bias", [D]);
  add("prompt_encoder.no_mask_embed.weight", [1, D]);

  // Mask decoder: two-way transformer, tokens, upscaling, hypernetworks, IoU head.
  const X = arch.decoderCrossAttnDim;
  const attention = (name: string, inner: number) => {
    for (const p of ["q_proj", "k_proj", "v_proj"]) linear(`${name}.${p}`, inner, D);
    linear(`${name}.out_proj`, D, inner);
  };
  for (let i = 0; i < arch.decoderDepth; i++) {
    const l = `mask_decoder.transformer.layers.${i}`;
    attention(`${l}.self_attn`, D);
    norm(`${l}.norm1`, D);
    attention(`${l}.cross_attn_token_to_image`, X);
    norm(`${l}.norm2`, D);
    linear(`${l}.mlp.lin1`, arch.decoderMlpDim, D);
    linear(`${l}.mlp.lin2`, D, arch.decoderMlpDim);
    norm(`${l}.norm3`, D);
    norm(`${l}.norm4`, D);
    attention(`${l}.cross_attn_image_to_token`, X);
  }
  attention("mask_decoder.transformer.final_attn_token_to_image", X);
  norm("mask_decoder.transformer.norm_final_attn", D);
  const tokens = arch.numMultimaskOutputs + 1;
  add("mask_decoder.iou_token.weight", [1, D]);
  add("mask_decoder.mask_tokens.weight", [tokens, D]);
  // ConvTranspose2d weights are (in, out, k, k).
  add("mask_decoder.output_upscaling.0.weight", [D, D / 4, 2, 2]);
  add("mask_decoder.output_upscaling.0.bias", [D / 4]);
  norm("mask_decoder.output_upscaling.1", D / 4);
  add("mask_decoder.output_upscaling.3.weight", [D / 4, D / 8, 2, 2]);
  add("mask_decoder.output_upscaling.3.bias", [D / 8]);
  for (let i = 0; i < tokens; i++) {
    const h = `mask_decoder.output_hypernetworks_mlps.${i}.layers`;
    linear(`${h}.0`, D, D);
    linear(`${h}.1`, D, D);
    linear(`${h}.2`, D / 8, D);
  }
  const H = arch.iouHeadHiddenDim;
  for (let j = 0; j < arch.iouHeadDepth; j++) {
    const inDim = j === 0 ? D : H;
    const outDim = j === arch.iouHeadDepth - 1 ? tokens : H;
    linear(`mask_decoder.iou_prediction_head.layers.${j}`, outDim, inDim);
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Checks that `sd` holds exactly the official model's tensors for `arch`: each present,
 * floating point and of the expected shape, and no unknown ones (the optional `pixel_mean`
 * and `pixel_std` buffers aside). Throws naming every offending tensor (up to 20).
 */
export function validateStateDict(sd: TensorShapes, arch: SamArch): void {
  const problems: string[] = [];
  const expected = expectedShapes(arch);
  for (const [name, shape] of expected) {
    const t = sd.get(name);
    if (!t) {
      problems.push(`missing tensor '${name}' (expected shape [${shape}])`);
    } else if (!sameShape(t.shape, shape)) {
      problems.push(`tensor '${name}' has shape [${t.shape}], expected [${shape}]`);
    } else if (t.dtype && !FLOAT_DTYPES.has(t.dtype)) {
      problems.push(`tensor '${name}' has dtype ${t.dtype}, expected a floating-point type`);
    }
  }
  for (const [name, t] of sd) {
    if (expected.has(name)) continue;
    const optional = OPTIONAL_TENSORS.get(name);
    if (!optional) {
      problems.push(`unknown tensor '${name}' of shape [${t.shape}]`);
    } else if (!sameShape(t.shape, optional)) {
      problems.push(`tensor '${name}' has shape [${t.shape}], expected [${optional}]`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join("\n  ");
    const more = problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : "";
    throw new Error(
      `checkpoint does not match the inferred SAM architecture ` +
        `(${problems.length} problem${problems.length > 1 ? "s" : ""}):\n  ${shown}${more}`,
    );
  }
}

function officialArch(
  embedDim: number,
  depth: number,
  numHeads: number,
  globalAttnIndexes: number[],
): SamArch {
  return {
    imgSize: 1024,
    patchSize: 16,
    embedDim,
    depth,
    numHeads,
    encoderMlpDim: 4 * embedDim,
    windowSize: 14,
    globalAttnIndexes,
    promptEmbedDim: 256,
    decoderMlpDim: 2048,
    decoderDepth: 2,
    decoderNumHeads: DECODER_NUM_HEADS,
    decoderCrossAttnDim: 128,
    iouHeadHiddenDim: 256,
    iouHeadDepth: 3,
    numMultimaskOutputs: 3,
  };
}

/** The released models' architectures (official build_sam.py). */
export const OFFICIAL_ARCHS: Readonly<Record<"vit_b" | "vit_l" | "vit_h", SamArch>> = {
  vit_b: officialArch(768, 12, 12, [2, 5, 8, 11]),
  vit_l: officialArch(1024, 24, 16, [5, 11, 17, 23]),
  vit_h: officialArch(1280, 32, 16, [7, 15, 23, 31]),
};
