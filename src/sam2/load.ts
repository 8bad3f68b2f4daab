/**
 * Loading a SAM 2 / 2.1 checkpoint: Meta's `.pt` (`torch.save({"model": state_dict})`, read by
 * the same safe zip/pickle reader as SAM 1's `.pth`) or safetensors with the official names.
 * The architecture is read from the tensor shapes (src/sam2/arch.ts) and the image encoder's
 * tensors are checked name by name, shape by shape, before any data is read.
 *
 * convertSam2Checkpoint writes wgsam safetensors (float32, the official names in file order)
 * with the whole Sam2Arch in `__metadata__.wgsam_arch`: what no tensor shape tells (image size,
 * heads, windows, global blocks) then travels with the weights, and loadSam2 takes it from
 * there, checking it against the shapes.
 */
import type { TensorShapes } from "../weights/arch.ts";
import { asFloat32, openCheckpoint, refuseSameFile, WGSAM_FORMAT } from "../weights/load.ts";
import { type WriteProgress, writeSafetensors } from "../weights/safetensors.ts";
import type { StateDict } from "../weights/types.ts";
import { inferSam2Arch, isSam2Checkpoint, type Sam2Arch, type Sam2ArchHints } from "./arch.ts";

/** Which model family a checkpoint holds, by its tensor names. */
export type ModelFamily = "sam" | "sam2";

export function familyOf(shapes: TensorShapes): ModelFamily {
  return isSam2Checkpoint(shapes) ? "sam2" : "sam";
}

/** Opens a checkpoint only to tell SAM 1 from SAM 2 by its tensor names (no data read). */
export async function checkpointFamily(path: string | URL): Promise<ModelFamily> {
  const ckpt = await openCheckpoint(path);
  try {
    return familyOf(new Map(ckpt.tensors.map((t) => [t.name, t])));
  } finally {
    ckpt.close();
  }
}

/**
 * Every tensor the image encoder reads (trunk, neck), plus what the image predictor applies
 * to its features (conv_s0 / conv_s1 of the decoder, no_mem_embed), name -> shape.
 */
export function expectedSam2EncoderShapes(arch: Sam2Arch): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const t = arch.trunk;
  const p = "image_encoder.trunk.";
  const linear = (name: string, o: number, i: number) => {
    out.set(`${name}.weight`, [o, i]);
    out.set(`${name}.bias`, [o]);
  };
  const norm = (name: string, d: number) => {
    out.set(`${name}.weight`, [d]);
    out.set(`${name}.bias`, [d]);
  };
  out.set(`${p}pos_embed`, [1, t.embedDim, ...t.posEmbedBkg]);
  out.set(`${p}pos_embed_window`, [1, t.embedDim, t.windowSpec[0], t.windowSpec[0]]);
  out.set(`${p}patch_embed.proj.weight`, [t.embedDim, 3, 7, 7]);
  out.set(`${p}patch_embed.proj.bias`, [t.embedDim]);
  let dim = t.embedDim, block = 0;
  t.stages.forEach((n, k) => {
    for (let j = 0; j < n; j++, block++) {
      const dimOut = t.stageDims[k];
      const b = `${p}blocks.${block}.`;
      norm(`${b}norm1`, dim);
      linear(`${b}attn.qkv`, 3 * dimOut, dim);
      linear(`${b}attn.proj`, dimOut, dimOut);
      norm(`${b}norm2`, dimOut);
      linear(`${b}mlp.layers.0`, dimOut * t.mlpRatio, dimOut);
      linear(`${b}mlp.layers.1`, dimOut, dimOut * t.mlpRatio);
      if (dimOut !== dim) linear(`${b}proj`, dimOut, dim);
      dim = dimOut;
    }
  });
  arch.neck.backboneChannelList.forEach((c, i) => {
    out.set(`image_encoder.neck.convs.${i}.conv.weight`, [arch.dModel, c, 1, 1]);
    out.set(`image_encoder.neck.convs.${i}.conv.bias`, [arch.dModel]);
  });
  const C = arch.dModel;
  out.set("sam_mask_decoder.conv_s0.weight", [C / 8, C, 1, 1]);
  out.set("sam_mask_decoder.conv_s0.bias", [C / 8]);
  out.set("sam_mask_decoder.conv_s1.weight", [C / 4, C, 1, 1]);
  out.set("sam_mask_decoder.conv_s1.bias", [C / 4]);
  out.set("no_mem_embed", [1, 1, C]);
  return out;
}

/** Top-level names of the official SAM2Base modules and parameters; nothing else is accepted. */
const SAM2_PREFIXES = [
  "image_encoder.",
  "memory_attention.",
  "memory_encoder.",
  "sam_prompt_encoder.",
  "sam_mask_decoder.",
  "obj_ptr_proj.",
  "obj_ptr_tpos_proj.",
  "mask_downsample.",
];
const SAM2_PARAMS = new Set([
  "maskmem_tpos_enc",
  "no_mem_embed",
  "no_mem_pos_enc",
  "no_obj_ptr",
  "no_obj_embed_spatial",
]);

/**
 * Checks the encoder's tensors against `arch` (each present, floating point, of its shape),
 * no encoder tensor beyond them, and nothing outside SAM2Base's modules. The decoder's and the
 * memory modules' own tensors are checked by their users.
 */
export function validateSam2Encoder(shapes: TensorShapes, arch: Sam2Arch): void {
  const problems: string[] = [];
  const expected = expectedSam2EncoderShapes(arch);
  for (const [name, shape] of expected) {
    const t = shapes.get(name);
    if (!t) problems.push(`missing tensor '${name}' (expected shape [${shape}])`);
    else if (t.shape.length !== shape.length || t.shape.some((v, i) => v !== shape[i])) {
      problems.push(`tensor '${name}' has shape [${t.shape}], expected [${shape}]`);
    } else if (t.dtype && !["float32", "float16", "bfloat16", "float64"].includes(t.dtype)) {
      problems.push(`tensor '${name}' has dtype ${t.dtype}, expected a floating-point type`);
    }
  }
  for (const [name, t] of shapes) {
    if (expected.has(name)) continue;
    if (name.startsWith("image_encoder.")) {
      problems.push(`unknown image encoder tensor '${name}' of shape [${t.shape}]`);
    } else if (!SAM2_PARAMS.has(name) && !SAM2_PREFIXES.some((p) => name.startsWith(p))) {
      problems.push(`unknown tensor '${name}' of shape [${t.shape}]`);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 20).join("\n  ");
    const more = problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : "";
    throw new Error(
      `checkpoint does not match the inferred SAM 2 architecture (${problems.length} ` +
        `problem${problems.length > 1 ? "s" : ""}):\n  ${shown}${more}`,
    );
  }
}

/** The hints a wgsam safetensors file stores (its Sam2Arch), or null for other files. */
function storedHints(metadata: Record<string, string>, path: string | URL): Sam2Arch | null {
  if (metadata.wgsam_arch === undefined) return null;
  let stored: Sam2Arch;
  try {
    stored = JSON.parse(metadata.wgsam_arch);
  } catch {
    throw new Error(`${path}: __metadata__.wgsam_arch is not valid JSON`);
  }
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (
    !isObject(stored) || !Object.hasOwn(stored, "family") || stored.family !== "sam2" ||
    !Object.hasOwn(stored, "trunk") || !isObject(stored.trunk)
  ) {
    throw new Error(`${path}: __metadata__.wgsam_arch is not a SAM 2 architecture`);
  }
  return stored;
}

/** Infers the arch of an open checkpoint: explicit hints, else the stored arch, else configs. */
function archOf(
  shapes: TensorShapes,
  metadata: Record<string, string>,
  hints: Sam2ArchHints,
  path: string | URL,
): Sam2Arch {
  if (!isSam2Checkpoint(shapes)) {
    throw new Error(`${path}: not a SAM 2 checkpoint (no image_encoder.trunk tensors)`);
  }
  const stored = storedHints(metadata, path);
  const fromStored: Sam2ArchHints = stored
    ? {
      imgSize: stored.imgSize,
      numHeads: stored.trunk.numHeads,
      windowSpec: stored.trunk.windowSpec,
      globalAttBlocks: stored.trunk.globalAttBlocks,
      qPool: stored.trunk.qPool,
    }
    : {};
  const arch = inferSam2Arch(shapes, { ...fromStored, ...hints });
  if (
    stored && Object.keys(hints).length === 0 && JSON.stringify(stored) !== JSON.stringify(arch)
  ) {
    throw new Error(
      `${path}: the stored architecture ${metadata.wgsam_arch} disagrees with the tensors ` +
        `(${JSON.stringify(arch)})`,
    );
  }
  validateSam2Encoder(shapes, arch);
  return arch;
}

/**
 * Loads a SAM 2 checkpoint (`.pt` / `.pth` zip or safetensors), infers its architecture
 * (`hints` for what no tensor shape tells, else a converted file's stored arch, else the
 * official config of its size; see arch.ts) and validates the encoder's tensors.
 */
export async function loadSam2(
  path: string | URL,
  hints: Sam2ArchHints = {},
): Promise<{ sd: StateDict; arch: Sam2Arch }> {
  const ckpt = await openCheckpoint(path);
  try {
    const shapes: TensorShapes = new Map(ckpt.tensors.map((t) => [t.name, t]));
    const arch = archOf(shapes, ckpt.metadata, hints, path);
    const sd: StateDict = new Map();
    for (const t of ckpt.tensors) {
      if (sd.has(t.name)) throw new Error(`checkpoint: tensor '${t.name}' appears twice`);
      sd.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, bytes: await t.read() });
    }
    return { sd, arch };
  } finally {
    ckpt.close();
  }
}

/**
 * Converts a SAM 2 checkpoint into wgsam safetensors: float32, every tensor under its official
 * name in the file's order, `format` and the whole Sam2Arch in the metadata. Streams tensor by
 * tensor; `outPath` appears only once complete. Returns the architecture.
 */
export async function convertSam2Checkpoint(
  inPath: string,
  outPath: string,
  hints: Sam2ArchHints = {},
  onProgress?: (p: WriteProgress) => void,
): Promise<Sam2Arch> {
  await refuseSameFile(inPath, outPath);
  const ckpt = await openCheckpoint(inPath);
  try {
    const shapes: TensorShapes = new Map(ckpt.tensors.map((t) => [t.name, t]));
    if (shapes.size !== ckpt.tensors.length) {
      throw new Error(`${inPath}: a tensor name appears twice`);
    }
    const arch = archOf(shapes, ckpt.metadata, hints, inPath);
    const metadata = { format: WGSAM_FORMAT, wgsam_arch: JSON.stringify(arch) };
    await writeSafetensors(outPath, ckpt.tensors.map(asFloat32), metadata, onProgress);
    return arch;
  } finally {
    ckpt.close();
  }
}
