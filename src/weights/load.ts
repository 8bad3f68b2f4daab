/**
 * Checkpoint entry points: load a state dict from Meta's `.pth` or from safetensors (chosen
 * by the file's magic bytes, not its name), read the architecture and validate it, convert
 * tensors to float32, and convert a `.pth` into our safetensors format ("wgsam-1": float32,
 * official tensor names, the architecture as JSON in `__metadata__.wgsam_arch`).
 */
import { expectedShapes, inferArch, type TensorShapes, validateStateDict } from "./arch.ts";
import { inferMobileSamArch, isTinyVitCheckpoint } from "../mobile_sam/arch.ts";
import { type LazyTensor, numel } from "./lazy.ts";
import { PthArchive } from "./pth.ts";
import { SafetensorsFile, type WriteProgress, writeSafetensors } from "./safetensors.ts";
import type { SamArch, StateDict } from "./types.ts";
import { readAt } from "./zip.ts";
import { checkpointError } from "./checkpoint_errors.ts";
import { explainRefusedPickle } from "./whole_model.ts";
import { fromHfSam, isHfSamCheckpoint } from "./hf_sam.ts";

// Deno-free, so the page's decoder bundle can use it too.
import { tensorF32 } from "./host_tensor.ts";
export { tensorF32 };

/** `__metadata__.format` of files written by convertCheckpoint. */
export const WGSAM_FORMAT = "wgsam-1";

export type CheckpointKind = "pth" | "safetensors";

/** Tells a torch zip checkpoint from a safetensors file by their first bytes. */
export async function detectCheckpointKind(path: string | URL): Promise<CheckpointKind> {
  const file = await Deno.open(path, { read: true });
  let head: Uint8Array;
  try {
    const size = (await file.stat()).size;
    if (size < 9) throw new Error(`checkpoint: ${path} is only ${size} bytes`);
    head = await readAt(file, 0, Math.min(size, 16), "checkpoint");
  } finally {
    file.close();
  }
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return "pth";
  // Pre-1.6 torch.save: a bare pickle starting with the magic number as a LONG1.
  if (head[0] === 0x80 && head[2] === 0x8a && head[3] === 0x0a) {
    throw new Error(
      `checkpoint: ${path} uses the legacy (pre-1.6) torch.save format; re-save it with ` +
        "torch >= 1.6 (the default zip format)",
    );
  }
  if (head[8] === 0x7b) return "safetensors";
  throw new Error(`checkpoint: ${path} is neither a torch zip checkpoint nor safetensors`);
}

/** An open checkpoint of either kind: tensors described, bytes read on demand. */
export interface OpenCheckpoint {
  kind: CheckpointKind;
  tensors: LazyTensor[];
  /** safetensors `__metadata__` (empty for .pth). */
  metadata: Record<string, string>;
  close(): void;
}

export async function openCheckpoint(path: string | URL): Promise<OpenCheckpoint> {
  const kind = await detectCheckpointKind(path);
  if (kind === "pth") {
    const pth = await PthArchive.open(path).catch((e) => {
      // A whole pickled model (SlimSAM's global releases...) is named as such first.
      throw explainRefusedPickle(e, path) ?? checkpointError(path, e);
    });
    const tensors = isHfSamCheckpoint(pth.tensors.map((t) => t.name))
      ? fromHfSam(pth.tensors)
      : pth.tensors;
    return { kind, tensors, metadata: {}, close: () => pth.close() };
  }
  const st = await SafetensorsFile.open(path);
  // Hugging Face transformers' SAM files: renamed to the official names (hf_sam.ts).
  const tensors = isHfSamCheckpoint(st.tensors.map((t) => t.name))
    ? fromHfSam(st.tensors)
    : st.tensors;
  return { kind, tensors, metadata: st.metadata, close: () => st.close() };
}

async function readAll(ckpt: OpenCheckpoint): Promise<StateDict> {
  const sd: StateDict = new Map();
  for (const t of ckpt.tensors) {
    if (sd.has(t.name)) throw new Error(`checkpoint: tensor '${t.name}' appears twice`);
    sd.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, bytes: await t.read() });
  }
  return sd;
}

/** inferArch, its error saying which file is not a SAM model. */
function archOf(path: string | URL, shapes: TensorShapes): SamArch {
  try {
    return inferArch(shapes);
  } catch (e) {
    throw checkpointError(path, e);
  }
}

/** Loads every tensor of a `.pth` or safetensors checkpoint. */
export async function loadStateDict(path: string | URL): Promise<StateDict> {
  const ckpt = await openCheckpoint(path);
  try {
    return await readAll(ckpt);
  } finally {
    ckpt.close();
  }
}

function shapesOf(tensors: readonly LazyTensor[]): TensorShapes {
  return new Map(tensors.map((t) => [t.name, t]));
}

function checkMetadataArch(metadata: Record<string, string>, arch: SamArch, path: string | URL) {
  const stored = metadata.wgsam_arch;
  if (stored === undefined) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(stored);
  } catch {
    throw new Error(`checkpoint: ${path}: __metadata__.wgsam_arch is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`checkpoint: ${path}: __metadata__.wgsam_arch is not a JSON object`);
  }
  const record = parsed as Record<string, unknown>;
  for (const [key, value] of Object.entries(arch)) {
    const storedValue = Object.hasOwn(record, key) ? record[key] : undefined;
    if (JSON.stringify(storedValue) !== JSON.stringify(value)) {
      throw new Error(
        `checkpoint: ${path}: stored architecture says ${key} = ${JSON.stringify(storedValue)}, ` +
          `the tensors say ${JSON.stringify(value)}`,
      );
    }
  }
}

/**
 * The architecture of a SAM-family checkpoint, every tensor validated against it: MobileSAM
 * (a TinyViT image encoder, src/mobile_sam/arch.ts) or SAM's ViT (SAM, SlimSAM).
 */
export function inferValidated(shapes: TensorShapes, path: string | URL): SamArch {
  if (isTinyVitCheckpoint(shapes)) return inferMobileSamArch(shapes).arch;
  const arch = archOf(path, shapes);
  validateStateDict(shapes, arch);
  return arch;
}

/**
 * Loads a SAM checkpoint, infers its architecture from the tensor shapes and validates every
 * tensor against it (and against the architecture stored in a wgsam safetensors file).
 */
export async function loadSam(path: string | URL): Promise<{ sd: StateDict; arch: SamArch }> {
  const ckpt = await openCheckpoint(path);
  try {
    // Shapes are checked before any tensor data is read.
    const shapes = shapesOf(ckpt.tensors);
    const arch = inferValidated(shapes, path);
    checkMetadataArch(ckpt.metadata, arch, path);
    return { sd: await readAll(ckpt), arch };
  } finally {
    ckpt.close();
  }
}

/** Float32 bytes of a tensor read lazily (unchanged if it is float32 already). */
export function asFloat32(t: LazyTensor): LazyTensor {
  if (t.dtype === "float32") return t;
  return {
    name: t.name,
    dtype: "float32",
    shape: t.shape,
    byteLength: numel(t.shape) * 4,
    read: async () => {
      const f32 = tensorF32({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        bytes: await t.read(),
      });
      return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
    },
  };
}

/** Writing the output over the input would destroy the checkpoint being read. */
export async function refuseSameFile(inPath: string, outPath: string): Promise<void> {
  let outReal: string;
  try {
    outReal = await Deno.realPath(outPath);
  } catch {
    return; // the output does not exist yet: it cannot be the input
  }
  let inReal: string;
  try {
    inReal = await Deno.realPath(inPath);
  } catch {
    return; // a missing input gets its own error from openCheckpoint
  }
  if (inReal === outReal) {
    throw new Error(`convert: the output ${outPath} is the input checkpoint; choose another path`);
  }
}

/**
 * Converts a checkpoint (`.pth` or safetensors) into wgsam safetensors: validated, float32,
 * official names in official order, architecture in the metadata. Streams tensor by tensor;
 * `outPath` appears only once complete. Returns the architecture.
 */
export async function convertCheckpoint(
  inPath: string,
  outPath: string,
  onProgress?: (p: WriteProgress) => void,
): Promise<SamArch> {
  await refuseSameFile(inPath, outPath);
  const ckpt = await openCheckpoint(inPath);
  try {
    const shapes = shapesOf(ckpt.tensors);
    const arch = inferValidated(shapes, inPath);
    const byName = new Map(ckpt.tensors.map((t) => [t.name, t]));
    // MobileSAM keeps the checkpoint's order, less BatchNorm's integer step counters.
    const ordered = isTinyVitCheckpoint(shapes)
      ? ckpt.tensors.filter((t) => !t.name.endsWith(".num_batches_tracked")).map(asFloat32)
      : [...expectedShapes(arch).keys()].map((name) => asFloat32(byName.get(name)!));
    const metadata = { format: WGSAM_FORMAT, wgsam_arch: JSON.stringify(arch) };
    await writeSafetensors(outPath, ordered, metadata, onProgress);
    return arch;
  } finally {
    ckpt.close();
  }
}
